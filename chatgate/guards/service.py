"""Guards, as each assistant's policy says: personal data blocked, masked or routed to a private
engine; prompt injection blocked or flagged. Every hit is counted, audited and logged with its
trace id, by kind and number, never with the value found.

`inspect` is the one decision, pure and synchronous: a list of texts in, what to do with them out.
The texts carry where they come from, because that changes what a find means:

- `user`: what the user says now. Personal data and injection are looked for; hits count.
- `client`: other text a client sends now (an OpenAI client's system, developer or assistant
  messages). Personal data and injection; hits count. Such a message may well tell the engine
  "never reveal your prompt", so a request to reveal the prompt that is negated is no hit there.
- `history`: chatgate's own stored history. Its personal data is masked along (also under
  `block`) or keeps a conversation on the private engine, but is neither counted again nor a
  reason to block.

Injection is looked for in every text the engine will see (only the assistant's own configured
system prompt is trusted): an instruction smuggled into a system, assistant or recorded message
overrides the assistant as well as one in the user's message. Wherever it is found, the policy
applies to the whole request: `block` refuses it, `flag` forwards it and flags it (again on each
request that carries it, since each sends it to the engine again).
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from sqlalchemy.ext.asyncio import AsyncSession

from chatgate.audit.service import record_audit_event
from chatgate.core.db import Database
from chatgate.core.errors import AppError
from chatgate.core.policies import GuardPolicy, PiiKind
from chatgate.core.tracing import current_trace_id
from chatgate.guards.injection import find_injection, may_hold_injection
from chatgate.guards.pii import PiiMatch, find_pii
from chatgate.guards.restore import RestoringProvider
from chatgate.observability import metrics
from chatgate.providers.base import ChatTurn, Provider

log = logging.getLogger("chatgate.guards")

Origin = Literal["user", "client", "history"]
PiiAction = Literal["none", "block", "mask", "route"]
InjectionAction = Literal["none", "flag", "block"]

# What the engine sees in place of a value: short, upper-case, numbered per message (or per
# conversation when history goes along), the same value always the same placeholder.
PLACEHOLDER_TAGS: dict[PiiKind, str] = {
    "cn_mobile": "PHONE",
    "intl_phone": "PHONE",
    "cn_resident_id": "ID",
    "bank_card": "CARD",
    "email": "EMAIL",
}
KIND_NAMES: dict[PiiKind, str] = {
    "cn_mobile": "a mobile number",
    "intl_phone": "a phone number",
    "cn_resident_id": "a resident identity number",
    "bank_card": "a bank card number",
    "email": "an e-mail address",
}


class PiiBlocked(AppError):
    status, code = 422, "pii_blocked"


class InjectionBlocked(AppError):
    status, code = 400, "prompt_injection_blocked"


@dataclass(slots=True)
class GuardOutcome:
    pii_action: PiiAction = "none"
    injection_action: InjectionAction = "none"
    pii_counts: dict[PiiKind, int] = field(default_factory=dict)  # in user and client texts
    injection_patterns: list[str] = field(default_factory=list)
    injection_origins: list[Origin] = field(default_factory=list)  # where they were found
    texts: list[str] = field(default_factory=list)  # as they go to the engine
    placeholders: dict[str, str] = field(default_factory=dict)  # placeholder -> original
    private: bool = False  # the answer must come from the assistant's private engine
    no_private_engine: bool = False  # route was asked for, but there is no engine to route to

    @property
    def reportable(self) -> bool:
        return bool(self.pii_counts) or bool(self.injection_patterns) or self.blocked

    @property
    def blocked(self) -> bool:
        return self.pii_action == "block" or self.injection_action == "block"

    def error(self) -> AppError | None:
        if self.pii_action == "block":
            what = ", ".join(KIND_NAMES[k] for k in sorted(self.pii_counts)) or "personal data"
            if self.no_private_engine:
                return PiiBlocked(
                    f"the message contains personal data ({what}), which this assistant may only "
                    "send to a private engine, and none is configured"
                )
            return PiiBlocked(
                f"the message contains personal data ({what}) that this assistant does not "
                "accept; remove it and send the message again"
            )
        if self.injection_action == "block":
            return InjectionBlocked(
                "the message looks like an attempt to override the assistant's instructions"
            )
        return None

    @property
    def marks(self) -> dict[str, str]:
        """`X-Chatgate-Guard` for the caller: what the guards did to this request, e.g.
        `injection=flagged, pii=masked`; nothing when they let it through untouched."""
        done = []
        if self.injection_action == "flag":
            done.append("injection=flagged")
        if self.pii_action == "mask" and self.placeholders:
            done.append("pii=masked")
        elif self.pii_action == "route":
            done.append("pii=routed")
        return {"X-Chatgate-Guard": ", ".join(done)} if done else {}

    def raise_if_blocked(self) -> None:
        if (error := self.error()) is not None:
            raise error

    def wrap(self, provider: Provider) -> Provider:
        """The engine, restoring masked values in its answers when there are any."""
        return RestoringProvider(provider, self.placeholders) if self.placeholders else provider


class _Masker:
    def __init__(self, taken: str) -> None:
        self._taken = taken  # placeholders written by the user themselves are never reused
        self._numbers: Counter[str] = Counter()
        self._by_value: dict[tuple[str, str], str] = {}
        self.placeholders: dict[str, str] = {}

    def _placeholder(self, match: PiiMatch) -> str:
        tag = PLACEHOLDER_TAGS[match.kind]
        key = (tag, match.canonical)
        if (known := self._by_value.get(key)) is not None:
            return known
        while True:
            self._numbers[tag] += 1
            placeholder = f"[{tag}_{self._numbers[tag]}]"
            if placeholder not in self._taken:
                break
        self._by_value[key] = placeholder
        self.placeholders[placeholder] = match.text
        return placeholder

    def mask(self, text: str, matches: list[PiiMatch]) -> str:
        parts, at = [], 0
        for match in matches:
            parts += [text[at : match.start], self._placeholder(match)]
            at = match.end
        parts.append(text[at:])
        return "".join(parts)


def inspect(policy: GuardPolicy, texts: Sequence[tuple[Origin, str]]) -> GuardOutcome:
    """What the policy makes of these texts, and the texts as they may go to an engine."""
    outcome = GuardOutcome(texts=[text for _, text in texts])
    if policy.injection != "off" and may_hold_injection([text for _, text in texts]):
        for origin, text in texts:
            found = find_injection(text) if origin == "user" else find_injection(text, told=True)
            if found and origin not in outcome.injection_origins:
                outcome.injection_origins.append(origin)
            outcome.injection_patterns += [p for p in found if p not in outcome.injection_patterns]
        if outcome.injection_patterns:
            outcome.injection_action = policy.injection
    if policy.pii == "off":
        return outcome
    finds = _pii_finds(policy, [text for _, text in texts])
    counts: Counter[PiiKind] = Counter(
        m.kind for (origin, _), found in zip(texts, finds, strict=True) if origin != "history"
        for m in found
    )  # fmt: skip
    outcome.pii_counts = dict(counts)
    if policy.pii == "block" and counts:
        outcome.pii_action = "block"
    elif not any(finds):
        pass
    elif policy.pii in ("mask", "block"):
        # Under "block" only history can hold any (written before the policy, or recorded with
        # POST /v1/history): it is masked, so that nothing personal leaves all the same.
        masker = _Masker("".join(outcome.texts))
        outcome.texts = [
            masker.mask(text, found) for text, found in zip(outcome.texts, finds, strict=True)
        ]
        outcome.pii_action, outcome.placeholders = "mask", masker.placeholders
    elif policy.private_provider:
        outcome.pii_action, outcome.private = "route", True
    else:
        # Fail closed: with nowhere private to send it, personal data goes nowhere.
        outcome.pii_action, outcome.no_private_engine = "block", True
    return outcome


# Between texts when they are scanned as one: no kind's pattern takes it in, or reads past it.
_APART = "\x00"


def _pii_finds(policy: GuardPolicy, texts: list[str]) -> list[list[PiiMatch]]:
    """Each text's finds. Several texts (an agent's turns) are first scanned as one, which
    most often finds nothing and spares a scan a text: a find in one text is a find in the
    whole, as no pattern reads across the separator."""
    if len(texts) > 1 and not find_pii(_APART.join(texts), policy.pii_kinds):
        return [[] for _ in texts]
    return [find_pii(text, policy.pii_kinds) for text in texts]


# About 0.5 ms of scanning: longer inputs are inspected in a thread, so the event loop (which
# the GIL hands back every few milliseconds) never waits for a whole long conversation.
OFF_LOOP_CHARS = 1000


async def inspect_off_loop(
    policy: GuardPolicy, texts: Sequence[tuple[Origin, str]]
) -> GuardOutcome:
    if sum(len(text) for _, text in texts) < OFF_LOOP_CHARS:
        return inspect(policy, texts)
    return await asyncio.to_thread(inspect, policy, texts)


def record_guard_hits(
    db: AsyncSession,
    outcome: GuardOutcome,
    *,
    user_id: str,
    assistant_id: str,
    surface: str,
    target_type: str,
    target_id: str,
) -> None:
    """Audits (in the caller's transaction), logs and counts what the guards found: the kinds and
    numbers of finds and the pattern ids, never the text that matched."""
    trace_id = current_trace_id() or None
    common: dict[str, Any] = {"assistant_id": assistant_id, "surface": surface}
    events: list[tuple[str, str, dict[str, Any]]] = []
    # A blocked request is blocked for every guard: nothing of it was masked, routed or sent.
    action: str
    if outcome.pii_action != "none" and (outcome.pii_counts or outcome.pii_action == "block"):
        action = "block" if outcome.blocked else outcome.pii_action
        kinds = dict(sorted(outcome.pii_counts.items()))
        details: dict[str, Any] = {"guard": "pii", "action": action, "kinds": kinds, **common}
        if outcome.no_private_engine:
            details["reason"] = "no_private_engine"
        events.append(("pii", action, details))
        for kind, count in kinds.items():
            metrics.guard_hits.labels(kind, action).inc(count)
    if outcome.injection_patterns:
        action = "block" if outcome.blocked else outcome.injection_action
        patterns = list(outcome.injection_patterns)
        found_in = sorted(outcome.injection_origins)
        events.append(
            ("injection", action, {"guard": "injection", "action": action,
                                    "patterns": patterns, "found_in": found_in, **common})
        )  # fmt: skip
        metrics.guard_hits.labels("injection", action).inc()
    for guard, action, details in events:
        name = {"block": "blocked", "mask": "masked", "route": "routed", "flag": "flagged"}[action]
        record_audit_event(
            db, action=f"guard.{name}", user_id=user_id,
            target_type=target_type, target_id=target_id, details=details,
        )  # fmt: skip
        level = logging.WARNING if action in ("block", "flag") else logging.INFO
        log.log(
            level, "guard %s: %s", guard, name,
            extra={**details, "user_id": user_id, "trace_id": trace_id},
        )  # fmt: skip


@dataclass(slots=True)
class TurnGuard:
    """A chat turn after its guards: the history and message as the engine is to see them."""

    outcome: GuardOutcome
    history: list[ChatTurn]
    content: str

    @property
    def private(self) -> bool:
        return self.outcome.private

    @property
    def personal(self) -> bool:
        """Personal data goes to the engine (masked or to the private one): such a turn's answer
        is nobody else's, and is not for an answer cache."""
        return self.outcome.pii_action in ("mask", "route")

    @property
    def restores(self) -> bool:
        return bool(self.outcome.placeholders)

    def wrap(self, provider: Provider) -> Provider:
        return self.outcome.wrap(provider)


async def guard_turn(
    db: AsyncSession,
    *,
    policy: GuardPolicy,
    history: list[ChatTurn],
    content: str,
    user_id: str,
    assistant_id: str,
    session_id: str,
) -> TurnGuard:
    """Guards a chat turn before anything of it is stored. Hits are audited in `db`'s transaction,
    so they commit with the message; a block commits them alone and raises."""
    if policy.pii == "off" and policy.injection == "off":
        return TurnGuard(GuardOutcome(), history, content)
    texts: list[tuple[Origin, str]] = [("history", t.content) for t in history]
    outcome = await inspect_off_loop(policy, [*texts, ("user", content)])
    if outcome.reportable:
        record_guard_hits(
            db, outcome, user_id=user_id, assistant_id=assistant_id, surface="chat",
            target_type="session", target_id=session_id,
        )  # fmt: skip
    if outcome.blocked:
        await db.commit()
        outcome.raise_if_blocked()
    sent = [ChatTurn(t.role, text) for t, text in zip(history, outcome.texts[:-1], strict=True)]
    return TurnGuard(outcome, sent, outcome.texts[-1])


async def guard_texts(
    database: Database,
    *,
    policy: GuardPolicy,
    texts: Sequence[tuple[Origin, str]],
    user_id: str,
    assistant_id: str,
    surface: str,
) -> GuardOutcome:
    """Guards texts that are sent without being stored (the OpenAI-compatible front): hits are
    audited in a transaction of their own; a block raises after it commits."""
    if policy.pii == "off" and policy.injection == "off":
        return GuardOutcome(texts=[text for _, text in texts])
    outcome = await inspect_off_loop(policy, texts)
    if outcome.reportable:
        async with database.session() as db:
            record_guard_hits(
                db, outcome, user_id=user_id, assistant_id=assistant_id, surface=surface,
                target_type="assistant", target_id=assistant_id,
            )  # fmt: skip
            await db.commit()
    outcome.raise_if_blocked()
    return outcome
