"""The assistant catalog, for handlers; and the runtime's parts, for trying an assistant."""

from typing import Annotated

from fastapi import Depends, Request

from chatgate.assistants.service import AssistantCatalog
from chatgate.core.parts import Parts, part, parts_of

Catalog = Annotated[AssistantCatalog, Depends(part(AssistantCatalog))]


async def _parts(request: Request) -> Parts:
    return parts_of(request.app)


RuntimeParts = Annotated[Parts, Depends(_parts)]
