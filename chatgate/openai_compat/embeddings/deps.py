"""The runtime's parts the embeddings route and the model list take."""

from typing import Annotated

from fastapi import Depends

from chatgate.core.config import Settings
from chatgate.core.parts import part
from chatgate.knowledge.embedders import Embedders
from chatgate.ratelimit.service import RateLimiter

EmbedderSet = Annotated[Embedders, Depends(part(Embedders))]
Limiter = Annotated[RateLimiter, Depends(part(RateLimiter))]
Config = Annotated[Settings, Depends(part(Settings))]
