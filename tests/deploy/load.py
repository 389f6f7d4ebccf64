"""A small load tool, as a client would load chatgate: conversations of one question each, from a
few users at once, some questions asked before (answer-cache hits), some new and some that make
the engine fail. It prints what it saw, the figures the dashboard must then show."""

from __future__ import annotations

import asyncio
import math
import time
import uuid
from dataclasses import dataclass, field

import httpx

QUESTIONS = [f"load question number {i}" for i in range(3)]
FAILING = "this one fails [[status 500]]"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


@dataclass
class LoadReport:
    requests: int = 0
    server_errors: int = 0
    cache_hits: int = 0
    cache_misses: int = 0
    output_tokens: int = 0
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)

    @property
    def rps(self) -> float:
        return self.requests / self.seconds

    @property
    def error_rate(self) -> float:
        return self.server_errors / self.requests

    @property
    def cache_hit_ratio(self) -> float:
        return self.cache_hits / (self.cache_hits + self.cache_misses)

    def table(self) -> str:
        rows = [
            ("requests", f"{self.requests}"),
            ("seconds", f"{self.seconds:.2f}"),
            ("requests per second", f"{self.rps:.1f}"),
            ("p50 latency (ms)", f"{percentile(self.latencies, 50) * 1000:.1f}"),
            ("p99 latency (ms)", f"{percentile(self.latencies, 99) * 1000:.1f}"),
            ("5xx share", f"{self.error_rate:.4f}"),
            ("cache hit ratio", f"{self.cache_hit_ratio:.4f}"),
            ("output tokens", f"{self.output_tokens}"),
        ]
        return "\n".join(f"| {name} | {value} |" for name, value in rows)


async def run_load(url: str, *, conversations: int, concurrency: int) -> LoadReport:
    """Each conversation: create a session, ask one question: three in ten are asked again and
    again (cache hits once answered), one in ten fails upstream, the others are new."""
    report = LoadReport()
    todo = iter(range(conversations))
    lock = asyncio.Lock()

    async def timed(http: httpx.AsyncClient, path: str, body: dict[str, str]) -> httpx.Response:
        start = time.perf_counter()
        response = await http.post(path, json=body)
        report.latencies.append(time.perf_counter() - start)
        report.requests += 1
        report.server_errors += response.status_code >= 500
        return response

    async def user() -> None:
        async with httpx.AsyncClient(base_url=url, timeout=30) as http:
            while True:
                async with lock:
                    i = next(todo, None)
                if i is None:
                    return
                session = await timed(http, "/v1/sessions", {"assistant_id": "echo"})
                assert session.status_code == 201, session.text
                question = (
                    FAILING if i % 10 == 9
                    else QUESTIONS[i % len(QUESTIONS)] if i % 10 < 3
                    else f"a new question {uuid.uuid4().hex}"
                )  # fmt: skip
                reply = await timed(
                    http, f"/v1/sessions/{session.json()['id']}/messages", {"content": question}
                )
                if reply.status_code != 200:
                    assert reply.status_code == 502, reply.text
                    report.cache_misses += 1  # looked up, missed, then the engine failed
                    continue
                message = reply.json()["message"]
                if message["cached"]:
                    report.cache_hits += 1
                else:
                    report.cache_misses += 1
                    report.output_tokens += message["usage"]["completion_tokens"]

    start = time.perf_counter()
    await asyncio.gather(*(user() for _ in range(concurrency)))
    report.seconds = time.perf_counter() - start
    print(f"\nload on {url}\n{report.table()}")
    return report
