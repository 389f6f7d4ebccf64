"""An admin of the shared gateway, for the assistants' admin API."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest

from tests.conftest import Caller, Gateway, make_token, open_caller


@pytest.fixture
async def operator(gateway: Gateway) -> AsyncIterator[Caller]:
    """An admin of the test's own, so what it did can be told apart (versions' user_id, rows)."""
    user_id = f"admin-{uuid.uuid4().hex[:8]}"
    async with open_caller(gateway.url, user_id, token=make_token(user_id, admin=True)) as caller:
        yield caller
