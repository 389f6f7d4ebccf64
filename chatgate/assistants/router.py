from fastapi import APIRouter

from chatgate.assistants.deps import Catalog, RuntimeParts
from chatgate.assistants.schemas import (
    AssistantAdminList,
    AssistantAdminOut,
    AssistantCreate,
    AssistantList,
    AssistantOut,
    AssistantUpdate,
    RollbackRequest,
    TryRequest,
    TryResult,
    VersionList,
    VersionOut,
)
from chatgate.auth.deps import AdminUser, CurrentUser
from chatgate.dialects.trial import try_both

router = APIRouter(prefix="/v1", tags=["assistants"])
admin_router = APIRouter(prefix="/v1/admin/assistants", tags=["admin"])


@router.get("/assistants", response_model=AssistantList)
async def list_assistants(catalog: Catalog, _: CurrentUser) -> AssistantList:
    return AssistantList(data=[AssistantOut.of(a) for a in await catalog.enabled()])


@admin_router.get("", response_model=AssistantAdminList)
async def admin_list(catalog: Catalog, _: AdminUser) -> AssistantAdminList:
    rows = await catalog.everything()
    return AssistantAdminList(
        data=[AssistantAdminOut.model_validate(r, from_attributes=True) for r in rows]
    )


@admin_router.post("", response_model=AssistantAdminOut, status_code=201)
async def admin_create(
    body: AssistantCreate, catalog: Catalog, user: AdminUser
) -> AssistantAdminOut:
    row = await catalog.create(user=user, spec=body)
    return AssistantAdminOut.model_validate(row, from_attributes=True)


@admin_router.get("/{assistant_id}", response_model=AssistantAdminOut)
async def admin_get(assistant_id: str, catalog: Catalog, _: AdminUser) -> AssistantAdminOut:
    return AssistantAdminOut.model_validate(await catalog.row(assistant_id), from_attributes=True)


@admin_router.patch("/{assistant_id}", response_model=AssistantAdminOut)
async def admin_update(
    assistant_id: str, body: AssistantUpdate, catalog: Catalog, user: AdminUser
) -> AssistantAdminOut:
    row = await catalog.update(user=user, assistant_id=assistant_id, changes=body)
    return AssistantAdminOut.model_validate(row, from_attributes=True)


@admin_router.delete("/{assistant_id}", response_model=AssistantAdminOut)
async def admin_disable(assistant_id: str, catalog: Catalog, user: AdminUser) -> AssistantAdminOut:
    row = await catalog.disable(user=user, assistant_id=assistant_id)
    return AssistantAdminOut.model_validate(row, from_attributes=True)


@admin_router.get("/{assistant_id}/versions", response_model=VersionList)
async def admin_versions(assistant_id: str, catalog: Catalog, _: AdminUser) -> VersionList:
    rows = await catalog.versions(assistant_id)
    return VersionList(data=[VersionOut.model_validate(r, from_attributes=True) for r in rows])


@admin_router.post("/{assistant_id}/rollback", response_model=AssistantAdminOut)
async def admin_rollback(
    assistant_id: str, body: RollbackRequest, catalog: Catalog, user: AdminUser
) -> AssistantAdminOut:
    row = await catalog.rollback(user=user, assistant_id=assistant_id, version=body.version)
    return AssistantAdminOut.model_validate(row, from_attributes=True)


@admin_router.post("/{assistant_id}/try", response_model=TryResult)
async def admin_try(
    assistant_id: str, body: TryRequest, catalog: Catalog, user: AdminUser, parts: RuntimeParts
) -> TryResult:
    live, draft = await catalog.draft(assistant_id, body.draft)
    return await try_both(parts, user, live=live, draft=draft, question=body.question)
