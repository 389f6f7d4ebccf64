"""API keys: created and revoked by admins, looked up by the hash of the secret.

Lookups are cached per process and dropped whenever any key changes (a shared revision), so a
revoked key stops working on the next request in every process. Without Redis (or while it is
unreachable) nothing announces a revocation made by another process, so an entry is also trusted
for `CACHE_SECONDS` only: a revoked key then stops working everywhere within that time.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import time
import uuid
from dataclasses import dataclass

from redis.asyncio import Redis
from sqlalchemy import select

from chatgate.audit.service import record_audit_event
from chatgate.auth.models import ApiKey
from chatgate.auth.schemas import KeyCreate
from chatgate.core.db import Database
from chatgate.core.errors import NotFound
from chatgate.core.revision import Revision
from chatgate.core.time import utcnow

KEY_PREFIX = "cg_"
REVISION_KEY = "chatgate:keys:revision"
CACHE_LIMIT = 10_000
# How long a process trusts a key it looked up: one indexed read per key per process per
# this many seconds, and the longest a revocation takes to reach a process that cannot hear it.
CACHE_SECONDS = 5.0


def is_api_key(token: str) -> bool:
    return token.startswith(KEY_PREFIX)


def hash_secret(secret: str) -> str:
    # The secrets are 256 random bits: a fast hash is as safe as a slow one here.
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class KeyIdentity:
    id: str
    kind: str
    user_id: str | None
    allowed_cidrs: tuple[str, ...]


class ApiKeys:
    def __init__(self, *, database: Database, redis: Redis | None) -> None:
        self._database = database
        self._revision = Revision(redis, REVISION_KEY)
        self._cache: dict[str, tuple[float, KeyIdentity]] = {}  # digest -> (expires, identity)
        self._cached_at: int | None = None
        self._lock = asyncio.Lock()

    async def identify(self, secret: str) -> KeyIdentity | None:
        """The live (not revoked) key with this secret, or None."""
        revision = await self._revision.current()
        if revision != self._cached_at:
            async with self._lock:
                if revision != self._cached_at:
                    self._cache.clear()
                    self._cached_at = revision
        digest = hash_secret(secret)
        now = time.monotonic()
        if (known := self._cache.get(digest)) is not None:
            expires, identity = known
            if now < expires:
                return identity
            del self._cache[digest]
        async with self._database.session() as db:
            key = (
                await db.scalars(
                    select(ApiKey).where(ApiKey.secret_hash == digest, ApiKey.revoked_at.is_(None))
                )
            ).first()
        if key is None:
            return None
        identity = KeyIdentity(
            id=str(key.id), kind=key.kind, user_id=key.user_id,
            allowed_cidrs=tuple(key.allowed_cidrs or ()),
        )  # fmt: skip
        if len(self._cache) >= CACHE_LIMIT:
            self._cache = {d: entry for d, entry in self._cache.items() if entry[0] > now}
        if len(self._cache) < CACHE_LIMIT:
            self._cache[digest] = (now + CACHE_SECONDS, identity)
        return identity

    async def create(self, *, spec: KeyCreate, admin_id: str) -> tuple[ApiKey, str]:
        secret = KEY_PREFIX + secrets.token_urlsafe(32)
        key = ApiKey(
            name=spec.name, kind=spec.kind, user_id=spec.user_id, prefix=secret[:10],
            secret_hash=hash_secret(secret), allowed_cidrs=spec.allowed_cidrs,
            created_by=admin_id, created_at=utcnow(),
        )  # fmt: skip
        async with self._database.session() as db:
            db.add(key)
            await db.flush()
            record_audit_event(
                db, action="key.created", user_id=admin_id, target_type="api_key",
                target_id=str(key.id),
                details={"name": spec.name, "kind": spec.kind, "user_id": spec.user_id},
            )  # fmt: skip
            await db.commit()
        return key, secret

    async def list(self) -> list[ApiKey]:
        async with self._database.session() as db:
            return list((await db.scalars(select(ApiKey).order_by(ApiKey.id))).all())

    async def revoke(self, *, key_id: uuid.UUID, admin_id: str) -> ApiKey:
        async with self._database.session() as db:
            key = await db.get(ApiKey, key_id)
            if key is None:
                raise NotFound("API key not found", code="key_not_found")
            if key.revoked_at is None:
                key.revoked_at = utcnow()
                record_audit_event(
                    db, action="key.revoked", user_id=admin_id, target_type="api_key",
                    target_id=str(key.id), details={"name": key.name, "kind": key.kind},
                )  # fmt: skip
                await db.commit()
        await self._revision.bump()
        return key
