"""A replica lost under load: killed outright (SIGKILL) or drained (SIGTERM), while readers read
through the balancer and streaming answers are being written on every replica.

Killed: no read fails (HAProxy retries GETs on another replica), and no text is lost: the
killed replica's answers end `interrupted` with their text, ended by the survivors within
seconds, and their clients resume them through the balancer to that end. Drained: the replica
takes no new request, finishes what it runs, and exits; nothing fails.
"""

from __future__ import annotations

import asyncio
import signal
import time

import httpx

from tests.replicas.conftest import DRAIN_GRACE, TOKENS, Deployment
from tests.replicas.load import (
    ReadResult,
    Stream,
    client,
    in_order,
    make_readers,
    new_session,
    read_load,
    resume_answer,
    slow,
    stream_answer,
    words_of,
)

READERS = 40  # users of the read load, each under its rate limit (40 reads each at most)
READS_PER_SECOND = 40  # a steady read load: a few hundred reads around the fault
TAKEN_OVER_WITHIN = 20.0  # seconds from a kill to the end of the killed replica's answers


async def streams_in_flight(
    balanced: httpx.AsyncClient, headers: dict[str, str], content: str,
    starts: list[httpx.AsyncClient],
) -> list[asyncio.Task[Stream]]:  # fmt: skip
    """A streaming answer started through each of `starts` (the balancer: on any replica; a
    replica's own port: surely on it), once each has sent text."""
    sessions = [await new_session(balanced, headers, "echo") for _ in starts]
    flowing = [asyncio.Event() for _ in sessions]
    tasks = [
        asyncio.create_task(
            stream_answer(start, session_id, content, headers=headers, deltas_seen=event)
        )
        for start, session_id, event in zip(starts, sessions, flowing, strict=True)
    ]
    await asyncio.wait_for(asyncio.gather(*(event.wait() for event in flowing)), 15)
    return tasks


async def history_of(
    http: httpx.AsyncClient, session_id: str, headers: dict[str, str]
) -> list[dict[str, object]]:
    response = await http.get(f"/v1/history/{session_id}", headers=headers)
    assert response.status_code == 200, response.text
    return list(response.json()["data"])


def assert_whole(stream: Stream, words: int) -> None:
    assert stream.cut is None and stream.end is not None, stream
    assert stream.end["event"] == "message_end", stream.end
    assert stream.end["data"]["message"]["status"] == "complete"
    assert len(words_of(stream.text())) == words and in_order(words_of(stream.text()))
    assert stream.ids == list(range(1, len(stream.ids) + 1))


async def test_a_replica_killed_mid_load_costs_no_read_and_no_text(
    replicas: Deployment, balanced: httpx.AsyncClient
) -> None:
    topology = replicas.topology
    victim = topology.replica("r2")
    readers = await make_readers(balanced, TOKENS, READERS)
    _, headers = TOKENS.new_user("streamer")
    stop = asyncio.Event()
    reading = asyncio.create_task(
        read_load(balanced, readers, stop, concurrency=4, per_second=READS_PER_SECOND)
    )
    reads = ReadResult()
    try:
        async with client(victim.url, headers) as on_victim:
            # Three through the balancer (on any replica), three surely on the victim.
            starts = [balanced] * 3 + [on_victim] * 3
            tasks = await streams_in_flight(balanced, headers, slow(60, 0.1), starts)
            await asyncio.sleep(0.5)  # more text on every stream, some of it flushed
            victim.kill()
            killed_at = time.monotonic()
            down_after = await asyncio.to_thread(topology.balancer.wait_for, victim.name, "DOWN")
            streams = await asyncio.gather(*tasks)
        cut = [s for s in streams if s.end is None]
        assert all(s.end is None and s.cut for s in streams[3:]), [s.cut for s in streams]
        resumed = await asyncio.gather(*(
            resume_answer(balanced, s.session_id, str(s.message_id), after=s.last_id,
                          headers=headers)
            for s in cut
        ))  # fmt: skip
        ended_after = time.monotonic() - killed_at
        await asyncio.sleep(1)  # reads go on a while after the take-over
    finally:
        stop.set()
        reads = await reading

    assert reads.failures == [], reads.failures[:10]
    assert reads.reads > 100, reads.reads
    assert down_after < 5, down_after
    for stream in streams:
        if stream.end is not None:
            assert_whole(stream, 60)
    assert ended_after < TAKEN_OVER_WITHIN, ended_after
    for before, after in zip(cut, resumed, strict=True):
        whole = before.joined(after)
        assert after.cut is None and whole.end is not None, after
        assert whole.end["event"] == "error", whole.end
        assert whole.end["data"]["error"]["code"] == "process_died", whole.end
        assert whole.ids == list(range(1, len(whole.ids) + 1))
        message = whole.end["data"]["message"]
        assert message["status"] == "interrupted"
        # Every word the client was shown is kept, in order; nothing was made up.
        shown, kept = words_of(before.text()), words_of(message["content"])
        assert kept[: len(shown)] == shown, (
            f"the client was shown {len(shown)} words before the kill; the answer kept {len(kept)}"
        )
        assert message["content"] == whole.text()
        assert in_order(words_of(whole.text()))
        stored = (await history_of(balanced, before.session_id, headers))[-1]
        assert stored["status"] == "interrupted" and stored["content"] == whole.text()
        # The session is not left locked by an answer that no process writes.
        again = await balanced.post(
            f"/v1/sessions/{before.session_id}/messages", json={"content": "still there?"},
            headers=headers,
        )  # fmt: skip
        assert again.status_code == 200, again.text


