"""What one replica learns, every replica knows: rate limits, the answer cache, circuit breakers,
assistant and key changes, queued answers. Requests go through HAProxy (round robin); each
replica's own /metrics shows that every one of them took part."""

from __future__ import annotations

import asyncio
import secrets

import httpx

from tests.replicas.conftest import (
    REQUESTS_PER_MINUTE,
    TOKENS,
    Deployment,
    counted,
    scrape_all,
    served,
)
from tests.replicas.load import new_session


async def test_requests_are_spread_over_every_replica_and_a_users_limit_holds_across_them(
    replicas: Deployment, balanced: httpx.AsyncClient
) -> None:
    _, headers = TOKENS.new_user("limited")
    before = scrape_all(replicas)
    statuses = [
        (await balanced.get("/v1/assistants", headers=headers)).status_code
        for _ in range(REQUESTS_PER_MINUTE)
    ]
    refused = [await balanced.get("/v1/assistants", headers=headers) for _ in range(3)]
    after = scrape_all(replicas)

    assert statuses == [200] * REQUESTS_PER_MINUTE
    for response in refused:
        assert response.status_code == 429, response.text
        assert response.json()["error"]["code"] == "rate_limited"
        assert int(response.headers["retry-after"]) >= 1
    answered = served(before, after, "/v1/assistants")
    assert sum(answered.values()) == REQUESTS_PER_MINUTE
    share = REQUESTS_PER_MINUTE // len(answered)
    assert all(n == share for n in answered.values()), answered  # round robin: a third each
    # The three refusals came from three replicas: each one knew the others' count.
    assert served(before, after, "/v1/assistants", status="429") == dict.fromkeys(answered, 1)


async def test_an_answer_cached_through_one_replica_is_a_hit_on_every_other(
    replicas: Deployment, balanced: httpx.AsyncClient
) -> None:
    question = f"How long does delivery take? [{secrets.token_hex(4)}]"
    calls = len(replicas.engine.requests)
    before = scrape_all(replicas)
    answers = []
    for _ in range(4):
        _, headers = TOKENS.new_user("asker")
        response = await balanced.post(
            "/v1/qa", json={"question": question, "assistant_id": "echo"}, headers=headers
        )
        assert response.status_code == 200, response.text
        answers.append(response)
    after = scrape_all(replicas)

    assert [a.headers["x-cache"] for a in answers] == ["miss", "hit", "hit", "hit"]
    assert len({a.json()["answer"] for a in answers}) == 1
    assert len(replicas.engine.requests) == calls + 1
    hits = {
        name: counted(after[name], "chatgate_cache_requests_total", result="hit")
        - counted(before[name], "chatgate_cache_requests_total", result="hit")
        for name in after
    }
    assert sorted(hits.values()) == [1, 1, 1], hits  # the three hits on three replicas


async def test_a_breaker_opened_through_some_replicas_refuses_on_every_replica(
    replicas: Deployment, balanced: httpx.AsyncClient
) -> None:
    """The fragile engine's breaker opens after three failures in a row, wherever they were."""
    _, headers = TOKENS.new_user("breaker")
    sessions = [await new_session(balanced, headers, "fragile") for _ in range(9)]
    replicas.fragile.failing(500)
    try:
        before = scrape_all(replicas)
        statuses, codes = [], []
        for session_id in sessions:
            response = await balanced.post(
                f"/v1/sessions/{session_id}/messages", json={"content": "anyone there?"},
                headers=headers,
            )  # fmt: skip
            statuses.append(response.status_code)
            codes.append(response.json()["error"]["code"])
        after = scrape_all(replicas)
    finally:
        replicas.fragile.healthy()

    assert replicas.fragile.calls == 3, codes  # the engine saw the three failures, no more
    assert all(status >= 500 for status in statuses[:3]), statuses
    assert statuses[3:] == [503] * 6 and set(codes[3:]) == {"upstream_circuit_open"}, codes
    refusals = {
        name: counted(after[name], "chatgate_breaker_refusals_total", provider="fragile")
        - counted(before[name], "chatgate_breaker_refusals_total", provider="fragile")
        for name in after
    }
    assert sorted(refusals.values()) == [2, 2, 2], refusals


