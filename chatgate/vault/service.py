"""The vault: each user's data key, made on their first request, wrapped by the deployment's
newest key (`keyring.py`) and kept unwrapped in memory while used; sealing and opening with it;
destroying it (crypto-shredding: what it sealed can no longer be read anywhere, backups
included); re-wrapping under a new deployment key (`chatgate rotate-keys`)."""

from __future__ import annotations

import logging
import os
import secrets
from binascii import a2b_base64, b2a_base64
from collections import OrderedDict
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError

from chatgate.core.config import ConfigError
from chatgate.core.db import Database
from chatgate.vault.keyring import NONCE, KeyRing
from chatgate.vault.models import DataKeyRow
from chatgate.vault.sealed import PREFIX, Sealing, sealing

log = logging.getLogger("chatgate.vault")
KEPT = 50_000  # unwrapped data keys kept in memory (about 200 bytes each)
REF_LENGTH = 16
_REF_AT = len(PREFIX)
_PAYLOAD_AT = _REF_AT + REF_LENGTH  # the ":" before the payload


@dataclass(frozen=True, slots=True)
class UserCipher:
    """One user's data key, unwrapped; `ref` is REF_LENGTH hex digits."""

    ref: str
    aead: AESGCM

    def seal(self, text: str) -> str:
        nonce = os.urandom(NONCE)
        sealed = self.aead.encrypt(nonce, text.encode("utf-8"), self.ref.encode())
        return f"{PREFIX}{self.ref}:{b2a_base64(nonce + sealed, newline=False).decode()}"

    def open(self, payload: str) -> str:
        raw = a2b_base64(payload)
        return self.aead.decrypt(raw[:NONCE], raw[NONCE:], self.ref.encode()).decode("utf-8")


class Vault:
    def __init__(self, database: Database, ring: KeyRing | None) -> None:
        self._database = database
        self._ring = ring
        self._by_owner: OrderedDict[str, UserCipher] = OrderedDict()
        self._by_ref: dict[str, UserCipher] = {}

    @property
    def enabled(self) -> bool:
        return self._ring is not None

    async def start(self) -> None:
        """Refuses to start with keys that cannot open the data keys already stored: a clear
        error now, never unreadable answers later."""
        async with self._database.session() as db:
            stored = (
                await db.execute(
                    select(DataKeyRow.kek_id, func.min(DataKeyRow.owner)).group_by(
                        DataKeyRow.kek_id
                    )
                )
            ).all()
            if not stored:
                return
            if self._ring is None:
                raise ConfigError(
                    "the database holds encrypted conversations: set CHATGATE_ENCRYPTION_KEYS "
                    "(or keep the key file) to open them"
                )
            for kek_id, owner in stored:
                if kek_id not in self._ring.keys:
                    raise ConfigError(
                        f"data keys are wrapped by encryption key {kek_id!r}, which "
                        "CHATGATE_ENCRYPTION_KEYS lacks (keep older keys after the newest until "
                        "`chatgate rotate-keys` has run)"
                    )
                row = await db.get(DataKeyRow, owner)
                assert row is not None
                try:
                    self._unwrap(row)
                except InvalidTag:
                    raise ConfigError(
                        f"encryption key {kek_id!r} is not the key the data keys were wrapped "
                        "with: wrong CHATGATE_ENCRYPTION_KEYS"
                    ) from None

    async def enter(self, owner: str) -> None:
        """Seal and open as `owner` for the rest of this request or job (and the tasks it
        starts)."""
        cipher = await self.cipher(owner) if self._ring is not None else None
        sealing.set(Sealing(self, cipher))

    async def cipher(self, owner: str) -> UserCipher:
        kept = self._by_owner.get(owner)
        if kept is not None:
            return kept
        assert self._ring is not None, "only with encryption on"
        async with self._database.session() as db:
            row = await db.get(DataKeyRow, owner)
            if row is None:
                secret = AESGCM.generate_key(bit_length=256)
                ref = secrets.token_hex(REF_LENGTH // 2)
                kek_id, wrapped = self._ring.wrap(secret, ref.encode())
                db.add(DataKeyRow(owner=owner, ref=ref, kek_id=kek_id, wrapped=wrapped))
                try:
                    await db.commit()
                except IntegrityError:  # made by another request at the same moment
                    await db.rollback()
                    row = await db.get(DataKeyRow, owner)
                    assert row is not None
                else:
                    return self._keep(owner, UserCipher(ref, AESGCM(secret)))
        return self._keep(owner, UserCipher(row.ref, AESGCM(self._unwrap(row))))

    async def close(self) -> None:
        """Closes the vault's database (a tool's own; the runtime closes the one it shares)."""
        await self._database.close()

    async def load_all(self) -> None:
        """Every user's data key, for a tool that reads everyone's conversations (a check of
        what is stored, a migration); a request or job loads only its own user's."""
        assert self._ring is not None, "only with encryption on"
        async with self._database.session() as db:
            for row in await db.scalars(select(DataKeyRow)):
                self._keep(row.owner, UserCipher(row.ref, AESGCM(self._unwrap(row))))

    def open(self, stored: str) -> str:
        """A sealed value's text; "" when its key is gone (the user was erased) or unknown here.
        On the history read's path: slices at fixed places, no split (docs/benchmarks.md)."""
        cipher = self._by_ref.get(stored[_REF_AT:_PAYLOAD_AT])
        return "" if cipher is None else cipher.open(stored[_PAYLOAD_AT + 1 :])

    async def destroy(self, owner: str) -> bool:
        """Shreds the user's data key, here and in the database; True when there was one."""
        self.forget(owner)
        async with self._database.session() as db:
            result = await db.execute(delete(DataKeyRow).where(DataKeyRow.owner == owner))
            await db.commit()
        return bool(result.rowcount)  # type: ignore[attr-defined]

    def forget(self, owner: str) -> None:
        """Drops the user's unwrapped key from this process's memory."""
        cipher = self._by_owner.pop(owner, None)
        if cipher is not None:
            self._by_ref.pop(cipher.ref, None)

    async def rotate(self, batch: int = 500) -> int:
        """Re-wraps every data key not under the newest deployment key, `batch` per
        transaction, while serving; the number re-wrapped. Sealed values are untouched: they
        are sealed by the data keys, which do not change."""
        assert self._ring is not None, "only with encryption on"
        done = 0
        while True:
            async with self._database.session() as db:
                rows = list(
                    await db.scalars(
                        select(DataKeyRow)
                        .where(DataKeyRow.kek_id != self._ring.newest)
                        .limit(batch)
                    )
                )
                if not rows:
                    return done
                for row in rows:
                    kek_id, wrapped = self._ring.wrap(self._unwrap(row), row.ref.encode())
                    await db.execute(
                        update(DataKeyRow)
                        .where(DataKeyRow.owner == row.owner, DataKeyRow.kek_id == row.kek_id)
                        .values(kek_id=kek_id, wrapped=wrapped)
                    )
                await db.commit()
                done += len(rows)

    def _unwrap(self, row: DataKeyRow) -> bytes:
        assert self._ring is not None
        return self._ring.unwrap(row.kek_id, row.wrapped, row.ref.encode())

    def _keep(self, owner: str, cipher: UserCipher) -> UserCipher:
        self._by_owner[owner] = cipher
        self._by_ref[cipher.ref] = cipher
        while len(self._by_owner) > KEPT:
            _, dropped = self._by_owner.popitem(last=False)
            self._by_ref.pop(dropped.ref, None)
        return cipher
