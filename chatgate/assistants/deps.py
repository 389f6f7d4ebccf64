"""The assistant catalog, for handlers."""

from typing import Annotated

from fastapi import Depends

from chatgate.assistants.service import AssistantCatalog
from chatgate.core.parts import part

Catalog = Annotated[AssistantCatalog, Depends(part(AssistantCatalog))]
