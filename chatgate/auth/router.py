from fastapi import APIRouter

from chatgate.auth.deps import AdminUser, Keys
from chatgate.auth.schemas import KeyCreate, KeyCreated, KeyList, KeyOut
from chatgate.core.ids import parse_id

router = APIRouter(prefix="/v1/admin/keys", tags=["admin"])


@router.get("", response_model=KeyList)
async def list_keys(keys: Keys, _: AdminUser) -> KeyList:
    return KeyList(data=[KeyOut.of(k) for k in await keys.list()])


@router.post("", response_model=KeyCreated, status_code=201)
async def create_key(body: KeyCreate, keys: Keys, admin: AdminUser) -> KeyCreated:
    key, secret = await keys.create(spec=body, admin_id=admin.id)
    return KeyCreated(**KeyOut.of(key).model_dump(), secret=secret)


@router.delete("/{key_id}", response_model=KeyOut)
async def revoke_key(key_id: str, keys: Keys, admin: AdminUser) -> KeyOut:
    key = await keys.revoke(key_id=parse_id(key_id, what="key_id"), admin_id=admin.id)
    return KeyOut.of(key)
