"""The usage ledger's API shapes (docs/api.md, "Usage and cost")."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

from chatgate.usage.prices import Price

# What `GET /v1/admin/usage` sums by.
GroupBy = Literal["user", "key", "assistant", "model", "day"]


class UsageGroup(BaseModel):
    group: str | None  # the user id, key id, assistant id, model or day; null: no key, …
    requests: int
    prompt_tokens: int
    completion_tokens: int
    cost: float
    cached_requests: int


class UsageReport(BaseModel):
    data: list[UsageGroup]


class PriceOut(BaseModel):
    model: str
    input_per_million: float
    output_per_million: float

    @classmethod
    def of(cls, price: Price) -> PriceOut:
        return cls(
            model=price.model,
            input_per_million=price.input_per_million,
            output_per_million=price.output_per_million,
        )


class PriceList(BaseModel):
    data: list[PriceOut]
