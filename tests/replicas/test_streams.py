"""A streaming answer belongs to no replica: it resumes on another one (the same events, the
same ids, none twice, none skipped), through the balancer too, and is stopped from any."""

from __future__ import annotations

import asyncio

import httpx

from tests.replicas.conftest import TOKENS, Deployment
from tests.replicas.load import (
    Stream,
    client,
    in_order,
    new_session,
    read_after,
    resume_answer,
    slow,
    stream_answer,
    words_of,
)


async def test_a_stream_started_on_one_replica_resumes_on_another(
    replicas: Deployment, balanced: httpx.AsyncClient
) -> None:
    first, second, third = replicas.topology.replicas
    _, headers = TOKENS.new_user("resumer")
    session_id = await new_session(balanced, headers, "echo")
    async with client(first.url, headers) as on_first, client(second.url, headers) as on_second:
        # The client goes away after five deltas; the answer goes on without it.
        begun = await stream_answer(on_first, session_id, slow(30, 0.1), leave_after=5)
        assert begun.cut is None and begun.deltas == 5 and begun.message_id
        resumed = await resume_answer(on_second, session_id, begun.message_id, after=begun.last_id)
    assert resumed.cut is None and resumed.end is not None, resumed
    whole = begun.joined(resumed)
    assert whole.ids == list(range(1, len(whole.ids) + 1))  # none twice, none skipped
    assert whole.end is not None and whole.end["event"] == "message_end"
    message = whole.end["data"]["message"]
    assert message["status"] == "complete"
    assert in_order(words_of(whole.text())) and len(words_of(whole.text())) == 30
    assert message["content"] == whole.text()

    # After its end, from the third replica by `?after=` and from the balancer from the start:
    # the same events again.
    async with client(third.url, headers) as on_third:
        replayed = await resume_answer(
            on_third, session_id, begun.message_id, after=begun.last_id, by_query=True
        )
    assert replayed.events == resumed.events
    from_start = await resume_answer(
        balanced, session_id, begun.message_id, after=0, headers=headers
    )
    assert from_start.events == whole.events
    history = (await balanced.get(f"/v1/history/{session_id}", headers=headers)).json()
    assert history["data"][-1]["content"] == whole.text()


async def test_an_answer_is_stopped_through_another_replica(
    replicas: Deployment, balanced: httpx.AsyncClient
) -> None:
    first, second, _ = replicas.topology.replicas
    _, headers = TOKENS.new_user("stopper")
    session_id = await new_session(balanced, headers, "echo")
    async with client(first.url, headers) as on_first, client(second.url, headers) as on_second:
        flowing = asyncio.Event()
        streaming = asyncio.create_task(
            stream_answer(on_first, session_id, slow(200, 0.05), deltas_seen=flowing)
        )
        await asyncio.wait_for(flowing.wait(), 10)
        await asyncio.sleep(0.3)
        stop = await on_second.post(f"/v1/sessions/{session_id}/stop")
        stream = await asyncio.wait_for(streaming, 15)
    assert stop.status_code == 200, stop.text
    assert stop.json()["stopped"] is True
    assert stream.end is not None, stream
    final = stream.end["data"]["message"]
    assert final["status"] == "interrupted"
    assert final["content"] == stream.text() and 1 <= len(words_of(stream.text())) < 200
    history = (await balanced.get(f"/v1/history/{session_id}", headers=headers)).json()
    assert history["data"][-1]["status"] == "interrupted"
    assert history["data"][-1]["content"] == stream.text()


async def test_a_queued_answer_written_by_the_worker_is_followed_from_any_replica(
    replicas: Deployment, balanced: httpx.AsyncClient
) -> None:
    first, second, _ = replicas.topology.replicas
    _, headers = TOKENS.new_user("follower")
    session_id = await new_session(balanced, headers, "echo")
    queued = await balanced.post(
        f"/v1/sessions/{session_id}/messages",
        json={"content": slow(20, 0.1), "response_mode": "async"}, headers=headers,
    )  # fmt: skip
    assert queued.status_code == 202, queued.text
    path = f"/v1/tasks/{queued.json()['task_id']}/events"
    async with client(first.url, headers) as on_first, client(second.url, headers) as on_second:
        begun = await read_after(on_first, path, Stream(session_id), after=0, leave_after=5)
        resumed = await read_after(on_second, path, Stream(session_id), after=begun.last_id)
    whole = begun.joined(resumed)
    assert begun.cut is None and resumed.cut is None, (begun.cut, resumed.cut)
    assert whole.ids == list(range(1, len(whole.ids) + 1))
    assert whole.end is not None and whole.end["event"] == "message_end", whole.end
    assert whole.end["data"]["message"]["status"] == "complete"
    assert words_of(whole.text()) == [f"w{i}" for i in range(20)]
    assert whole.end["data"]["message"]["content"] == whole.text()
