"""`/v1/admin/budgets`: budgets per user and per API key, with what they have spent."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response

from chatgate.auth.deps import AdminUser
from chatgate.budgets.deps import BudgetBook
from chatgate.budgets.models import Scope
from chatgate.budgets.schemas import BudgetList, BudgetOut, BudgetSpec

router = APIRouter(prefix="/v1/admin/budgets", tags=["admin"])
SubjectId = Annotated[str, Path(min_length=1, max_length=255, description="a user or key id")]


@router.get("", response_model=BudgetList)
async def list_budgets(budgets: BudgetBook, _: AdminUser) -> BudgetList:
    return BudgetList(data=[await budgets.view(row) for row in await budgets.everything()])


@router.get("/{scope}/{subject_id}", response_model=BudgetOut)
async def get_budget(
    scope: Scope, subject_id: SubjectId, budgets: BudgetBook, _: AdminUser
) -> BudgetOut:
    return await budgets.view(await budgets.row(scope, subject_id))


@router.put("/{scope}/{subject_id}", response_model=BudgetOut)
async def set_budget(
    scope: Scope, subject_id: SubjectId, body: BudgetSpec, budgets: BudgetBook, admin: AdminUser
) -> BudgetOut:
    row = await budgets.put(admin_id=admin.id, scope=scope, subject_id=subject_id, spec=body)
    return await budgets.view(row)


@router.delete("/{scope}/{subject_id}", status_code=204)
async def remove_budget(
    scope: Scope, subject_id: SubjectId, budgets: BudgetBook, admin: AdminUser
) -> Response:
    await budgets.remove(admin_id=admin.id, scope=scope, subject_id=subject_id)
    return Response(status_code=204)
