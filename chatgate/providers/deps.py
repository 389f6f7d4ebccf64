"""The engines, for handlers."""

from typing import Annotated

from fastapi import Depends

from chatgate.core.parts import part
from chatgate.providers.registry import ProviderRegistry

Providers = Annotated[ProviderRegistry, Depends(part(ProviderRegistry))]
