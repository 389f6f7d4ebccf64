"""The usage ledger's admin routes: usage summed, and the prices it is costed at."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response

from chatgate.auth.deps import AdminUser
from chatgate.core.config import PriceConfig
from chatgate.core.deps import DbSession
from chatgate.usage.deps import PriceTable
from chatgate.usage.report import parse_instant, usage_report
from chatgate.usage.schemas import GroupBy, PriceList, PriceOut, UsageReport

router = APIRouter(prefix="/v1/admin", tags=["admin"])
# Names are text without control characters (PostgreSQL stores no NUL): else 422.
PRINTABLE = r"^[^\x00-\x1f\x7f]+$"
# Model names hold slashes (`meta-llama/Llama-3.1-8B`): the rest of the path is the name.
ModelName = Annotated[str, Path(min_length=1, max_length=200, pattern=PRINTABLE)]
Filter = Annotated[str | None, Query(min_length=1, max_length=255, pattern=PRINTABLE)]


@router.get("/usage", response_model=UsageReport)
async def read_usage(
    db: DbSession,
    _: AdminUser,
    group_by: GroupBy = "day",
    since: str | None = None,
    until: str | None = None,
    user_id: Filter = None,
    key_id: Filter = None,
    assistant_id: Filter = None,
) -> UsageReport:
    groups = await usage_report(
        db, group_by=group_by,
        since=parse_instant(since, name="since") if since else None,
        until=parse_instant(until, name="until") if until else None,
        user_id=user_id, key_id=key_id, assistant_id=assistant_id,
    )  # fmt: skip
    return UsageReport(data=groups)


@router.get("/prices", response_model=PriceList)
async def read_prices(prices: PriceTable, _: AdminUser) -> PriceList:
    table = await prices.refresh()
    return PriceList(data=[PriceOut.of(p) for p in sorted(table.values(), key=lambda p: p.model)])


@router.put("/prices/{model:path}", response_model=PriceOut)
async def put_price(
    model: ModelName, body: PriceConfig, prices: PriceTable, admin: AdminUser
) -> PriceOut:
    return PriceOut.of(await prices.put(model=model, price=body, user_id=admin.id))


@router.delete("/prices/{model:path}", status_code=204)
async def delete_price(model: ModelName, prices: PriceTable, admin: AdminUser) -> Response:
    await prices.delete(model=model, user_id=admin.id)
    return Response(status_code=204)