async def test_an_assistant_changed_through_one_replica_is_used_by_every_replica(
    replicas: Deployment, balanced: httpx.AsyncClient, admin: httpx.AsyncClient
) -> None:
    assistant_id = f"refunds-{secrets.token_hex(3)}"
    spec = {
        "id": assistant_id, "name": "Refunds", "provider": "engine", "model": "double-model",
        "system_prompt": "first prompt", "max_context_tokens": 4000, "max_answer_tokens": 100,
        "guards": {"pii": "off", "injection": "off"},
    }  # fmt: skip
    created = await admin.post("/v1/admin/assistants", json=spec)
    assert created.status_code == 201, created.text
    _, headers = TOKENS.new_user("refunds")
    sessions = [await new_session(balanced, headers, assistant_id) for _ in range(3)]
    before = scrape_all(replicas)
    for prompt in ("second prompt", "third prompt"):
        changed = await admin.patch(
            f"/v1/admin/assistants/{assistant_id}", json={"system_prompt": prompt}
        )
        assert changed.status_code == 200, changed.text
        for session_id in sessions:
            reply = await balanced.post(
                f"/v1/sessions/{session_id}/messages", json={"content": "which prompt?"},
                headers=headers,
            )  # fmt: skip
            assert reply.status_code == 200, reply.text
            assert replicas.engine.requests[-1]["messages"][0]["content"] == prompt
    after = scrape_all(replicas)
    route = "/v1/sessions/{session_id}/messages"
    assert sorted(served(before, after, route, "POST").values()) == [2, 2, 2]

    disabled = await admin.delete(f"/v1/admin/assistants/{assistant_id}")
    assert disabled.status_code == 200, disabled.text
    for _ in range(3):
        listed = await balanced.get("/v1/assistants", headers=headers)
        assert assistant_id not in {a["id"] for a in listed.json()["data"]}


async def test_a_key_revoked_through_one_replica_is_refused_by_every_replica(
    replicas: Deployment, balanced: httpx.AsyncClient, admin: httpx.AsyncClient
) -> None:
    made = await admin.post(
        "/v1/admin/keys", json={"name": "mobile", "kind": "user", "user_id": "keyholder"}
    )
    assert made.status_code == 201, made.text
    key = made.json()
    as_key = {"Authorization": f"Bearer {key['secret']}"}
    before = scrape_all(replicas)
    # Known (and cached) by every replica first.
    assert [(await balanced.get("/v1/assistants", headers=as_key)).status_code
            for _ in range(3)] == [200] * 3  # fmt: skip
    revoked = await admin.delete(f"/v1/admin/keys/{key['id']}")
    assert revoked.status_code == 200 and revoked.json()["revoked_at"], revoked.text
    refused = [await balanced.get("/v1/assistants", headers=as_key) for _ in range(3)]
    after = scrape_all(replicas)

    assert [r.status_code for r in refused] == [401] * 3, [r.text for r in refused]
    assert served(before, after, "/v1/assistants") == dict.fromkeys(after, 1)
    assert served(before, after, "/v1/assistants", status="401") == dict.fromkeys(after, 1)


async def test_queued_answers_are_written_by_the_worker_and_read_through_any_replica(
    replicas: Deployment, balanced: httpx.AsyncClient
) -> None:
    _, headers = TOKENS.new_user("queued")
    tasks = []
    for n in range(3):
        session_id = await new_session(balanced, headers, "echo")
        queued = await balanced.post(
            f"/v1/sessions/{session_id}/messages",
            json={"content": f"queued {n}", "response_mode": "async"}, headers=headers,
        )  # fmt: skip
        assert queued.status_code == 202, queued.text
        tasks.append((n, queued.json()["task_id"]))
    for n, task_id in tasks:
        for _ in range(100):
            task = (await balanced.get(f"/v1/tasks/{task_id}", headers=headers)).json()
            if task["status"] in ("succeeded", "failed"):
                break
            await asyncio.sleep(0.1)
        assert task["status"] == "succeeded", task
        assert task["message"]["content"] == f"echo: queued {n}"
