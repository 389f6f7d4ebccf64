"""The budget store unreadable (Redis paused: it takes connections and never answers; or
killed): a budgeted call is refused with 503 budget_unavailable within a bound, never let through
unlimited; a caller with no budget is not held up by it; an answer whose settlement fails still
ends normally (the failure logged and counted); budgets work again once Redis is back."""

from __future__ import annotations

import asyncio
import time

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.budgets.conftest import BudgetGateway, client, new_user, set_budget
from tests.conftest import assert_error, make_token, parse_sse

BOUND = 5.0
HELLO = {"model": "echo", "messages": [{"role": "user", "content": "hello"}]}


async def timed_post(
    http: httpx.AsyncClient, url: str, body: dict[str, object]
) -> tuple[float, httpx.Response]:
    started = time.monotonic()
    response = await http.post(url, json=body)
    return time.monotonic() - started, response


async def until_admitted(http: httpx.AsyncClient) -> None:
    deadline = time.monotonic() + 20
    while (await http.post("/v1/chat/completions", json=HELLO)).status_code != 200:
        assert time.monotonic() < deadline, "budgets did not come back with Redis"
        await asyncio.sleep(0.3)


def settle_errors(metrics_text: str) -> float:
    for family in text_string_to_metric_families(metrics_text):
        if family.name == "chatgate_budget_store_errors":
            return sum(
                s.value
                for s in family.samples
                if s.labels.get("operation") == "settle" and s.name.endswith("_total")
            )
    return 0.0


async def test_an_unreadable_store_refuses_budgeted_calls_only(
    budget_gateway: BudgetGateway, admin: httpx.AsyncClient
) -> None:
    budgeted, free = new_user(), new_user()
    await set_budget(admin, "user", budgeted, max_tokens=100_000)
    async with (
        client(budget_gateway.url, make_token(budgeted)) as limited,
        client(budget_gateway.url, make_token(free)) as unlimited,
    ):
        assert (await limited.post("/v1/chat/completions", json=HELLO)).status_code == 200
        for fault in ("pause", "kill"):
            getattr(budget_gateway.redis, fault)()
            try:
                for _ in range(3):
                    elapsed, refused = await timed_post(limited, "/v1/chat/completions", HELLO)
                    assert elapsed < BOUND, (fault, elapsed)
                    body = refused.json()  # OpenAI's envelope
                    assert refused.status_code == 503, refused.text
                    assert body["error"]["code"] == "budget_unavailable", body
                    assert refused.headers["retry-after"]
                session = (await limited.post("/v1/sessions", json={"assistant_id": "echo"})).json()
                elapsed, turn = await timed_post(
                    limited, f"/v1/sessions/{session['id']}/messages", {"content": "hi"}
                )
                assert elapsed < BOUND
                assert_error(turn, 503, "budget_unavailable")
                elapsed, ok = await timed_post(unlimited, "/v1/chat/completions", HELLO)
                assert ok.status_code == 200 and elapsed < BOUND, (ok.text, elapsed)
            finally:
                if fault == "pause":
                    budget_gateway.redis.resume()
                else:
                    budget_gateway.redis.start()
            await until_admitted(limited)


async def test_a_failed_settlement_ends_the_answer_normally(
    budget_gateway: BudgetGateway, admin: httpx.AsyncClient
) -> None:
    user = new_user()
    await set_budget(admin, "user", user, max_tokens=100_000)
    async with client(budget_gateway.url, make_token(user)) as http:
        before = settle_errors((await http.get("/metrics")).text)
        session = (await http.post("/v1/sessions", json={"assistant_id": "echo"})).json()
        body = {"content": "[[slow 20 0.1]]", "response_mode": "streaming"}
        async with http.stream(
            "POST", f"/v1/sessions/{session['id']}/messages", json=body
        ) as streamed:
            assert streamed.status_code == 200
            raw, paused = "", False
            async for text in streamed.aiter_text():
                raw += text
                if not paused and "delta" in raw:
                    budget_gateway.redis.pause()  # admitted; its settlement will find no Redis
                    paused = True
        budget_gateway.redis.resume()
        events = parse_sse(raw)
        assert events[-1]["event"] == "message_end", events[-1]
        assert settle_errors((await http.get("/metrics")).text) > before
        await until_admitted(http)
