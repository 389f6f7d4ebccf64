"""API keys: hashed, shown once, revocable everywhere; service keys act for isolated end users;
IP allow-lists, global and per key, that believe X-Forwarded-For only from trusted proxies."""

from __future__ import annotations

import asyncio
import hashlib
import time
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import create_async_engine

from chatgate.auth.keys import CACHE_SECONDS
from chatgate.auth.models import ApiKey
from chatgate.core.policies import AccessSettings
from chatgate.providers.http import opaque_user
from tests.conftest import Double, Gateway, make_token, settings_for
from tests.runner import run_chatgate

REDIS_URL = "redis://127.0.0.1:6379/0"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
async def admin(gateway: Gateway) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        base_url=gateway.url, headers=bearer(make_token("key-admin", admin=True))
    ) as client:
        yield client


async def new_key(admin: httpx.AsyncClient, **body: object) -> dict[str, object]:
    response = await admin.post("/v1/admin/keys", json=body)
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


async def test_user_key_acts_as_its_user_and_is_stored_hashed(
    admin: httpx.AsyncClient, gateway: Gateway
) -> None:
    key = await new_key(admin, name="mobile app", kind="user", user_id="carol")
    secret = str(key["secret"])
    assert secret.startswith("cg_") and len(secret) > 40
    async with httpx.AsyncClient(base_url=gateway.url, headers=bearer(secret)) as as_key:
        session = (await as_key.post("/v1/sessions", json={"assistant_id": "echo"})).json()
    async with httpx.AsyncClient(base_url=gateway.url, headers=bearer(make_token("carol"))) as jwt:
        assert (await jwt.get(f"/v1/sessions/{session['id']}")).status_code == 200
    listed = (await admin.get("/v1/admin/keys")).json()["data"]
    mine = next(k for k in listed if k["id"] == key["id"])
    assert "secret" not in mine and mine["prefix"] == secret[:10]
    engine = create_async_engine(gateway.settings.database_url)
    async with engine.connect() as conn:
        row = (await conn.execute(select(ApiKey).where(ApiKey.id == uuid.UUID(mine["id"])))).one()
    await engine.dispose()
    assert row.secret_hash == hashlib.sha256(secret.encode()).hexdigest()
    assert secret not in " ".join(str(v) for v in row)


async def test_bad_and_revoked_keys_are_refused(admin: httpx.AsyncClient, gateway: Gateway) -> None:
    key = await new_key(admin, name="to revoke", kind="user", user_id="dave")
    async with httpx.AsyncClient(base_url=gateway.url, headers=bearer(str(key["secret"]))) as c:
        assert (await c.get("/v1/assistants")).status_code == 200
        revoked = await admin.delete(f"/v1/admin/keys/{key['id']}")
        assert revoked.json()["revoked_at"] is not None
        refused = await c.get("/v1/assistants")
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "invalid_api_key"
    async with httpx.AsyncClient(base_url=gateway.url, headers=bearer("cg_made_up")) as c:
        assert (await c.get("/v1/assistants")).json()["error"]["code"] == "invalid_api_key"
    actions = [e["action"] for e in (await admin.get("/v1/admin/audit")).json()["data"]]
    assert "key.created" in actions and "key.revoked" in actions


async def test_only_admins_manage_keys(gateway: Gateway) -> None:
    async with httpx.AsyncClient(base_url=gateway.url, headers=bearer(make_token("eve"))) as c:
        response = await c.post("/v1/admin/keys", json={"name": "x", "kind": "service"})
    assert response.status_code == 403


async def test_service_key_end_users_are_isolated(
    admin: httpx.AsyncClient, gateway: Gateway
) -> None:
    key = await new_key(admin, name="crm backend", kind="service")
    async with httpx.AsyncClient(base_url=gateway.url, headers=bearer(str(key["secret"]))) as svc:
        first = await svc.post(
            "/v1/qa", json={"question": "hello", "user_id": "shopper-1", "assistant_id": "echo"}
        )
        assert first.status_code == 200, first.text
        session_id = first.json()["session_id"]
        own = await svc.get(f"/v1/sessions/{session_id}", headers={"X-Chatgate-User": "shopper-1"})
        other = await svc.get(
            f"/v1/sessions/{session_id}", headers={"X-Chatgate-User": "shopper-2"}
        )
        continued = await svc.post(
            "/v1/qa", json={"question": "again", "user_id": "shopper-2", "session_id": session_id}
        )
        completion = await svc.post(
            "/v1/chat/completions",
            json={
                "model": "echo",
                "user": "shopper-3",
                "messages": [{"role": "user", "content": "x"}],
            },
        )
    assert own.status_code == 200
    assert other.status_code == 404 and other.json()["error"]["code"] == "session_not_found"
    assert continued.status_code == 404
    assert completion.status_code == 200
    # The engine gets the acted-for user, as the opaque stand-in it is always sent.
    assert gateway.double.api.requests[-1]["user"] == opaque_user("shopper-3")
    async with httpx.AsyncClient(base_url=gateway.url, headers=bearer(make_token("frank"))) as c:
        refused = await c.get("/v1/sessions", headers={"X-Chatgate-User": "shopper-1"})
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "acting_for_user_forbidden"


