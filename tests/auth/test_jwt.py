"""Who is calling: HS256 tokens, JWKS-signed RS256/ES256 tokens from a key server over real HTTP,
and the trace id every answer carries, errors included."""

from __future__ import annotations

import json
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.warnings import InsecureKeyLengthWarning

from tests.conftest import (
    JWT_AUDIENCE,
    JWT_SECRET,
    Caller,
    Double,
    Gateway,
    assert_error,
    make_token,
    open_caller,
    remote_only_settings,
)
from tests.doubles.server import serve_app
from tests.runner import run_chatgate


def claims(sub: str, **extra: Any) -> dict[str, Any]:
    return {"sub": sub, "exp": int(time.time()) + 600, "aud": JWT_AUDIENCE, **extra}


def hs512_with_the_right_secret() -> str:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", InsecureKeyLengthWarning)
        return jwt.encode(claims("alice"), JWT_SECRET, algorithm="HS512")


async def get_sessions(gateway_url: str, authorization: str | None) -> httpx.Response:
    headers = {"Authorization": authorization} if authorization is not None else {}
    async with httpx.AsyncClient(base_url=gateway_url) as http:
        return await http.get("/v1/sessions", headers=headers)


async def test_no_token_is_401_missing_token(gateway: Gateway) -> None:
    response = await get_sessions(gateway.url, None)
    assert_error(response, 401, "missing_token")
    assert response.headers["www-authenticate"] == "Bearer"
    async with httpx.AsyncClient(base_url=gateway.url) as http:
        for response in (
            await http.post("/v1/sessions", json={"assistant_id": "echo"}),
            await http.get("/v1/assistants"),
            await http.post("/v1/switch-assistant", json={"assistant_id": "echo"}),
            await http.get("/v1/history/00000000-0000-0000-0000-000000000000"),
        ):
            assert_error(response, 401, "missing_token")


@pytest.mark.parametrize(
    "authorization",
    [
        "Bearer garbage",
        "Bearer a.b.c",
        "Bearer",
        "Basic dXNlcjpwYXNz",
        "token-without-scheme",
    ],
)
async def test_garbage_is_401_invalid_token(gateway: Gateway, authorization: str) -> None:
    response = await get_sessions(gateway.url, authorization)
    assert_error(response, 401, "invalid_token")


async def test_expired_token_is_401_token_expired(gateway: Gateway) -> None:
    expired = make_token("alice-expired", ttl=-120)
    assert_error(await get_sessions(gateway.url, f"Bearer {expired}"), 401, "token_expired")


@pytest.mark.parametrize(
    "token",
    [
        pytest.param(make_token("mallory", secret="another-secret-" + "y" * 40), id="wrong-secret"),
        pytest.param(jwt.encode({"exp": int(time.time()) + 600}, JWT_SECRET), id="no-sub"),
        pytest.param(jwt.encode({"sub": "alice"}, JWT_SECRET), id="no-exp"),
        pytest.param(jwt.encode(claims(""), JWT_SECRET), id="empty-sub"),
        pytest.param(jwt.encode(claims("x" * 256), JWT_SECRET), id="sub-too-long"),
        pytest.param(jwt.encode(claims("alice"), None, algorithm="none"), id="alg-none"),
        pytest.param(hs512_with_the_right_secret(), id="hs512"),
    ],
)
async def test_tokens_that_prove_nothing_are_401(gateway: Gateway, token: str) -> None:
    assert_error(await get_sessions(gateway.url, f"Bearer {token}"), 401, "invalid_token")


async def test_a_token_for_another_application_is_401(gateway: Gateway) -> None:
    """The identity provider's tokens for other applications (another `aud`, or none) prove
    nothing to chatgate: the audience is checked by default in jwt mode."""
    for token in (
        jwt.encode(claims("alice", aud="another-app"), JWT_SECRET),
        jwt.encode({k: v for k, v in claims("alice").items() if k != "aud"}, JWT_SECRET),
    ):
        assert_error(await get_sessions(gateway.url, f"Bearer {token}"), 401, "invalid_token")
    several = jwt.encode(claims("alice", aud=["another-app", JWT_AUDIENCE]), JWT_SECRET)
    assert (await get_sessions(gateway.url, f"Bearer {several}")).status_code == 200


