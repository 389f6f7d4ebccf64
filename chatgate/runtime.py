"""The runtime: every long-lived part of a chatgate process, built once from settings and closed
in reverse order of opening (an `AsyncExitStack`, so a start that fails half-way closes what it
had opened). The API's lifespan (`main.py`), the queue worker (`worker.py`), the completions lane
and the probes use the same runtime; code below it gets a part by its type (`core/parts.py`).

A new long-lived part (an embedder, a key ring, a stream bus…) is a field here, opened in
`open_runtime` with its closing pushed on the stack right after it opens."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import secrets
import socket
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

from redis.asyncio import Redis

from chatgate.assistants.service import AssistantCatalog
from chatgate.auth.keys import ApiKeys
from chatgate.auth.service import Authenticator
from chatgate.budgets.service import Budgets
from chatgate.budgets.store import MemorySpendStore, RedisSpendStore
from chatgate.cache.service import AnswerCache
from chatgate.chat.answers import AnswerWriter
from chatgate.chat.handoffs import HandoffDesk
from chatgate.chat.liveness import Liveness
from chatgate.chat.streamlog import MemoryStreamLog, RedisStreamLog, StreamLog
from chatgate.chat.turns import TurnManager
from chatgate.core.config import Settings
from chatgate.core.db import Database
from chatgate.core.redis import connect_redis
from chatgate.handoff.webhook import HandoffWebhooks
from chatgate.knowledge.embedders import Embedders
from chatgate.knowledge.ingest import Ingestion
from chatgate.knowledge.retrieval import Retriever
from chatgate.knowledge.service import Knowledge
from chatgate.observability.metrics import forget_this_process
from chatgate.observability.probes import watch_pool
from chatgate.observability.tracing import Tracing
from chatgate.privacy.erasure import Erasure
from chatgate.privacy.notices import ErasureNotices
from chatgate.privacy.retention import RetentionJob
from chatgate.providers.registry import ProviderRegistry
from chatgate.ratelimit.service import RateLimiter
from chatgate.tasks.queue import JobCodec, TaskQueue
from chatgate.usage.ledger import Ledger
from chatgate.usage.prices import Prices
from chatgate.vault.keyring import load_keyring
from chatgate.vault.service import Vault

T = TypeVar("T")
# Seconds a blocking read of the logs (a resuming client, the stops) may wait for its reply.
TAIL_TIMEOUT = 5.0
log = logging.getLogger("chatgate")


@dataclass(frozen=True, slots=True)
class Runtime:
    """A process's parts. Optional ones are None where the settings leave them out."""

    settings: Settings
    database: Database
    redis: Redis | None
    limiter: RateLimiter
    tracing: Tracing | None
    providers: ProviderRegistry
    catalog: AssistantCatalog
    api_keys: ApiKeys
    authenticator: Authenticator
    budgets: Budgets
    cache: AnswerCache | None
    queue: TaskQueue | None
    turns: TurnManager
    embedders: Embedders
    ingestion: Ingestion
    knowledge: Knowledge
    retriever: Retriever
    vault: Vault
    erasure: Erasure
    retention: RetentionJob
    stream_log: StreamLog
    liveness: Liveness | None
    prices: Prices
    ledger: Ledger
    webhooks: HandoffWebhooks
    handoffs: HandoffDesk
    _by_type: dict[type, Any] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        parts = (getattr(self, f.name) for f in dataclasses.fields(self) if f.init)
        by_type = {type(p): p for p in parts if p is not None}
        object.__setattr__(self, "_by_type", by_type)

    def get(self, kind: type[T]) -> T:
        part = self.find(kind)
        if part is None:
            raise LookupError(f"this process has no {kind.__name__}")
        return part

    def find(self, kind: type[T]) -> T | None:
        part: T | None = self._by_type.get(kind)
        return part


