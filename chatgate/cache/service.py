"""The answer cache: a context-free question (a new session's first, or /v1/qa without one)
answered before by the same assistant, at the same version, with the same model, is answered
from the cache instead of the engine.

The key is the hash of the question exactly as the engine receives it (no folding of case,
width, spacing, quotes or invisible characters: a model reads all of them, so two texts that
differ in any of them are two inputs) with the assistant id, its version (which covers the
system prompt and every engine setting) and its model, under a scope naming the database
(assistant versions count per database, so two deployments sharing one Redis never see each
other's answers). An assistant edit bumps its version: later questions miss at once, and the old
entries, which nothing can reach any more, expire with their TTL.

Only answers the assistant's own engine wrote whole for the question as asked are stored: not a
failed or stopped answer, not one from a fallback engine or the canned fallback text, and not
one whose question a guard rewrote (masked) or sent to another engine. Nothing personal is ever
in it: a question or an answer in which the guards' detector finds personal data of any kind is
neither looked up nor stored, whatever the assistant's guard policy. An entry is written only
where there is none, except by a refresh, which only an admin's `Cache-Control: no-cache` is
(`directive_for`). The cache is an optimisation, so a broken Redis makes every question a miss,
never a failure.

Entries are shared, but each stored one is listed under the user whose turn stored it
(`owner_index`, in the same store): erasing that user drops them (`forget_owner`), so the cache
no longer answers with what was written for them.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from cryptography.exceptions import InvalidTag
from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy.engine import make_url

from chatgate.cache.normalize import normalize_question, question_digest
from chatgate.cache.store import AnswerStore, MemoryAnswerStore, RedisAnswerStore
from chatgate.core.config import AssistantConfig, Settings
from chatgate.core.policies import CacheSettings
from chatgate.guards.pii import find_pii
from chatgate.guards.service import OFF_LOOP_CHARS
from chatgate.observability import metrics
from chatgate.observability.requests import request_stats
from chatgate.observability.tracing import cache_span
from chatgate.vault.keyring import KeyRing

log = logging.getLogger("chatgate.cache")

# `use` looks up and stores where there is no entry; `refresh` (an admin's Cache-Control:
# no-cache) skips the lookup and replaces the entry; `skip` (no-store, or anyone else's
# no-cache) does neither.
CacheDirective = Literal["use", "refresh", "skip"]
CacheResult = Literal["hit", "miss", "bypass"]
# v2: keyed by the exact text (v1 entries, keyed by a folded form, may hold another input's answer).
KEY_PREFIX = "chatgate:answers:v2"
# FAQ questions are short; a long text is a document, unlikely to come again word for word.
MAX_QUESTION_CHARS = 2000
# A slow Redis must not slow questions down more than this before they go to the engine.
STORE_TIMEOUT = 0.5
# Erasing waits longer (it is not on a question's path), and fails rather than passing for done.
ERASE_TIMEOUT = 5.0


class FinishedAnswer(Protocol):
    """What the cache reads of an answer the engine finished (chat's message row)."""

    @property
    def content(self) -> str: ...
    @property
    def status(self) -> str: ...
    @property
    def error(self) -> dict[str, Any] | None: ...
    @property
    def fallback(self) -> bool: ...
    @property
    def model(self) -> str | None: ...


@dataclass(slots=True)
class CachePlan:
    """What the cache did for one turn, and what it needs to store the turn's answer."""

    result: CacheResult
    key: str
    question: str
    provider_id: str
    model: str
    fallback_answer: str | None
    store: bool
    text: str | None = None
    # The user whose turn asks: an entry the turn stores is listed under them, for erasure.
    owner: str | None = None

    @property
    def hit(self) -> bool:
        return self.text is not None

    @property
    def replaces(self) -> bool:
        """A refresh (only an admin's gets this far, see `directive_for`): the fresh answer
        replaces the shared entry; any other store leaves an existing entry as it is."""
        return self.result == "bypass" and self.store


def database_scope(database_url: str) -> str:
    """A short name for the database (its password left out, so rotating it keeps the cache)."""
    url = make_url(database_url)
    named = f"{url.get_backend_name()}|{url.username}|{url.host}|{url.port}|{url.database}"
    return hashlib.sha256(named.encode("utf-8")).hexdigest()[:12]


def directive_from_header(cache_control: str | None) -> CacheDirective:
    tokens = {t.strip().lower() for t in (cache_control or "").split(",")}
    if "no-store" in tokens:
        return "skip"
    if "no-cache" in tokens or "max-age=0" in tokens:
        return "refresh"
    return "use"


def directive_for(directive: CacheDirective, *, admin: bool) -> CacheDirective:
    """What a caller's directive may do to the shared cache: only an admin's refresh overwrites
    an entry everyone is answered from; anyone else's asks the engine for themselves alone
    (no lookup, nothing stored)."""
    return "skip" if directive == "refresh" and not admin else directive


async def is_personal(text: str) -> bool:
    """Whether the guards' detector finds personal data of any kind in the text, whatever an
    assistant's guard policy: such a text is nobody else's answer or question."""
    if len(text) < OFF_LOOP_CHARS:
        return bool(find_pii(text))
    return bool(await asyncio.to_thread(find_pii, text))


class AnswerCache:
    def __init__(
        self,
        *,
        store: AnswerStore,
        scope: str,
        own_memory_providers: frozenset[str] = frozenset(),
        ring: KeyRing | None = None,
    ) -> None:
        self._store = store
        self._scope = scope
        # With encryption on, answers are stored sealed under the deployment's key, each bound
        # to its own entry's key (a value moved to another entry does not open).
        self._ring = ring
        # Engines that keep the conversation themselves (a Dify chat app): a first answer they
        # never saw would be missing from their memory on the next turn.
        self._own_memory = own_memory_providers

    @classmethod
    def build(
        cls, settings: Settings, redis: Redis | None, ring: KeyRing | None = None
    ) -> AnswerCache | None:
        config: CacheSettings = settings.cache
        if not config.enabled:
            return None
        store: AnswerStore = (
            RedisAnswerStore(redis, ttl_seconds=config.ttl_seconds)
            if redis is not None
            else MemoryAnswerStore(ttl_seconds=config.ttl_seconds, max_entries=config.max_entries)
        )
        own_memory = frozenset(
            p.id for p in settings.providers if p.type == "dify" and p.dify_app_type == "chat"
        )
        return cls(
            store=store,
            scope=database_scope(settings.database_url),
            own_memory_providers=own_memory,
            ring=ring,
        )

    def key(self, *, assistant_id: str, version: int, model: str, sent: str) -> str:
        """`sent`: the question exactly as the engine receives it."""
        digest = question_digest(sent)
        return f"{KEY_PREFIX}:{self._scope}:{assistant_id}:{version}:{model}:{digest}"

    async def consult(
        self,
        *,
        assistant: AssistantConfig,
        provider_id: str,
        question: str,
        directive: CacheDirective = "use",
        owner: str | None = None,
    ) -> CachePlan | None:
        """Looks a context-free question up; None when the cache does not apply to it."""
        version: int | None = getattr(assistant, "version", None)
        if (
            not assistant.cache_answers
            or version is None
            or provider_id != assistant.provider
            or provider_id in self._own_memory
            or len(question) > MAX_QUESTION_CHARS
            # Its answer rests on documents that may change under the same question (and the
            # key holds no revision of them): never cached, so never stale.
            or getattr(assistant, "knowledge_bases", None)
        ):
            return None
        # A question that says nothing (punctuation, invisible characters) is not worth an entry.
        if not normalize_question(question) or await is_personal(question):
            return None
        plan = CachePlan(
            result="bypass",
            key=self.key(
                assistant_id=assistant.id, version=version, model=assistant.model, sent=question
            ),
            question=question,
            provider_id=provider_id,
            model=assistant.model,
            fallback_answer=assistant.fallback_answer,
            store=directive != "skip",
            owner=owner,
        )  # fmt: skip
        if directive == "use":
            with cache_span("get"):
                plan.text = await self._get(plan.key)
            plan.result = "hit" if plan.hit else "miss"
        metrics.cache_requests.labels(plan.result).inc()
        if (stats := request_stats()) is not None:
            stats.cache_hit = plan.hit
        return plan

    async def remember(
        self, plan: CachePlan, *, sent_question: str, provider_id: str, answer: FinishedAnswer
    ) -> bool:
        """Stores a finished answer, if it is one the cache may give to others; whether it
        was offered to the store."""
        if (
            plan.hit
            or not plan.store
            or answer.status != "complete"
            or answer.error is not None
            or not answer.content.strip()
            or answer.fallback
            or answer.model != plan.model
            or provider_id != plan.provider_id
            or sent_question != plan.question
            or (plan.fallback_answer and answer.content.strip() == plan.fallback_answer.strip())
            or await is_personal(answer.content)
        ):
            return False
        index = self.owner_index(plan.owner) if plan.owner else None
        with cache_span("put"):
            await self._put(plan.key, answer.content, replace=plan.replaces, index=index)
        return True

    def owner_index(self, owner: str) -> str:
        """Where the keys of the entries a user's turns stored are listed (named by a hash:
        a Redis key names no user)."""
        digest = hashlib.sha256(owner.encode("utf-8")).hexdigest()[:32]
        return f"{KEY_PREFIX}:{self._scope}:owner:{digest}"

    async def forget_owner(self, owner: str) -> int:
        """Drops every entry the user's turns stored; how many there were. Raises when the
        store cannot be reached: an erasure must not pass for done."""
        async with asyncio.timeout(ERASE_TIMEOUT):
            return await self._store.drop_indexed(self.owner_index(owner))

    async def forget_entry(self, plan: CachePlan) -> None:
        """Drops the entry a turn just stored (its answer was erased meanwhile)."""
        async with asyncio.timeout(ERASE_TIMEOUT):
            await self._store.drop(plan.key)

    async def _get(self, key: str) -> str | None:
        try:
            async with asyncio.timeout(STORE_TIMEOUT):
                stored = await self._store.get(key)
            if stored is None or self._ring is None:
                return stored
            return self._ring.open_text(stored, key.encode())
        except (RedisError, OSError, TimeoutError) as exc:
            log.warning("answer cache lookup failed: %s", exc)
            return None
        except (InvalidTag, KeyError):  # sealed under a key this deployment no longer has
            return None

    async def _put(self, key: str, text: str, *, replace: bool, index: str | None) -> None:
        try:
            if self._ring is not None:
                text = self._ring.seal_text(text, key.encode())
            async with asyncio.timeout(STORE_TIMEOUT):
                await self._store.put(key, text, replace=replace, index=index)
        except (RedisError, OSError, TimeoutError) as exc:
            log.warning("answer cache store failed: %s", exc)