async def test_the_user_is_the_tokens_subject(gateway: Gateway) -> None:
    first = make_token("same-person-1234")
    async with open_caller(gateway.url, "same-person-1234", token=first) as caller:
        session = await caller.new_session("echo")
    # Another token for the same subject sees the same sessions.
    async with open_caller(gateway.url, "same-person-1234") as caller:
        listed = (await caller.http.get("/v1/sessions")).json()["data"]
    assert [s["id"] for s in listed] == [session["id"]]
    lower = make_token("bearer-scheme-case")
    assert (await get_sessions(gateway.url, f"bearer {lower}")).status_code == 200


# --- JWKS -------------------------------------------------------------------------------------


@dataclass
class KeyServer:
    """A JWKS endpoint over real HTTP, counting how often it is asked."""

    keys: list[dict[str, Any]]
    fetches: int = 0
    rsa_key: rsa.RSAPrivateKey = field(init=False)
    ec_key: ec.EllipticCurvePrivateKey = field(init=False)

    async def jwks(self, _: web.Request) -> web.Response:
        self.fetches += 1
        return web.json_response({"keys": self.keys})

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/.well-known/jwks.json", self.jwks)
        return app


def public_jwk(key: Any, kid: str, alg: str) -> dict[str, Any]:
    algorithm = jwt.get_algorithm_by_name(alg)
    jwk: dict[str, Any] = json.loads(algorithm.to_jwk(key.public_key()))
    return {**jwk, "kid": kid, "alg": alg, "use": "sig"}


@dataclass
class JwksGateway:
    url: str
    keys: KeyServer


@pytest.fixture(scope="module")
def jwks_gateway(
    tmp_path_factory: pytest.TempPathFactory, openai_double: Double
) -> Iterator[JwksGateway]:
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ec_key = ec.generate_private_key(ec.SECP256R1())
    server = KeyServer(
        keys=[public_jwk(rsa_key, "rsa-1", "RS256"), public_jwk(ec_key, "ec-1", "ES256")]
    )
    server.rsa_key, server.ec_key = rsa_key, ec_key
    path: Path = tmp_path_factory.mktemp("jwks") / "chatgate.db"
    with serve_app(server.app()) as keys_url:
        settings = remote_only_settings(
            f"sqlite+aiosqlite:///{path}",
            openai_double.url,
            jwt_secret=None,
            jwt_jwks_url=f"{keys_url}/.well-known/jwks.json",
        )
        with run_chatgate(settings) as url:
            yield JwksGateway(url=url, keys=server)


def signed(key: Any, alg: str, kid: str | None, sub: str, **extra: Any) -> str:
    headers = {"kid": kid} if kid else None
    return jwt.encode(claims(sub, **extra), key, algorithm=alg, headers=headers)


async def test_rs256_and_es256_tokens_from_the_jwks_are_accepted(
    jwks_gateway: JwksGateway,
) -> None:
    keys = jwks_gateway.keys
    rs = signed(keys.rsa_key, "RS256", "rsa-1", "jwks-user")
    es = signed(keys.ec_key, "ES256", "ec-1", "jwks-user")
    async with open_caller(jwks_gateway.url, "jwks-user", token=rs) as caller:
        session = await caller.new_session("echo")
        sent = await caller.http.post(
            f"/v1/sessions/{session['id']}/messages", json={"content": "signed hello"}
        )
        assert sent.status_code == 200, sent.text
    async with open_caller(jwks_gateway.url, "jwks-user", token=es) as caller:
        listed = (await caller.http.get("/v1/sessions")).json()["data"]
    assert [s["id"] for s in listed] == [session["id"]]
    # The keys were fetched once and kept.
    assert keys.fetches == 1
    for _ in range(3):
        assert (await get_sessions(jwks_gateway.url, f"Bearer {es}")).status_code == 200
    assert keys.fetches == 1


