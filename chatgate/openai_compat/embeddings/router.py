"""`POST /v1/embeddings`, in OpenAI's dialect (its errors too)."""

from __future__ import annotations

from fastapi import APIRouter, Response

from chatgate.auth.deps import CurrentUser
from chatgate.auth.service import acting_user
from chatgate.budgets.deps import BudgetBook
from chatgate.openai_compat.embeddings.deps import EmbedderSet, Limiter
from chatgate.openai_compat.embeddings.service import EmbeddingRequest, create_embeddings
from chatgate.openai_compat.errors import OpenAIErrorRoute
from chatgate.usage.deps import UsageLedger

router = APIRouter(prefix="/v1", tags=["openai"], route_class=OpenAIErrorRoute)


@router.post("/embeddings")
async def embeddings(
    body: EmbeddingRequest,
    embedders: EmbedderSet,
    limiter: Limiter,
    ledger: UsageLedger,
    budgets: BudgetBook,
    user: CurrentUser,
) -> Response:
    if user.is_service and body.user:
        user = acting_user(user, body.user)
    answer = await create_embeddings(
        body, embedders=embedders, limiter=limiter, ledger=ledger, user_id=user.id,
        key_id=user.key_id, budgets=budgets,
    )  # fmt: skip
    return Response(answer, media_type="application/json")
