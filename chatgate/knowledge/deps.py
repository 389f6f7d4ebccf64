"""The knowledge service, for handlers."""

from typing import Annotated

from fastapi import Depends

from chatgate.core.parts import part
from chatgate.knowledge.retrieval import Retriever
from chatgate.knowledge.service import Knowledge

KnowledgeBases = Annotated[Knowledge, Depends(part(Knowledge))]
Retrieval = Annotated[Retriever, Depends(part(Retriever))]
