"""Answer cache benchmark: how many engine calls does the cache save on FAQ-like traffic?

    .venv/bin/python bench/cache_zipf.py [--requests 1000] [--rate 1000] [--speed 20]
                                         [--ttls 60,300,600] [--workers 2] [--simulate-only]

The workload: 30 intents of an online shop's FAQ, asked in 100 phrasings (English and Chinese;
rewordings, and the same words typed with other case, width, punctuation and spacing). 1,000
questions are drawn from the phrasings with a Zipf law (s = 1, over the phrasings in a seeded
random order) and arrive as a Poisson process of `--rate` questions an hour; every question is
context-free (`POST /v1/qa` without a session), as a FAQ widget asks them. Seed 20261121.

Two measurements, printed side by side for each TTL:
  (a) model: the workload through chatgate's own AnswerCache (normaliser, keys, in-process store)
      on a simulated clock: exact and deterministic, and also for a cache keyed by the raw text,
      the baseline that normalisation has to beat;
  (b) http: the same questions at their arrival times, `--speed` times faster, over HTTP
      to a real `chatgate serve --workers N` (PostgreSQL, Redis, so the workers share the cache)
      in front of the OpenAI double; the engine calls are the requests the double received.
      The TTL is divided by the speed too (at 20, 60 s of traffic in 3 s, a 600 s TTL as 30 s).
      An answer's latency is multiplied by the speed in simulated time, and questions asked
      while the same one is still being answered miss: keep the p95 printed well under the TTL
      (at 60 on a loaded 2-CPU machine, a 60 s TTL saved 7 % instead of 39 %).
Needs PostgreSQL (CHATGATE_BENCH_PG, as bench/harness.py) and Redis (CHATGATE_BENCH_REDIS, default
redis://127.0.0.1:6379/0) for (b); `--simulate-only` runs (a) alone. Each TTL takes about
3,600 / speed seconds over HTTP.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import secrets
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx
import yaml
from harness import OUT, ScratchPostgres, machine_line, percentile, serve_chatgate

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from chatgate.assistants.schemas import Assistant
from chatgate.cache.service import AnswerCache
from chatgate.cache.store import MemoryAnswerStore
from chatgate.chat.models import Message
from tests.doubles.openai_api import OpenAIDouble
from tests.doubles.server import serve_app

SEED = 20261121
REDIS_URL = os.environ.get("CHATGATE_BENCH_REDIS", "redis://127.0.0.1:6379/0")

# 30 intents, 100 phrasings: 10 intents asked 4 ways, 20 asked 3 ways.
INTENTS: list[list[str]] = [
    # English
    [
        "What are your opening hours?",
        "what are your opening hours",
        "WHAT ARE YOUR OPENING HOURS??",
        "When are you open?",
    ],
    [
        "How do I reset my password?",
        "how do i reset my password",
        "How do I reset my password ?",
        "I forgot my password",
    ],
    ["Where is my order?", "where is my order", "Where's my order?!", "Track my order"],
    [
        "How can I return an item?",
        "how can i return an item",
        "How do I send something back?",
        "Return policy?",
    ],
    [
        "Do you ship internationally?",
        "do you ship internationally?",
        "Do you ship abroad?",
        "Do you ship to Canada?",
    ],
    [
        "How long does delivery take?",
        "How long does delivery take",
        "HOW LONG DOES DELIVERY TAKE",
        "how long does shipping take?",
    ],
    ["How do I cancel my order?", "how do I cancel my order?", "Cancel my order"],
    [
        "What payment methods do you accept?",
        "what payment methods do you accept",
        "Can I pay with PayPal?",
    ],
    [
        "How do I contact customer service?",
        "how do I contact customer service",
        "Ｈｏｗ ｄｏ Ｉ ｃｏｎｔａｃｔ ｃｕｓｔｏｍｅｒ ｓｅｒｖｉｃｅ？",
    ],
    [
        "Is there a student discount?",
        "is there a student discount",
        "Do you have student discounts?",
    ],
    [
        "How do I change my shipping address?",
        "How do I change my shipping address ?",
        "change shipping address",
    ],
    ["Can I get a refund?", "can i get a refund?", "When will I get my refund?"],
    [
        "How do I apply a coupon code?",
        "how do i apply a coupon code",
        "My coupon code doesn't work",
    ],
    ["Do you have a size guide?", "do you have a size guide?", "What size should I order?"],
    ["How do I delete my account?", "how do I delete my account", "Delete my account, please."],
    # Chinese
    ["怎么退货？", "怎么退货", "怎么 退货 ？", "如何办理退货"],
    ["多久能发货？", "多久能发货", "什么时候发货？", "下单后多久发货"],
    ["怎么修改收货地址？", "怎么修改收货地址", "怎么 修改 收货地址？", "收货地址填错了怎么办"],
    ["退款多久到账？", "退款多久到账", "退款什么时候到账？", "退款到账要几天"],
    ["可以开发票吗？", "可以开发票吗", "怎么开发票？"],
    ["运费怎么算？", "运费怎么算", "包邮吗？"],
    ["怎么联系人工客服？", "怎么联系人工客服", "转人工"],
    ["支持货到付款吗？", "支持货到付款吗", "支持货到付款吗？？"],
    ["怎么取消订单？", "怎么取消订单", "订单可以取消吗？"],
    ["优惠券怎么用？", "优惠券怎么用", "优惠券 怎么 用？"],
    ["会员有什么权益？", "会员有什么权益", "ＶＩＰ会员有什么权益？"],
    ["商品有质量问题怎么办？", "商品有质量问题怎么办", "收到的商品坏了怎么办？"],
    ["怎么查物流？", "怎么查物流", "我的快递到哪了？"],
    ["支持七天无理由退货吗？", "支持7天无理由退货吗", "支持７天无理由退货吗？"],
    ["怎么修改密码？", "怎么修改密码", "忘记密码怎么办？"],
]
PHRASINGS = [p for intent in INTENTS for p in intent]
assert len(INTENTS) == 30 and len(PHRASINGS) == 100


@dataclass(frozen=True, slots=True)
class Ask:
    at: float  # seconds of simulated time since the first question's hour began
    question: str


def workload(*, requests: int, rate_per_hour: float, s: float = 1.0) -> list[Ask]:
    rng = random.Random(SEED)
    ranked = PHRASINGS[:]
    rng.shuffle(ranked)
    weights = [1 / k**s for k in range(1, len(ranked) + 1)]
    questions = rng.choices(ranked, weights, k=requests)
    at, asks = 0.0, []
    for question in questions:
        at += rng.expovariate(rate_per_hour / 3600)
        asks.append(Ask(at, question))
    return asks


@dataclass(slots=True)
class Result:
    requests: int
    engine_calls: int

    @property
    def saved(self) -> float:
        return 1 - self.engine_calls / self.requests


class SimClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def model_normalised(asks: list[Ask], ttl: float) -> Result:
    """The workload through AnswerCache itself, one question after another, on a fake clock."""
    clock = SimClock()
    store = MemoryAnswerStore(ttl_seconds=ttl, max_entries=10_000, clock=clock)
    cache = AnswerCache(store=store, scope="bench")
    faq = Assistant(id="faq", name="FAQ", provider="double", model="m", version=1)
    calls = 0
    for ask in asks:
        clock.now = ask.at
        plan = await cache.consult(assistant=faq, provider_id="double", question=ask.question)
        assert plan is not None
        if plan.hit:
            continue
        calls += 1
        answer = Message(id=uuid.uuid4(), content=f"answer to {ask.question}", status="complete")
        answer.model, answer.error = "m", None
        await cache.remember(plan, sent_question=ask.question, provider_id="double", answer=answer)
    return Result(len(asks), calls)


def model_exact(asks: list[Ask], ttl: float) -> Result:
    """The baseline: a cache keyed by the question exactly as typed."""
    expires: dict[str, float] = {}
    calls = 0
    for ask in asks:
        if expires.get(ask.question, -1.0) > ask.at:
            continue
        calls += 1
        expires[ask.question] = ask.at + ttl
    return Result(len(asks), calls)


def write_config(double_url: str) -> Path:
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / "cache-zipf-config.yaml"
    provider = {
        "id": "double", "type": "openai", "base_url": f"{double_url}/v1",
        "api_key_env": "BENCH_DOUBLE_KEY",
    }  # fmt: skip
    assistant = {
        "id": "faq", "name": "Shop FAQ", "provider": "double", "model": "double-faq",
        "system_prompt": "You answer questions about orders and shipping.",
        "max_context_tokens": 4000, "max_answer_tokens": 200,
    }  # fmt: skip
    path.write_text(yaml.safe_dump({"providers": [provider], "assistants": [assistant]}))
    return path


@dataclass(slots=True)
class Replay:
    results: dict[str, int]
    latencies: list[float]  # seconds, real time
    first_error: str = ""

    def line(self, speed: float) -> str:
        p50, p95 = percentile(self.latencies, 50), percentile(self.latencies, 95)
        return (
            f"X-Cache hit {self.results['hit']}, miss {self.results['miss']}, errors "
            f"{self.results['error']}; latency p50 {p50 * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms "
            f"(= {p95 * speed:.0f} simulated s)"
            + (f"; first error: {self.first_error[:200]}" if self.first_error else "")
        )


async def replay(port: int, asks: list[Ask], speed: float) -> Replay:
    """Sends each question at its arrival time (compressed by `speed`), without waiting for
    earlier answers, as independent clients would."""
    done = Replay({"hit": 0, "miss": 0, "bypass": 0, "error": 0}, [])
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{port}", timeout=30, limits=limits
    ) as http:

        async def one(ask: Ask) -> None:
            sent = time.monotonic()
            response = await http.post("/v1/qa", json={"question": ask.question})
            done.latencies.append(time.monotonic() - sent)
            if response.status_code != 200:
                done.results["error"] += 1
                done.first_error = done.first_error or f"{response.status_code} {response.text}"
            else:
                done.results[response.headers.get("x-cache", "bypass")] += 1

        start = time.monotonic()
        tasks = []
        for ask in asks:
            delay = start + ask.at / speed - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(ask)))
        await asyncio.gather(*tasks)
    return done


def run_http(
    asks: list[Ask], ttl: float, *, args: argparse.Namespace, double: OpenAIDouble, config: Path
) -> tuple[Result, Replay]:
    real_ttl = ttl / args.speed
    if real_ttl != int(real_ttl) or real_ttl < 1:
        raise SystemExit(f"TTL {ttl} s / speed {args.speed} must be a whole number of seconds")
    # A database of its own per run: the cache's keys are scoped by database, so each run
    # starts with an empty cache even though Redis keeps the earlier runs' entries.
    database = ScratchPostgres(f"chatgate_bench_cache_{secrets.token_hex(3)}")
    database.create()
    env = {
        "CHATGATE_DATABASE_URL": database.url,
        "CHATGATE_REDIS_URL": REDIS_URL,
        "CHATGATE_AUTH_MODE": "none",
        "CHATGATE_CACHE__TTL_SECONDS": str(int(real_ttl)),
        "CHATGATE_RATE_LIMITS__ENABLED": "false",
        "CHATGATE_LOG_LEVEL": "WARNING",
        "BENCH_DOUBLE_KEY": "sk-bench",
    }
    try:
        with serve_chatgate(
            env=env, workers=args.workers, config=config, log_name=f"cache-zipf-ttl{ttl:g}"
        ) as (port, _):
            before = len(double.requests)
            replayed = asyncio.run(replay(port, asks, args.speed))
            calls = len(double.requests) - before
    finally:
        database.drop()
    return Result(len(asks), calls), replayed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=1000, help="questions an hour")
    parser.add_argument("--speed", type=float, default=20, help="simulated seconds per second")
    parser.add_argument("--ttls", default="60,300,600", help="TTLs in seconds, comma-separated")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--simulate-only", action="store_true")
    args = parser.parse_args()
    ttls = [float(t) for t in args.ttls.split(",")]
    asks = workload(requests=args.requests, rate_per_hour=args.rate)
    distinct = len({a.question for a in asks})
    print(machine_line())
    print(
        f"workload: {len(asks)} questions, {distinct} distinct phrasings of {len(PHRASINGS)}, "
        f"{len(INTENTS)} intents, Zipf s=1, {args.rate:g}/hour over {asks[-1].at / 60:.0f} "
        f"simulated minutes, seed {SEED}"
    )
    header = (
        f"{'TTL':>6} | {'model, raw text':>16} | {'model, normalised':>18} | http (engine calls)"
    )
    print(header)
    print("-" * len(header))
    double = OpenAIDouble(api_key="sk-bench")
    with serve_app(double.app()) as double_url:
        config = write_config(double_url)
        for ttl in ttls:
            exact = model_exact(asks, ttl)
            normalised = asyncio.run(model_normalised(asks, ttl))
            line = f"{ttl:>5g}s | {exact.saved:>15.1%} | {normalised.saved:>17.1%} |"
            if not args.simulate_only:
                result, replayed = run_http(asks, ttl, args=args, double=double, config=config)
                line += (
                    f" {result.saved:.1%} saved: {result.engine_calls} engine calls for "
                    f"{result.requests} requests; {replayed.line(args.speed)}"
                )
            print(line, flush=True)


if __name__ == "__main__":
    main()