@asynccontextmanager
async def open_runtime(
    settings: Settings,
    *,
    limiter: RateLimiter | None = None,
    tracing: Tracing | None = None,
) -> AsyncIterator[Runtime]:
    """Opens every part. `limiter` and `tracing` come from the API's app factory, whose front
    door and request spans are assembled before any lifespan runs; the worker passes neither and
    gets its own. Either way the runtime closes them."""
    async with AsyncExitStack() as stack:
        stack.callback(forget_this_process)
        if tracing is not None:
            stack.push_async_callback(asyncio.to_thread, tracing.shutdown)
        redis = connect_redis(settings.redis_url) if settings.redis_url else None
        if redis is not None:
            stack.push_async_callback(redis.aclose)
        database = Database(settings.database_url, pool_size=settings.database_pool_size)
        stack.push_async_callback(database.close)
        stack.callback(watch_pool(database.engine))
        # The usage ledger closes after everything that records in it (the engines, the turns
        # and their drain), before the database: its last rows are written at close.
        prices = Prices(database=database, redis=redis)
        ledger = Ledger(database=database, prices=prices, every=settings.usage_write_seconds)
        await ledger.start()
        stack.push_async_callback(ledger.close)
        if tracing is not None:
            tracing.instrument_database(database.engine)
        ring = load_keyring(settings)
        vault = Vault(database, ring)
        await vault.start()
        limiter = limiter or RateLimiter(settings.rate_limits, settings.redis_url)
        providers = ProviderRegistry(settings.providers, redis=redis, ledger=ledger)
        await providers.start()
        stack.push_async_callback(providers.close)
        api_keys = ApiKeys(database=database, redis=redis)
        budgets = Budgets(
            database=database, redis=redis,
            store=RedisSpendStore(redis) if redis is not None else MemorySpendStore(),
            pricing=prices,
        )  # fmt: skip
        authenticator = Authenticator(settings, api_keys)
        await authenticator.start()
        stack.push_async_callback(authenticator.close)
        queue = (
            await TaskQueue.connect(
                settings.redis_url, queue_name=settings.task_queue, codec=JobCodec(ring)
            )
            if settings.redis_url
            else None
        )
        if queue is not None:
            stack.push_async_callback(queue.close)
        cache = AnswerCache.build(settings, redis, ring)
        embedders = Embedders.build(settings)
        await embedders.start()
        stack.push_async_callback(embedders.close)
        # Closed before the embedders and the database: a stopped ingestion stays `processing`
        # and the next start marks it interrupted.
        ingestion = Ingestion(
            database=database, embedders=embedders, settings=settings.knowledge, queue=queue
        )
        stack.push_async_callback(ingestion.close)
        knowledge = Knowledge(
            database=database, embedders=embedders, ingestion=ingestion,
            settings=settings.knowledge,
        )  # fmt: skip
        retriever = Retriever(database=database, embedders=embedders)
        log, liveness = await _open_streams(stack, settings, redis, database, vault)
        writer = AnswerWriter(
            database=database, flush_every=settings.stream_flush_seconds, limiter=limiter,
            budgets=budgets,
        )  # fmt: skip
        # After the turns stop, before the database closes: saves still in flight get a last try.
        stack.push_async_callback(writer.close)
        # Closed after the turns stop: an answer ended by the stop may still hand off.
        webhooks = HandoffWebhooks(
            database=database, secret=settings.handoff_webhook_secret,
            backoff=settings.handoff_webhook_backoff_seconds,
        )  # fmt: skip
        stack.push_async_callback(webhooks.close)
        turns = TurnManager(
            database=database, providers=providers, writer=writer, queue=queue, limiter=limiter,
            cache=cache, retriever=retriever, log=log, liveness=liveness,
            on_disconnect=settings.stream_on_disconnect, ledger=ledger, budgets=budgets,
        )  # fmt: skip
        stack.push_async_callback(turns.shutdown)
        catalog = AssistantCatalog(
            database=database, redis=redis, provider_ids={p.id for p in settings.providers},
            local_providers={p.id for p in settings.providers if p.type == "local"},
        )  # fmt: skip
        handoffs = HandoffDesk(
            database=database, providers=providers, catalog=catalog, webhooks=webhooks,
            vault=vault,
        )  # fmt: skip
        turns.on_answer_end(handoffs.after_answer)
        # Erasing a user reaches every process: each drops what it holds of them in memory.
        notices = ErasureNotices(redis)

        async def forget_data_key(user_id: str, _: object) -> None:
            vault.forget(user_id)

        notices.on_erasure(forget_data_key)
        await notices.start()
        stack.push_async_callback(notices.close)
        erasure = Erasure(database=database, turns=turns, notices=notices, cache=cache, queue=queue)
        # After their turns are stopped, in every process (the erasing one first, in its
        # stop_turns step): the user's usage rows are pseudonymized (usage/ledger.py).
        notices.on_erasure(ledger.forget)

        async def destroy_data_key(user_id: str) -> dict[str, int]:
            # Last: whatever of theirs is left anywhere, backups included, no longer opens.
            return {"data_keys": int(await vault.destroy(user_id))}

        erasure.add_step("data_key", destroy_data_key)
        retention = RetentionJob(
            settings=settings, database=database, redis=redis, catalog=catalog, queue=queue
        )
        await retention.start()
        stack.push_async_callback(retention.close)
        yield Runtime(
            settings=settings, database=database, redis=redis, limiter=limiter, tracing=tracing,
            providers=providers, catalog=catalog, api_keys=api_keys, authenticator=authenticator,
            budgets=budgets,
            cache=cache, queue=queue, turns=turns, embedders=embedders, ingestion=ingestion,
            knowledge=knowledge, retriever=retriever, vault=vault, erasure=erasure,
            retention=retention, stream_log=log, liveness=liveness,
            prices=prices, ledger=ledger, webhooks=webhooks,
            handoffs=handoffs,
        )  # fmt: skip


async def _open_streams(
    stack: AsyncExitStack, settings: Settings, redis: Redis | None, database: Database, vault: Vault
) -> tuple[StreamLog, Liveness | None]:
    """The answers' event logs, and with Redis, the heartbeat that finds answers whose process
    died: one process, named in the logs and heartbeats it writes."""
    keep = settings.stream_log_keep_seconds
    if redis is None or settings.redis_url is None:
        memory = MemoryStreamLog(keep_seconds=keep)
        stack.push_async_callback(memory.close)
        return memory, None
    process_id = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
    tail = connect_redis(settings.redis_url, timeout=TAIL_TIMEOUT)
    log = RedisStreamLog(redis, tail, process_id=process_id, keep_seconds=keep)
    stack.push_async_callback(log.close)
    liveness = Liveness(redis, tail, process_id=process_id, database=database, log=log, vault=vault)
    await liveness.start()
    stack.push_async_callback(liveness.close)
    return log, liveness
