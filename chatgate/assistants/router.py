from fastapi import APIRouter

from chatgate.assistants.schemas import AssistantList, AssistantOut
from chatgate.core.deps import Catalog, CurrentUser

router = APIRouter(prefix="/v1", tags=["assistants"])


@router.get("/assistants", response_model=AssistantList)
async def list_assistants(catalog: Catalog, _: CurrentUser) -> AssistantList:
    return AssistantList(data=[AssistantOut.of(a) for a in catalog.all()])
