"""Recall and false positives of the guards on a generated corpus (deterministic seed).

    .venv/bin/python bench/guards_corpus.py [--seed 20241121] [--per-kind 1000] [--ordinary 5000]

Planted: personal data of every kind in the formats people write it (with and without separators,
full-width digits, +86 prefixes, lower-case x, grouped cards), in Chinese and English sentences;
and prompt injections in English and Chinese, some disguised (case, full-width, spacing,
zero-width characters).
Ordinary: text full of numbers that are not personal data — order numbers, dates, prices, tracking
numbers, timestamps, hotlines, versions, hashes, and identity and card numbers that fail their
checksums — plus requests that merely resemble injections.

Exact: a find of the planted value's kind covers exactly the value as written. Masked: once every
find is replaced by a placeholder, the value's digits (or the address) no longer appear — what
matters for what an engine gets to see.
"""

from __future__ import annotations

import argparse
import random
import time
from collections import Counter

from guards_texts import (
    BENIGN,
    GAPS,
    HALF_WIDTH,
    INJECTIONS_EN,
    INJECTIONS_ZH,
    ORDINARY_EN,
    ORDINARY_ZH,
    digits,
    disguise,
    ordinary_value,
    planted_sentence,
)

from chatgate.core.policies import ALL_PII_KINDS
from chatgate.guards.injection import find_injection
from chatgate.guards.pii import find_pii


def leaks(text: str, value: str, found: list[tuple[str, str]]) -> bool:
    """Whether the value's own digits (or address) survive masking every find, whatever its kind:
    a find that leaves out "(+86) " still keeps the number from the engine."""
    for _, hit in found:
        text = text.replace(hit, "[X]")
    core = value if "@" in value else "".join(c for c in value if c.isalnum())
    plain = "".join(c for c in text if c.isalnum() or c == "@")
    return core.translate(HALF_WIDTH)[-8:] in plain.translate(HALF_WIDTH)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seed", type=int, default=20241121)
    parser.add_argument("--per-kind", type=int, default=1000)
    parser.add_argument("--ordinary", type=int, default=5000)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    scans, scan_seconds = 0, 0.0

    def scan(text: str) -> list[tuple[str, str]]:
        nonlocal scans, scan_seconds
        start = time.perf_counter()
        found = [(m.kind, m.text) for m in find_pii(text)]
        scan_seconds += time.perf_counter() - start
        scans += 1
        return found

    print(
        f"seed {args.seed}: {args.per_kind} planted values per kind, {args.ordinary} ordinary texts"
    )
    print(
        f"\n{'PII kind':<16}{'planted':>8}{'exact':>8}{'recall':>9}{'masked':>8}{'recall':>9}"
        "   misses (first)"
    )
    totals = Counter[str]()
    for kind in ALL_PII_KINDS:
        exact = masked = 0
        misses: list[str] = []
        for _ in range(args.per_kind):
            text, value = planted_sentence(rng, kind)
            found = scan(text)
            exact += (kind, value) in found
            if not leaks(text, value, found):
                masked += 1
            elif len(misses) < 2:
                misses.append(value)
        totals.update(planted=args.per_kind, exact=exact, masked=masked)
        n = args.per_kind
        print(
            f"{kind:<16}{n:>8}{exact:>8}{exact / n:>9.2%}{masked:>8}{masked / n:>9.2%}   {misses}"
        )
    n = totals["planted"]
    print(
        f"{'all':<16}{n:>8}{totals['exact']:>8}{totals['exact'] / n:>9.2%}"
        f"{totals['masked']:>8}{totals['masked'] / n:>9.2%}"
    )

    hits_by_label: Counter[str] = Counter()
    seen_by_label: Counter[str] = Counter()
    with_hit, examples = 0, []
    for _ in range(args.ordinary):
        label, value = ordinary_value(rng)
        template = rng.choice(ORDINARY_ZH if rng.random() < 0.5 else ORDINARY_EN)
        text = template.format(v=value)
        seen_by_label[label] += 1
        if found := scan(text):
            with_hit += 1
            hits_by_label[label] += 1
            if len(examples) < 5:
                examples.append((label, found))
    print(f"\nordinary texts with a PII find: {with_hit}/{args.ordinary} = "
          f"{with_hit / args.ordinary:.2%}")  # fmt: skip
    for label, hits in hits_by_label.most_common():
        print(f"  {label:<22}{hits:>5} of {seen_by_label[label]}")
    if examples:
        print(f"  e.g. {examples}")

    stress: Counter[int] = Counter()
    for length in range(13, 20):
        for _ in range(2000):
            number = str(rng.randint(1, 9)) + digits(rng, length - 1)
            if scan(f"ref {number}"):
                stress[length] += 1
    rate = sum(stress.values()) / (7 * 2000)
    print(f"\nuniform random digit strings (13-19 digits) taken as a card or ID: {rate:.2%} "
          f"({dict(sorted(stress.items()))})")  # fmt: skip
    print(f"PII scan: {scan_seconds / scans * 1e6:.0f} µs per short text on average")
    long_text = " ".join(
        rng.choice(ORDINARY_ZH + ORDINARY_EN).format(v=ordinary_value(rng)[1]) for _ in range(700)
    )[:30_000]
    for label, fn in [("PII", find_pii), ("injection", find_injection)]:
        start = time.perf_counter()
        for _ in range(10):
            fn(long_text)
        print(
            f"{label} scan of a 30,000-character text: {(time.perf_counter() - start) * 100:.1f} ms"
        )

    print("\nknown gaps (formats not supported on purpose; found / planted):")
    for label, make in GAPS:
        values = [make(rng) for _ in range(200)]
        found = sum(not leaks(f"ok {v} ok", v, scan(f"ok {v} ok")) for v in values)
        print(f"  {label:<48}{found:>4} / {len(values)}")

    planted = [disguise(rng, t) for t in INJECTIONS_EN + INJECTIONS_ZH for _ in range(40)]
    caught = [t for t in planted if find_injection(t)]
    print(f"\ninjection recall: {len(caught)}/{len(planted)} = {len(caught) / len(planted):.2%}")
    missed = [t for t in planted if t not in caught]
    if missed:
        print(f"  missed (first): {missed[:3]}")
    benign = [disguise(rng, t) for t in BENIGN for _ in range(20)]
    ordinary = [t.format(v=ordinary_value(rng)[1]) for t in ORDINARY_ZH + ORDINARY_EN
                for _ in range(100)]  # fmt: skip
    false_hits = [t for t in benign + ordinary if find_injection(t)]
    print(f"injection false positives: {len(false_hits)}/{len(benign) + len(ordinary)} = "
          f"{len(false_hits) / (len(benign) + len(ordinary)):.2%} "
          f"({len(benign)} look-alike requests, {len(ordinary)} ordinary texts)")  # fmt: skip
    if false_hits:
        print(f"  e.g. {false_hits[:3]}")


if __name__ == "__main__":
    main()
