"""The privacy routes' parts, by type (`core/parts.py`)."""

from typing import Annotated

from fastapi import Depends

from chatgate.core.parts import part
from chatgate.privacy.erasure import Erasure
from chatgate.privacy.retention import RetentionJob

Erasing = Annotated[Erasure, Depends(part(Erasure))]
Retention = Annotated[RetentionJob, Depends(part(RetentionJob))]