async def test_a_replica_drained_with_sigterm_loses_nothing(
    replicas: Deployment, balanced: httpx.AsyncClient
) -> None:
    """Its short answers finish; one longer than the grace ends `interrupted` with its text
    when the grace is over; new requests go to the others meanwhile; then it exits."""
    topology = replicas.topology
    drained = topology.replica("r3")
    readers = await make_readers(balanced, TOKENS, READERS)
    _, headers = TOKENS.new_user("drained")
    long_session = await new_session(balanced, headers, "echo")
    stop = asyncio.Event()
    reading = asyncio.create_task(
        read_load(balanced, readers, stop, concurrency=4, per_second=READS_PER_SECOND)
    )
    reads = ReadResult()
    writes: list[str] = []
    try:
        async with client(drained.url, headers) as on_drained:
            flowing = asyncio.Event()
            longer = asyncio.create_task(
                stream_answer(on_drained, long_session, slow(200, 0.1), deltas_seen=flowing)
            )
            await asyncio.wait_for(flowing.wait(), 10)
            # Short answers through the balancer (on any replica) and surely on the drained one.
            starts = [balanced] * 3 + [on_drained] * 3
            tasks = await streams_in_flight(balanced, headers, slow(30, 0.1), starts)
            drained.terminate()
            terminated_at = time.monotonic()
            # New conversations while it drains: every one lands on a replica that takes it.
            for n in range(9):
                try:
                    session_id = await new_session(balanced, headers, "echo")
                    reply = await balanced.post(
                        f"/v1/sessions/{session_id}/messages", json={"content": f"during {n}"},
                        headers=headers,
                    )  # fmt: skip
                    if reply.status_code != 200:
                        writes.append(f"{reply.status_code} {reply.text[:200]}")
                except (httpx.HTTPError, AssertionError) as exc:
                    writes.append(f"{type(exc).__name__}: {exc}")
            down_after = await asyncio.to_thread(topology.balancer.wait_for, drained.name, "DOWN")
            streams = await asyncio.gather(*tasks)
            long = await asyncio.wait_for(longer, DRAIN_GRACE + 10)
        assert drained.process is not None
        code = await asyncio.to_thread(drained.process.wait, 40)
        exited_after = time.monotonic() - terminated_at
    finally:
        stop.set()
        reads = await reading

    assert reads.failures == [], reads.failures[:10]
    assert writes == []
    assert down_after < 5, down_after
    for stream in streams:
        assert_whole(stream, 30)
    # uvicorn ends by raising the SIGTERM it caught once it has shut down: -15 is a clean exit.
    assert code in (0, -signal.SIGTERM), drained.tail()
    assert exited_after < DRAIN_GRACE + 10, exited_after

    assert long.cut is None and long.end is not None, long
    assert long.end["event"] == "error", long.end
    assert long.end["data"]["error"]["code"] == "server_shutting_down", long.end
    assert long.ended_at is not None
    long_ended_after = long.ended_at - terminated_at
    assert DRAIN_GRACE - 1 < long_ended_after < DRAIN_GRACE + 5, long_ended_after
    message = long.end["data"]["message"]
    assert message["status"] == "interrupted"
    assert message["content"] == long.text() and in_order(words_of(long.text()))
    assert 1 <= len(words_of(long.text())) < 200
    stored = (await history_of(balanced, long_session, headers))[-1]
    assert stored["status"] == "interrupted" and stored["content"] == long.text()
    # Resumed elsewhere after its end: nothing more, and the stream ends.
    resumed = await resume_answer(
        balanced, long_session, str(long.message_id), after=long.last_id, headers=headers
    )
    assert resumed.cut is None and resumed.events == [], resumed


async def test_text_a_client_saw_is_kept_when_the_kill_comes_before_its_log_caught_up(
    replicas: Deployment, balanced: httpx.AsyncClient
) -> None:
    """The race of the test above, made certain: Redis stalls for 0.3 s (less than the half
    second after which chatgate gives a Redis call up) and the replica is killed within it. Text
    the client was sent in that time must be in the answer the survivors end, as it would be had
    the kill come a moment later: an event is logged before it is sent, or not sent at all."""
    topology = replicas.topology
    victim = topology.replica("r1")
    _, headers = TOKENS.new_user("lagging")
    async with client(victim.url, headers) as on_victim:
        [streaming] = await streams_in_flight(balanced, headers, slow(100, 0.05), [on_victim])
        await asyncio.sleep(0.3)
        topology.redis.pause()
        try:
            await asyncio.sleep(0.2)
            victim.kill()
        finally:
            await asyncio.sleep(0.1)
            topology.redis.resume()
        cut = await asyncio.wait_for(streaming, 10)
    assert cut.end is None and cut.cut, cut
    resumed = await resume_answer(
        balanced, cut.session_id, str(cut.message_id), after=cut.last_id, headers=headers
    )
    whole = cut.joined(resumed)
    assert whole.end is not None and whole.end["event"] == "error", resumed
    assert whole.ids == list(range(1, len(whole.ids) + 1)), whole.ids
    message = whole.end["data"]["message"]
    assert message["status"] == "interrupted"
    assert words_of(message["content"])[: len(words_of(cut.text()))] == words_of(cut.text()), (
        f"the client was sent {len(words_of(cut.text()))} words; the answer kept "
        f"{len(words_of(message['content']))}"
    )
