"""The budgets' shapes in the admin API (`docs/api.md`, "Budgets")."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, model_validator

from chatgate.budgets.models import Period, Scope

# Within PostgreSQL's BIGINT, and far beyond any real budget.
MAX_TOKENS = 10**15


class BudgetSpec(BaseModel):
    """A budget as an admin sets it: a period and at least one maximum."""

    model_config = ConfigDict(extra="forbid")

    period: Period
    max_tokens: int | None = Field(None, ge=0, le=MAX_TOKENS, description="prompt and answer")
    max_cost: float | None = Field(
        None, ge=0, allow_inf_nan=False, description="in the prices' currency"
    )

    @model_validator(mode="after")
    def _one_maximum(self) -> BudgetSpec:
        if self.max_tokens is None and self.max_cost is None:
            raise ValueError("give max_tokens, max_cost or both")
        return self


class BudgetOut(BaseModel):
    scope: Scope
    id: str
    period: Period
    max_tokens: int | None
    max_cost: float | None
    spent_tokens: int = Field(description="settled in this period")
    spent_cost: float
    reserved_tokens: int = Field(description="held by calls still being answered")
    resets_at: datetime = Field(description="the next UTC midnight, or first of the month")


class BudgetList(BaseModel):
    data: list[BudgetOut]