async def test_tokens_the_jwks_cannot_vouch_for_are_401(jwks_gateway: JwksGateway) -> None:
    keys = jwks_gateway.keys
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    for token in (
        signed(keys.rsa_key, "RS256", "unknown-kid", "jwks-user"),
        signed(stranger, "RS256", "rsa-1", "jwks-user"),
        signed(keys.ec_key, "ES256", "rsa-1", "jwks-user"),
        signed(keys.rsa_key, "RS256", "ec-1", "jwks-user"),
        signed(keys.rsa_key, "PS256", "ec-1", "jwks-user"),
        signed(ec.generate_private_key(ec.SECP384R1()), "ES384", "ec-1", "jwks-user"),
        signed(keys.rsa_key, "RS256", "rsa-1", "jwks-user", exp=int(time.time()) - 120),
        jwt.encode(claims("jwks-user"), JWT_SECRET, algorithm="HS256"),
    ):
        response = await get_sessions(jwks_gateway.url, f"Bearer {token}")
        assert response.status_code == 401, response.text
        assert response.json()["error"]["code"] in ("invalid_token", "token_expired")
    expired = signed(keys.rsa_key, "RS256", "rsa-1", "jwks-user", exp=int(time.time()) - 120)
    assert_error(await get_sessions(jwks_gateway.url, f"Bearer {expired}"), 401, "token_expired")
    unknown = signed(keys.rsa_key, "RS256", "unknown-kid", "jwks-user")
    assert_error(await get_sessions(jwks_gateway.url, f"Bearer {unknown}"), 401, "invalid_token")
    # Unknown key ids cannot make chatgate hammer the key server.
    before = keys.fetches
    for _ in range(5):
        await get_sessions(jwks_gateway.url, f"Bearer {unknown}")
    assert keys.fetches - before <= 1


# --- trace ids --------------------------------------------------------------------------------


async def test_every_answer_carries_a_trace_id(alice: Caller, gateway: Gateway) -> None:
    session = await alice.new_session("echo")
    sid = session["id"]
    async with httpx.AsyncClient(base_url=gateway.url) as anonymous:
        answers = [
            await anonymous.get("/health"),
            await anonymous.get("/v1/sessions"),
            await alice.http.get("/v1/sessions"),
            await alice.http.get(f"/v1/sessions/{sid}"),
            await alice.http.post(f"/v1/sessions/{sid}/messages", json={"content": "trace me, x"}),
            await alice.http.post(
                f"/v1/sessions/{sid}/messages", json={"content": "y", "response_mode": "streaming"}
            ),
            await alice.http.get("/v1/sessions/not-a-uuid"),
            await alice.http.get(f"/v1/sessions/{'0' * 8}-0000-0000-0000-{'0' * 12}"),
            await alice.http.post(
                "/v1/sessions", content=b"{", headers={"content-type": "application/json"}
            ),
            await alice.http.post("/v1/sessions", json={"assistant_id": 1}),
            await alice.http.put("/v1/sessions"),
            await alice.http.get("/no/such/path"),
            await alice.http.delete(f"/v1/sessions/{sid}"),
        ]
    trace_ids = [a.headers.get("x-trace-id") for a in answers]
    assert all(trace_ids), [(a.request.url, a.status_code) for a in answers]
    assert len(set(trace_ids)) == len(trace_ids)
    for answer in answers:
        if answer.status_code >= 400:
            assert answer.json()["error"]["trace_id"] == answer.headers["x-trace-id"]


async def test_an_incoming_request_id_is_honoured(alice: Caller) -> None:
    ok = await alice.http.get("/v1/sessions", headers={"X-Request-ID": "client-req-42"})
    assert ok.headers["x-trace-id"] == "client-req-42"
    failed = await alice.http.get(
        "/v1/sessions/not-a-uuid", headers={"X-Request-ID": "client-req-43"}
    )
    assert failed.headers["x-trace-id"] == "client-req-43"
    assert failed.json()["error"]["trace_id"] == "client-req-43"
    unauthenticated = await get_sessions(str(alice.http.base_url), None)
    assert unauthenticated.headers["x-trace-id"]
    # Something that cannot be a trace id is replaced, not echoed.
    for unusable in ("has spaces in it", "x" * 65, "<script>"):
        response = await alice.http.get("/v1/sessions", headers={"X-Request-ID": unusable})
        assert response.headers["x-trace-id"] != unusable
        assert len(response.headers["x-trace-id"]) == 32
    # A W3C traceparent wins over X-Request-ID.
    trace = "0af7651916cd43dd8448eb211c80319c"
    both = await alice.http.get(
        "/v1/sessions",
        headers={"traceparent": f"00-{trace}-b7ad6b7169203331-01", "X-Request-ID": "ignored"},
    )
    assert both.headers["x-trace-id"] == trace
