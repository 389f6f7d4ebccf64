from fastapi import APIRouter, Request

from chatgate.auth.keys import ApiKeys
from chatgate.auth.schemas import KeyCreate, KeyCreated, KeyList, KeyOut
from chatgate.chat.deps import parse_id
from chatgate.core.deps import AdminUser

router = APIRouter(prefix="/v1/admin/keys", tags=["admin"])


def _keys(request: Request) -> ApiKeys:
    return request.app.state.api_keys


@router.get("", response_model=KeyList)
async def list_keys(request: Request, _: AdminUser) -> KeyList:
    return KeyList(data=[KeyOut.of(k) for k in await _keys(request).list()])


@router.post("", response_model=KeyCreated, status_code=201)
async def create_key(body: KeyCreate, request: Request, admin: AdminUser) -> KeyCreated:
    key, secret = await _keys(request).create(spec=body, admin_id=admin.id)
    return KeyCreated(**KeyOut.of(key).model_dump(), secret=secret)


@router.delete("/{key_id}", response_model=KeyOut)
async def revoke_key(key_id: str, request: Request, admin: AdminUser) -> KeyOut:
    key = await _keys(request).revoke(key_id=parse_id(key_id, what="key_id"), admin_id=admin.id)
    return KeyOut.of(key)
