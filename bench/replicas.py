"""Replicas behind a load balancer under load: three `chatgate serve` and a `chatgate worker` on
one PostgreSQL database and one Redis, behind HAProxy (health checks on /ready, GETs retried on
another replica), the topology of tests/replicas. Three phases of `--seconds` each, under the
same load (readers reading their history and sessions, streaming answers written and read
event by event, a user hammering its rate limit):

  steady   nothing happens
  kill     a third of the way in, replica r2 is killed outright (SIGKILL)
  drain    a third of the way in, replica r3 is drained (SIGTERM), as an orchestrator does

(three more answers are started on the replica's own port just before, so some surely run on it)

and prints, per phase: reads and their latency, failed reads (any answer but a 200 that reads
back what was stored, or none), failed writes, what became of each streaming answer (whole;
cut, resumed through the balancer and ended `interrupted` with its text; lost), the words the
clients saw against those kept, how long the balancer took to take the replica out and the
survivors to end its answers, and the share of requests each replica took.

    .venv/bin/python bench/replicas.py             # --seconds 20 --readers 6 --streamers 6
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from harness import OUT, machine_line, percentile

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx

from tests.doubles.openai_api import OpenAIDouble
from tests.doubles.server import serve_app
from tests.replicas.load import (
    Reader,
    ReadResult,
    Tokens,
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
from tests.replicas.topology import Topology, deployment_config, run_topology
from tests.resilience.engines import SwitchableEngine

JWT_SECRET = "bench-replicas-" + "x" * 40
KEYS = "bench1:" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVowMTIzNDU="
TOKENS = Tokens(JWT_SECRET, "chatgate-bench")
LIMIT = 120  # requests a minute per user: the hammering user reaches it within a phase
PER_READER = 100  # reads per reader user, under LIMIT


@dataclass
class Streams:
    started: int = 0
    whole: int = 0
    kept: int = 0  # cut, resumed, ended interrupted with every word seen (and only those)
    lost: list[str] = field(default_factory=list)
    failed_starts: list[str] = field(default_factory=list)
    words_seen: int = 0  # by the clients, before any cut and on resumption
    words_kept: int = 0  # in the stored answers
    first_delta: list[float] = field(default_factory=list)
    last_end: float = 0.0  # monotonic time the last cut stream was seen to end


@dataclass
class Phase:
    name: str
    reads: ReadResult = field(default_factory=ReadResult)
    streams: Streams = field(default_factory=Streams)
    on_victim: Streams = field(default_factory=Streams)  # started on the replica killed/drained
    limited: tuple[int, int] = (0, 0)  # (allowed, sent) for the hammering user
    fault_at: float = 0.0
    down_after: float | None = None
    exited_after: float | None = None
    shares: dict[str, int] = field(default_factory=dict)
    retried: int = 0  # requests HAProxy retried or sent to another replica


async def streamer(http: httpx.AsyncClient, stop: asyncio.Event, streams: Streams,
                   words: int, pause: float) -> None:  # fmt: skip
    """Streaming answers through the balancer, one after another until `stop`."""
    _, headers = TOKENS.new_user("streamer")
    while not stop.is_set():
        await one_stream(http, http, headers, streams, words, pause)


async def one_stream(
    start: httpx.AsyncClient, balanced: httpx.AsyncClient, headers: dict[str, str],
    streams: Streams, words: int, pause: float, flowing: asyncio.Event | None = None,
) -> None:  # fmt: skip
    """A streaming answer started through `start`; if cut, resumed through the balancer until it
    ends; what became of it counted in `streams`."""
    try:
        session_id = await new_session(balanced, headers, "echo")
    except (httpx.HTTPError, AssertionError) as exc:
        streams.failed_starts.append(f"session: {exc}")
        return
    streams.started += 1
    stream = await stream_answer(
        start, session_id, slow(words, pause), headers=headers, deltas_seen=flowing
    )
    if stream.first_delta is not None:
        streams.first_delta.append(stream.first_delta)
    if stream.message_id is None:
        streams.failed_starts.append(f"stream: {stream.cut}")
        return
    whole = stream
    for _ in range(5):
        if whole.end is not None:
            break
        resumed = await resume_answer(
            balanced, session_id, stream.message_id, after=whole.last_id, headers=headers
        )
        whole = whole.joined(resumed)
    # What the client was shown: before the cut, and after it (a resumption may replace it).
    before, seen = words_of(stream.text()), words_of(whole.text())
    streams.words_seen += max(len(before), len(seen))
    if whole.end is None:
        streams.lost.append(f"no end: {whole.cut}")
        return
    message = whole.end["data"]["message"]
    kept = words_of(message["content"])
    streams.words_kept += len(kept)
    if kept[: len(before)] != before:
        streams.lost.append(f"{len(before)} words shown before the cut, {len(kept)} kept")
    elif message["content"] != whole.text() or not in_order(seen):
        streams.lost.append(f"text differs: {message['status']}")
    elif stream.cut is None and message["status"] == "complete" and len(seen) == words:
        streams.whole += 1
    elif stream.cut is not None and message["status"] in ("interrupted", "complete"):
        streams.kept += 1
        streams.last_end = time.monotonic()
    else:
        streams.lost.append(f"ended {message['status']} with {len(seen)} words")


async def hammer(http: httpx.AsyncClient, stop: asyncio.Event, phase: Phase) -> None:
    """One user sends LIMIT + 30 requests through the balancer, four at a time."""
    _, headers = TOKENS.new_user("hammer")
    sent = allowed = 0

    async def one() -> None:
        nonlocal sent, allowed
        while sent < LIMIT + 30 and not stop.is_set():
            sent += 1
            response = await http.get("/v1/assistants", headers=headers)
            allowed += response.status_code == 200

    await asyncio.gather(*(one() for _ in range(4)))
    phase.limited = (allowed, sent)


async def run_phase(name: str, topology: Topology, args: argparse.Namespace) -> Phase:
    phase = Phase(name)
    async with client(topology.url, connections=args.readers + args.streamers + 4) as http:
        users = max(8, int(args.seconds * 400 / PER_READER))
        readers: list[Reader] = await make_readers(http, TOKENS, users)
        before = {s.name: s.sessions for s in topology.balancer.servers().values()}
        retried = topology.balancer.retries()
        stop = asyncio.Event()
        began = time.monotonic()
        reading = asyncio.create_task(
            read_load(http, readers, stop, concurrency=args.readers, per_user=PER_READER)
        )
        loads = [
            asyncio.create_task(streamer(http, stop, phase.streams, args.words, args.pause))
            for _ in range(args.streamers)
        ]
        loads.append(asyncio.create_task(hammer(http, stop, phase)))
        await asyncio.sleep(args.seconds / 3)
        on_victim: list[asyncio.Task[None]] = []
        if name != "steady":
            victim = topology.replica("r2" if name == "kill" else "r3")
            # Answers surely running on it when it goes: streams started on its own port.
            direct = httpx.AsyncClient(base_url=victim.url, timeout=http.timeout)
            _, headers = TOKENS.new_user("victim")
            flowing = [asyncio.Event() for _ in range(3)]
            on_victim = [
                asyncio.create_task(
                    one_stream(
                        direct, http, headers, phase.on_victim, args.words, args.pause, event
                    )
                )
                for event in flowing
            ]
            await asyncio.wait_for(asyncio.gather(*(e.wait() for e in flowing)), 30)
            phase.fault_at = time.monotonic()
            victim.kill() if name == "kill" else victim.terminate()
            phase.down_after = await asyncio.to_thread(
                topology.balancer.wait_for, victim.name, "DOWN", 30
            )
            if name == "drain":
                assert victim.process is not None
                await asyncio.to_thread(victim.process.wait, 60)
                phase.exited_after = time.monotonic() - phase.fault_at
        await asyncio.sleep(max(0.0, began + args.seconds - time.monotonic()))
        stop.set()
        await asyncio.gather(*loads, *on_victim)
        if on_victim:
            await direct.aclose()
        phase.reads = await reading
        after = topology.balancer.servers()
        phase.shares = {n: s.sessions - before.get(n, 0) for n, s in after.items()}
        phase.retried = topology.balancer.retries() - retried
    return phase


def merged(one: Streams, other: Streams) -> Streams:
    return Streams(
        started=one.started + other.started, whole=one.whole + other.whole,
        kept=one.kept + other.kept, lost=[*one.lost, *other.lost],
        failed_starts=[*one.failed_starts, *other.failed_starts],
        words_seen=one.words_seen + other.words_seen, words_kept=one.words_kept + other.words_kept,
        first_delta=[*one.first_delta, *other.first_delta],
        last_end=max(one.last_end, other.last_end),
    )  # fmt: skip


def report(phases: list[Phase], args: argparse.Namespace) -> None:
    print(f"\n{machine_line()}")
    print(f"3 replicas + 1 worker, PostgreSQL, Redis, HAProxy; {args.seconds:g} s a phase; "
          f"{args.readers} readers, {args.streamers} streamers ({args.words} words, "
          f"{args.pause:g} s apart); rate limit {LIMIT}/min a user\n")  # fmt: skip
    print("| phase | reads | reads/s | read p50 ms | read p99 ms | failed reads | failed "
          "writes | streams | whole | cut, resumed, text kept | lost | words seen / kept | "
          "first delta p50 ms | rate limit: allowed / sent |")  # fmt: skip
    print("|" + " --- |" * 14)
    for p in phases:
        r, s = p.reads, merged(p.streams, p.on_victim)
        first = percentile(s.first_delta, 50) * 1000 if s.first_delta else 0
        print(f"| {p.name} | {r.reads} | {r.per_second:.0f} | {r.percentile(50) * 1000:.1f} | "
              f"{r.percentile(99) * 1000:.1f} | {len(r.failures)} | {len(s.failed_starts)} | "
              f"{s.started} | {s.whole} | {s.kept} | {len(s.lost)} | "
              f"{s.words_seen} / {s.words_kept} | {first:.0f} | "
              f"{p.limited[0]} / {p.limited[1]} |")  # fmt: skip
    print()
    for p in phases:
        shares = ", ".join(f"{n} {c}" for n, c in sorted(p.shares.items()))
        line = f"{p.name}: requests per replica (HAProxy) {shares}; {p.retried} retried"
        if p.down_after is not None:
            line += f"; taken out by the balancer after {p.down_after:.1f} s"
        v = p.on_victim
        if v.started:
            line += (f"; answers started on it: {v.started}, whole {v.whole}, cut and ended with "
                     f"their text {v.kept}, lost {len(v.lost)}")  # fmt: skip
        last_end = max(v.last_end, p.streams.last_end)
        if p.name == "kill" and last_end:
            line += f"; its last answer ended by a survivor {last_end - p.fault_at:.1f} s after"
        if p.exited_after is not None:
            line += f"; exited {p.exited_after:.1f} s after SIGTERM"
        print(line)
        failures = [*p.reads.failures, *p.streams.failed_starts, *p.streams.lost, *v.lost]
        for failure in failures[:6]:
            print(f"    {failure}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=20, help="length of each phase")
    parser.add_argument("--readers", type=int, default=6, help="concurrent readers")
    parser.add_argument("--streamers", type=int, default=6, help="concurrent streaming clients")
    parser.add_argument("--words", type=int, default=40, help="words in a streamed answer")
    parser.add_argument("--pause", type=float, default=0.1, help="seconds between words")
    args = parser.parse_args()
    # The engine double writing to a replica that was killed is expected, not news.
    logging.getLogger("aiohttp").setLevel(logging.CRITICAL)
    engine, fragile = OpenAIDouble(api_key="sk-double"), SwitchableEngine()
    with (
        serve_app(engine.app()) as engine_url,
        serve_app(fragile.app()) as fragile_url,
    ):
        folder = OUT / "replicas"  # the processes' logs and haproxy.cfg, kept for a look
        shutil.rmtree(folder, ignore_errors=True)
        config = deployment_config(engine_url, fragile_url, requests_per_minute=LIMIT)
        started = time.monotonic()
        with run_topology(
            folder, config, jwt_secret=JWT_SECRET, jwt_audience=TOKENS.audience,
            encryption_keys=KEYS,
        ) as topology:  # fmt: skip
            print(f"topology up in {time.monotonic() - started:.1f} s", flush=True)
            phases = []
            for name in ("steady", "kill", "drain"):
                topology.ensure_all_up()
                phases.append(asyncio.run(run_phase(name, topology, args)))
                print(f"phase {name} done", flush=True)
            report(phases, args)


if __name__ == "__main__":
    main()