async def test_a_key_may_be_bound_to_networks(admin: httpx.AsyncClient, gateway: Gateway) -> None:
    key = await new_key(admin, name="office only", kind="user", user_id="gina",
                        allowed_cidrs=["10.0.0.0/8"])  # fmt: skip
    async with httpx.AsyncClient(base_url=gateway.url, headers=bearer(str(key["secret"]))) as c:
        response = await c.get("/v1/assistants")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "ip_not_allowed"
    bad = await admin.post("/v1/admin/keys", json={"name": "x", "kind": "service",
                                                   "allowed_cidrs": ["not-a-network"]})  # fmt: skip
    assert bad.status_code == 422


async def test_revocation_reaches_every_process(database_url: str, openai_double: Double) -> None:
    settings = settings_for(database_url, openai_double.url, redis_url=REDIS_URL)
    with run_chatgate(settings) as first, run_chatgate(settings) as second:
        async with httpx.AsyncClient(
            base_url=first, headers=bearer(make_token("root", admin=True))
        ) as on_first:
            key = await new_key(on_first, name="shared", kind="user", user_id="hank")
            async with httpx.AsyncClient(
                base_url=second, headers=bearer(str(key["secret"]))
            ) as on_second:
                assert (await on_second.get("/v1/assistants")).status_code == 200
                await on_first.delete(f"/v1/admin/keys/{key['id']}")
                assert (await on_second.get("/v1/assistants")).status_code == 401


async def test_global_allow_list_and_trusted_proxies(
    database_url: str, openai_double: Double
) -> None:
    token = bearer(make_token("ivan"))
    closed = settings_for(database_url, openai_double.url,
                          access=AccessSettings(allowed_cidrs=["203.0.113.0/24"]))  # fmt: skip
    with run_chatgate(closed) as url:
        async with httpx.AsyncClient(base_url=url, headers=token) as c:
            assert (await c.get("/health")).status_code == 200
            refused = await c.get("/v1/assistants")
            assert (
                refused.status_code == 403 and refused.json()["error"]["code"] == "ip_not_allowed"
            )
            spoofed = await c.get("/v1/assistants", headers={"X-Forwarded-For": "203.0.113.7"})
            assert spoofed.status_code == 403  # loopback is not a trusted proxy here
    proxied = settings_for(database_url, openai_double.url, access=AccessSettings(
        allowed_cidrs=["203.0.113.0/24"], trusted_proxies=["127.0.0.0/8"]))  # fmt: skip
    with run_chatgate(proxied) as url:
        async with httpx.AsyncClient(base_url=url, headers=token) as c:
            through = await c.get("/v1/assistants", headers={"X-Forwarded-For": "203.0.113.7"})
            assert through.status_code == 200
            outside = await c.get("/v1/assistants", headers={"X-Forwarded-For": "198.51.100.1"})
            assert outside.status_code == 403
            assert (await c.get("/v1/assistants")).status_code == 403


async def test_revocation_reaches_every_process_without_redis(
    database_url: str, openai_double: Double
) -> None:
    """`--workers N` on the embedded default: no Redis announces the revocation, so the other
    process's cached key must expire on its own, within CACHE_SECONDS."""
    settings = settings_for(database_url, openai_double.url)
    assert settings.redis_url is None
    with run_chatgate(settings) as first, run_chatgate(settings) as second:
        async with httpx.AsyncClient(
            base_url=first, headers=bearer(make_token("root", admin=True))
        ) as on_first:
            key = await new_key(on_first, name="no redis", kind="user", user_id="iris")
            async with httpx.AsyncClient(
                base_url=second, headers=bearer(str(key["secret"]))
            ) as on_second:
                assert (await on_second.get("/v1/assistants")).status_code == 200  # now cached
                await on_first.delete(f"/v1/admin/keys/{key['id']}")
                revoked_at = time.monotonic()
                status = 200
                while status == 200 and time.monotonic() - revoked_at < CACHE_SECONDS + 3:
                    status = (await on_second.get("/v1/assistants")).status_code
                    await asyncio.sleep(0.2)
    assert status == 401
    assert time.monotonic() - revoked_at < CACHE_SECONDS + 3
