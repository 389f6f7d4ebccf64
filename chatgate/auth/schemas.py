from __future__ import annotations

import ipaddress
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field, field_validator, model_validator

from chatgate.auth.models import ApiKey


class KeyCreate(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    kind: Literal["user", "service"]
    user_id: str | None = Field(None, min_length=1, max_length=255)
    allowed_cidrs: list[str] = Field(default_factory=list)

    @field_validator("allowed_cidrs")
    @classmethod
    def _networks(cls, cidrs: list[str]) -> list[str]:
        return [str(ipaddress.ip_network(c, strict=False)) for c in cidrs]

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
