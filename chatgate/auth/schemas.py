from __future__ import annotations

import ipaddress
import re
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field, field_validator, model_validator

from chatgate.auth.models import ApiKey
from chatgate.core.text import is_unicode_text

# C0 and C1 control characters, DEL among them. NUL is refused by PostgreSQL's text type (a 500
# before this check); none of them belongs in an id that logs and audit events show.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
USER_ID_RULE = "1 to 255 characters, none of them a control character"


def is_valid_user_id(value: str) -> bool:
    # A token's `sub` is JSON: it can hold lone surrogates, which no database stores (a 500).
    return 0 < len(value) <= 255 and _CONTROL.search(value) is None and is_unicode_text(value)


class KeyCreate(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    kind: Literal["user", "service"]
    user_id: str | None = Field(None, min_length=1, max_length=255)
    allowed_cidrs: list[str] = Field(default_factory=list)

    @field_validator("allowed_cidrs")
    @classmethod
    def _networks(cls, cidrs: list[str]) -> list[str]:
        return [str(ipaddress.ip_network(c, strict=False)) for c in cidrs]

    @field_validator("user_id")
    @classmethod
    def _usable_user_id(cls, user_id: str | None) -> str | None:
        if user_id is not None and not is_valid_user_id(user_id):
            raise ValueError(f"a user_id is {USER_ID_RULE}")
        return user_id

    @model_validator(mode="after")
    def _user_key_names_its_user(self) -> KeyCreate:
        if self.kind == "user" and not self.user_id:
            raise ValueError("a user key needs the user_id it acts as")
        return self


class KeyOut(BaseModel):
    id: str
    name: str
    kind: str
    user_id: str | None
    prefix: str
    allowed_cidrs: list[str]
    created_by: str
    created_at: datetime
    revoked_at: datetime | None

    @classmethod
    def of(cls, key: ApiKey) -> KeyOut:
        return cls(
            id=str(key.id), name=key.name, kind=key.kind, user_id=key.user_id, prefix=key.prefix,
            allowed_cidrs=key.allowed_cidrs, created_by=key.created_by, created_at=key.created_at,
            revoked_at=key.revoked_at,
        )  # fmt: skip


class KeyCreated(KeyOut):
    secret: str = Field(description="shown this once; only its hash is stored")


class KeyList(BaseModel):
    data: list[KeyOut]
