"""A user or key over its budget is refused on every route that calls an engine, in each route's
own error envelope, with when the budget resets; a budget that has room is spent by what calls
really used, and every call ends its reservation however it ends."""

from __future__ import annotations

import asyncio
import subprocess
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.budgets.conftest import BudgetGateway, client, new_key, new_user, set_budget
from tests.conftest import make_token

TOMORROW = f"{(datetime.now(UTC).date() + timedelta(days=1)).isoformat()}T00:00:00Z"
HELLO = [{"role": "user", "content": "hello there"}]


def assert_refused(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 429, response.text
    wait = int(response.headers["retry-after"])
    midnight = datetime.combine(datetime.now(UTC).date() + timedelta(days=1), datetime.min.time())
    assert 0 < wait <= (midnight.replace(tzinfo=UTC) - datetime.now(UTC)).total_seconds() + 2
    body: dict[str, Any] = response.json()
    assert TOMORROW in body["error"]["message"], body
    assert body["error"]["code"] == "budget_exceeded"
    return body


async def every_route(http: httpx.AsyncClient) -> dict[str, httpx.Response]:
    """One call of each route that asks an engine, streamed and not."""
    session = (await http.post("/v1/sessions", json={"assistant_id": "echo"})).json()
    turn = f"/v1/sessions/{session['id']}/messages"
    completion = {"model": "echo", "messages": HELLO}
    message = {"model": "echo", "max_tokens": 50, "messages": HELLO}
    calls = {
        "chat": http.post(turn, json={"content": "hello"}),
        "chat_streaming": http.post(turn, json={"content": "hello", "response_mode": "streaming"}),
        "qa": http.post("/v1/qa", json={"question": "hello", "assistant_id": "echo"}),
        "completions": http.post("/v1/chat/completions", json=completion),
        "completions_stream": http.post(
            "/v1/chat/completions", json={**completion, "stream": True}
        ),
        "responses": http.post("/v1/responses", json={"model": "echo", "input": "hello"}),
        "responses_stream": http.post(
            "/v1/responses", json={"model": "echo", "input": "hello", "stream": True}
        ),
        "messages": http.post("/v1/messages", json=message),
        "messages_stream": http.post("/v1/messages", json={**message, "stream": True}),
        "count_tokens": http.post(
            "/v1/messages/count_tokens", json={"model": "echo", "messages": HELLO}
        ),
        "embeddings": http.post("/v1/embeddings", json={"model": "remote", "input": "hello"}),
    }
    return {name: await call for name, call in calls.items()}


def assert_every_route_refused(responses: dict[str, httpx.Response]) -> None:
    for name, response in responses.items():
        body = assert_refused(response)
        if name.startswith(("chat", "qa")):
            assert set(body) == {"error"} and body["error"]["trace_id"], (name, body)
        elif name.startswith(("messages", "count_tokens")):
            assert body["type"] == "error", (name, body)  # Anthropic's
            assert body["error"]["type"] == "rate_limit_error", (name, body)
        else:
            assert body["error"]["type"] == "rate_limit_error", (name, body)  # OpenAI's


async def test_a_spent_user_budget_refuses_every_route(
    budget_gateway: BudgetGateway, admin: httpx.AsyncClient
) -> None:
    user = new_user()
    await set_budget(admin, "user", user, max_tokens=0)
    async with client(budget_gateway.url, make_token(user)) as http:
        assert_every_route_refused(await every_route(http))
        history = (await http.get("/v1/sessions")).json()["data"]
    assert all(s["message_count"] == 0 for s in history), history  # nothing stored for a refusal
    await set_budget(admin, "user", user, max_tokens=10_000)  # seen at once: room again
    async with client(budget_gateway.url, make_token(user)) as http:
        ok = await http.post("/v1/chat/completions", json={"model": "echo", "messages": HELLO})
    assert ok.status_code == 200, ok.text


async def test_a_spent_key_budget_refuses_the_key_not_its_user(
    budget_gateway: BudgetGateway, admin: httpx.AsyncClient
) -> None:
    user = new_user()
    key_id, secret = await new_key(admin, user)
    await set_budget(admin, "key", key_id, max_cost=0.0, max_tokens=0)
    async with client(budget_gateway.url, secret) as http:
        assert_every_route_refused(await every_route(http))
        body = (
            await http.post("/v1/chat/completions", json={"model": "echo", "messages": HELLO})
        ).json()
    assert "API key" in body["error"]["message"]
    async with client(budget_gateway.url, make_token(user)) as http:
        ok = await http.post("/v1/chat/completions", json={"model": "echo", "messages": HELLO})
    assert ok.status_code == 200, ok.text


async def budget_of(admin: httpx.AsyncClient, scope: str, subject: str) -> dict[str, Any]:
    response = await admin.get(f"/v1/admin/budgets/{scope}/{subject}")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def settled(admin: httpx.AsyncClient, scope: str, subject: str) -> dict[str, Any]:
    """The budget once no reservation is open (each call ends its own)."""
    for _ in range(100):
        budget = await budget_of(admin, scope, subject)
        if budget["reserved_tokens"] == 0:
            return budget
        await asyncio.sleep(0.1)
    raise AssertionError(f"a reservation stayed open: {budget}")


async def test_calls_spend_the_budget_until_it_refuses(
    budget_gateway: BudgetGateway, admin: httpx.AsyncClient
) -> None:
    user = new_user()
    await set_budget(admin, "user", user, max_tokens=150)
    statuses = []
    async with client(budget_gateway.url, make_token(user)) as http:
        for _ in range(30):
            response = await http.post(
                "/v1/chat/completions", json={"model": "echo", "messages": HELLO}
            )
            statuses.append(response.status_code)
            if response.status_code == 429:
                break
    budget = await settled(admin, "user", user)
    assert statuses[-1] == 429 and set(statuses[:-1]) == {200}, statuses
    # Each call's prompt fits what is left when it is admitted: past the maximum by at most the
    # last call's answer, which the echo keeps short.
    assert 150 - 20 < budget["spent_tokens"] <= 150 + 20, budget


@pytest.mark.parametrize("route", ["completions", "messages", "responses", "chat"])
async def test_failed_and_abandoned_calls_end_their_reservation(
    budget_gateway: BudgetGateway, admin: httpx.AsyncClient, route: str
) -> None:
    user = new_user()
    await set_budget(admin, "user", user, max_tokens=100_000)
    async with client(budget_gateway.url, make_token(user)) as http:
        failed = await post(http, route, "[[status 500]]", stream=False)
        assert failed.status_code >= 500 or "error" in failed.text, failed.text
        # A stream its client leaves after the first event.
        async with http.stream(
            # Its own text: the answer it leaves goes on, and the cache must not keep it for
            # another test's "[[slow 40 0.05]]".
            **request_of(route, f"[[slow 40 0.05]] {user}", session=await session_of(http, route))
        ) as streamed:
            assert streamed.status_code == 200
            async for _ in streamed.aiter_bytes():
                break
    budget = await settled(admin, "user", user)
    assert budget["spent_tokens"] > 0, budget  # what the abandoned stream used counts


async def session_of(http: httpx.AsyncClient, route: str) -> str | None:
    if route != "chat":
        return None
    return str((await http.post("/v1/sessions", json={"assistant_id": "echo"})).json()["id"])


def request_of(
    route: str, text: str, *, session: str | None = None, stream: bool = True
) -> dict[str, Any]:
    messages = [{"role": "user", "content": text}]
    bodies: dict[str, tuple[str, dict[str, Any]]] = {
        "completions": ("/v1/chat/completions", {"model": "echo", "messages": messages}),
        "messages": ("/v1/messages", {"model": "echo", "max_tokens": 50, "messages": messages}),
        "responses": ("/v1/responses", {"model": "echo", "input": text}),
        "chat": (
            f"/v1/sessions/{session}/messages",
            {"content": text, "response_mode": "streaming" if stream else "blocking"},
        ),
    }
    url, body = bodies[route]
    if route != "chat":
        body["stream"] = stream
    return {"method": "POST", "url": url, "json": body}


async def post(http: httpx.AsyncClient, route: str, text: str, *, stream: bool) -> httpx.Response:
    return await http.request(
        **request_of(route, text, session=await session_of(http, route), stream=stream)
    )


async def test_a_cost_budget_is_spent_at_the_models_prices(
    budget_gateway: BudgetGateway, admin: httpx.AsyncClient
) -> None:
    # The echo assistant's model, at 0.001 per prompt token and 0.002 per answer token.
    price = {"input_per_million": 1000, "output_per_million": 2000}
    assert (await admin.put("/v1/admin/prices/double-echo", json=price)).status_code == 200
    await asyncio.sleep(1.5)  # every process takes a new price within a second
    user = new_user()
    await set_budget(admin, "user", user, max_cost=0.1)
    statuses = []
    async with client(budget_gateway.url, make_token(user)) as http:
        for _ in range(40):
            response = await http.post(
                "/v1/chat/completions", json={"model": "echo", "messages": HELLO}
            )
            statuses.append(response.status_code)
            if response.status_code == 429:
                assert_refused(response)
                break
    budget = await settled(admin, "user", user)
    assert statuses[-1] == 429 and set(statuses[:-1]) == {200}, statuses
    tokens, cost = budget["spent_tokens"], budget["spent_cost"]
    assert 0.001 * tokens < cost < 0.002 * tokens, budget
    assert 0.1 - 0.03 < cost <= 0.1 + 0.03, budget  # the last call's answer past it at most


async def test_a_call_without_a_budget_leaves_no_trace_in_the_spend_store(
    budget_gateway: BudgetGateway, admin: httpx.AsyncClient
) -> None:
    free, budgeted = new_user(), new_user()
    await set_budget(admin, "user", budgeted, max_tokens=100_000)
    for user in (free, budgeted):
        async with client(budget_gateway.url, make_token(user)) as http:
            ok = await http.post("/v1/chat/completions", json={"model": "echo", "messages": HELLO})
            assert ok.status_code == 200, ok.text

    def keys(user: str) -> list[bytes]:
        found = subprocess.run(
            ["redis-cli", "-p", str(budget_gateway.redis.port), "--scan", "--pattern",
             f"chatgate:budget:*:{user}"],
            capture_output=True, check=True,
        )  # fmt: skip
        return found.stdout.split()

    assert keys(free) == []
    # Its period's settled spend (the set of open reservations went with the last of them).
    assert [k.split(b":")[2] for k in keys(budgeted)] == [b"spent"]
