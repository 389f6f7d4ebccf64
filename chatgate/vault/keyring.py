"""The deployment's keys (key-encryption keys): `CHATGATE_ENCRYPTION_KEYS`, comma-separated
`key_id:base64(32 bytes)`, newest first; on the embedded default, a key file made under `./data`
with owner-only permissions on first start. They wrap each user's data key, and seal what the
Redis side holds (cached answers, queued jobs), which erasure deletes rather than shreds."""

from __future__ import annotations

import base64
import binascii
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from chatgate.core.config import ConfigError, Settings

KEY_ID = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
NONCE = 12
SEALED = b"cg1:"
SEALED_TEXT = "cgk1:"


@dataclass(frozen=True, slots=True)
class KeyRing:
    keys: dict[str, AESGCM]
    newest: str

    @classmethod
    def parse(cls, text: str) -> KeyRing:
        keys: dict[str, AESGCM] = {}
        order: list[str] = []
        for item in (part.strip() for part in text.split(",")):
            key_id, colon, encoded = item.partition(":")
            if not colon or not KEY_ID.match(key_id):
                raise ConfigError(
                    "CHATGATE_ENCRYPTION_KEYS: each key is key_id:base64 (key_id of letters, "
                    "digits, - and _)"
                )
            try:
                raw = base64.b64decode(encoded, validate=True)
            except binascii.Error:
                raise ConfigError(f"encryption key {key_id!r} is not base64") from None
            if len(raw) != 32:
                raise ConfigError(f"encryption key {key_id!r} must be 32 bytes (AES-256)")
            if key_id in keys:
                raise ConfigError(f"encryption key id {key_id!r} appears twice")
            keys[key_id] = AESGCM(raw)
            order.append(key_id)
        if not order:
            raise ConfigError("CHATGATE_ENCRYPTION_KEYS holds no key")
        return cls(keys, order[0])

    def wrap(self, secret: bytes, context: bytes) -> tuple[str, bytes]:
        """`secret` sealed under the newest key, bound to `context`: (key id, nonce + sealed)."""
        nonce = os.urandom(NONCE)
        return self.newest, nonce + self.keys[self.newest].encrypt(nonce, secret, context)

    def seal_bytes(self, data: bytes, context: bytes) -> bytes:
        """`cg1:<key id>:` then nonce and ciphertext: what Redis holds (jobs, cached answers)."""
        key_id, sealed = self.wrap(data, context)
        return SEALED + key_id.encode() + b":" + sealed

    def open_bytes(self, stored: bytes, context: bytes) -> bytes:
        key_id, _, sealed = stored[len(SEALED) :].partition(b":")
        return self.unwrap(key_id.decode(), sealed, context)

    def seal_text(self, text: str, context: bytes) -> str:
        """Text sealed as text (`cgk1:` and base64), for stores that hold strings."""
        return SEALED_TEXT + base64.b64encode(self.seal_bytes(text.encode(), context)).decode()

    def open_text(self, stored: str, context: bytes) -> str:
        """The text of `seal_text`; a value stored in the clear (before encryption) as it is."""
        if not stored.startswith(SEALED_TEXT):
            return stored
        sealed = base64.b64decode(stored[len(SEALED_TEXT) :])
        return self.open_bytes(sealed, context).decode()

    def unwrap(self, key_id: str, wrapped: bytes, context: bytes) -> bytes:
        """Raises KeyError for a key id not in the ring, InvalidTag for the wrong key."""
        return self.keys[key_id].decrypt(wrapped[:NONCE], wrapped[NONCE:], context)


def new_key_line(key_id: str = "k1") -> str:
    return f"{key_id}:{base64.b64encode(secrets.token_bytes(32)).decode()}"


def load_keyring(settings: Settings) -> KeyRing | None:
    """The deployment's keys, or None when encryption is turned off. Production (any database
    but the embedded SQLite) must be given keys or turn encryption off explicitly."""
    if not settings.encryption_enabled:
        return None
    if settings.encryption_keys is not None:
        return KeyRing.parse(settings.encryption_keys.get_secret_value())
    if not settings.database_url.startswith("sqlite"):
        raise ConfigError(
            "conversations are encrypted at rest: set CHATGATE_ENCRYPTION_KEYS (key_id:base64 of "
            "32 bytes, e.g. from `chatgate new-key`), or CHATGATE_ENCRYPTION_ENABLED=false to "
            "store them in the clear"
        )
    return KeyRing.parse(_key_file(Path(settings.encryption_key_file)))


def _key_file(path: Path) -> str:
    """The embedded default's key file, made on first start readable by its owner only."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(new_key_line() + "\n")
    if path.stat().st_mode & 0o077:
        raise ConfigError(f"{path} must be readable by its owner only (chmod 600 {path})")
    return path.read_text().strip()
