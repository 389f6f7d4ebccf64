"""Bundled model benchmark: tokens/s and time to first token, llama.cpp direct and via chatgate.

    .venv/bin/python bench/local_model.py [--runs 5] [--max-tokens 128] [--threads N]

The same prompt, system prompt, max_tokens and temperature 0 go (1) straight to llama-cpp-python
(create_chat_completion, stream=True) with the bundled SmolLM2-135M-Instruct loaded as chatgate's
local provider loads it, and (2) through a running `chatgate serve` (POST
/v1/sessions/{id}/messages, response_mode streaming, a new session per run, so no history),
configured by a YAML file with one assistant on provider `local`. Runs alternate between the two
so that drift in the machine's load hits both alike; run i asks question i on both paths, so
neither gets the previous run's prompt from llama.cpp's prefix cache (the system prompt, shared
by every question, is reused by both, as in real use). Counted per run: text pieces (llama.cpp
chunks with content; chatgate `delta` events), time to the first one, and the decode rate
(pieces after the first / time from first to last). Target: chatgate >= 90% of direct tokens/s.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
from harness import OUT, machine_line, raise_file_limit, serve_chatgate

from chatgate.core.config import ProviderConfig
from chatgate.providers.local import bundled_model_path

SYSTEM = "You are a helpful, concise assistant."
QUESTIONS = [
    "Explain how a bicycle works, part by part: frame, wheels, chain, gears and brakes.",
    "Describe how a refrigerator keeps food cold, step by step.",
    "Why do leaves change colour in autumn? Explain the chemistry in detail.",
    "Give a beginner a complete guide to brewing good coffee at home.",
    "How does a train stay on its rails and go round curves?",
    "Explain how vaccines teach the immune system, step by step.",
    "Describe the water cycle from ocean to rain and back in detail.",
    "How does a credit card payment travel from the shop to the bank?",
    "Explain how a lighthouse works and why lighthouses flash in patterns.",
    "Describe how bread rises and what each ingredient does.",
    "Explain how a hydroelectric dam produces electricity.",
]
ASSISTANT = "bench-local"


@dataclass
class Run:
    ttft: float  # seconds from the call (or the POST) to the first piece of text
    pieces: list[str] = field(default_factory=list)
    stamps: list[float] = field(default_factory=list)
    total: float = 0.0

    @property
    def rate(self) -> float:
        """Decode rate: pieces after the first, over the time from the first to the last."""
        if len(self.stamps) < 2:
            return float("nan")
        return (len(self.stamps) - 1) / (self.stamps[-1] - self.stamps[0])


def load_model(threads: int | None) -> Any:
    """The bundled model, loaded with the parameters chatgate's LocalProvider uses."""
    from llama_cpp import Llama

    config = ProviderConfig(id="local", type="local", n_threads=threads)
    return Llama(
        model_path=str(bundled_model_path()),
        n_ctx=config.n_ctx,
        n_threads=config.n_threads,
        verbose=False,
    )


def direct_run(llm: Any, question: str, max_tokens: int) -> Run:
    messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": question}]
    started = time.perf_counter()
    run = Run(ttft=0.0)
    for piece in llm.create_chat_completion(
        messages=messages, max_tokens=max_tokens, temperature=0, stream=True
    ):
        text = piece["choices"][0]["delta"].get("content")
        if text:
            run.stamps.append(time.perf_counter())
            run.pieces.append(text)
    run.total = time.perf_counter() - started
    run.ttft = run.stamps[0] - started
    return run


def chatgate_run(client: httpx.Client, question: str) -> Run:
    session = client.post("/v1/sessions", json={"assistant_id": ASSISTANT})
    session.raise_for_status()
    path = f"/v1/sessions/{session.json()['id']}/messages"
    body = {"content": question, "response_mode": "streaming"}
    run = Run(ttft=0.0)
    started = time.perf_counter()
    with client.stream("POST", path, json=body) as response:
        if response.status_code != 200:
            raise RuntimeError(f"chatgate answered {response.status_code}: {response.read()!r}")
        event = ""
        for line in response.iter_lines():
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: ") and event == "delta":
                run.stamps.append(time.perf_counter())
                run.pieces.append(orjson.loads(line[6:])["text"])
            elif line.startswith("data: ") and event == "error":
                raise RuntimeError(f"chatgate sent an error event: {line[6:300]}")
    run.total = time.perf_counter() - started
    run.ttft = run.stamps[0] - started
    return run


def config_yaml(max_tokens: int, threads: int | None) -> str:
    return f"""\
providers:
  - id: local
    type: local
    n_threads: {threads if threads else "null"}
assistants:
  - id: {ASSISTANT}
    name: Benchmark assistant
    provider: local
    model: smollm2-135m-instruct
    system_prompt: {SYSTEM}
    max_context_tokens: 2048
    max_answer_tokens: {max_tokens}
    temperature: 0
    cache_answers: false
cache:
  enabled: false
"""


def summary(runs: list[Run]) -> dict[str, float]:
    return {
        "ttft_ms": statistics.median(r.ttft for r in runs) * 1000,
        "ttft_min": min(r.ttft for r in runs) * 1000,
        "ttft_max": max(r.ttft for r in runs) * 1000,
        "rate": statistics.median(r.rate for r in runs),
        "rate_min": min(r.rate for r in runs),
        "rate_max": max(r.rate for r in runs),
        "pieces": statistics.median(len(r.pieces) for r in runs),
        "total_s": statistics.median(r.total for r in runs),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=5, help="measured runs of each (default 5)")
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument(
        "--threads", type=int, help="llama.cpp threads for both (default: the provider's default)"
    )
    args = parser.parse_args()
    if args.runs + 1 > len(QUESTIONS):
        sys.exit(f"at most {len(QUESTIONS) - 1} runs: there are {len(QUESTIONS)} questions")
    raise_file_limit()
    OUT.mkdir(parents=True, exist_ok=True)
    config = OUT / "local-model-config.yaml"
    config.write_text(config_yaml(args.max_tokens, args.threads))
    print(f"machine: {machine_line()}", flush=True)

    llm = load_model(args.threads)
    direct: list[Run] = []
    served: list[Run] = []
    with tempfile.TemporaryDirectory(prefix="chatgate-bench-") as scratch:
        env = {
            "CHATGATE_DATABASE_URL": f"sqlite+aiosqlite:///{Path(scratch) / 'chatgate.db'}",
            "CHATGATE_AUTH_MODE": "none",
            "CHATGATE_LOG_LEVEL": "WARNING",
        }
        with (
            serve_chatgate(env=env, workers=1, config=config, log_name="local-model") as (port, _),
            httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120) as client,
        ):
            direct_run(llm, QUESTIONS[0], args.max_tokens)  # warm-up: first-call costs
            chatgate_run(client, QUESTIONS[0])
            for i, question in enumerate(QUESTIONS[1 : args.runs + 1]):
                direct.append(direct_run(llm, question, args.max_tokens))
                served.append(chatgate_run(client, question))
                print(
                    f"run {i + 1}: direct {direct[-1].rate:.1f} tok/s, "
                    f"chatgate {served[-1].rate:.1f} tok/s",
                    flush=True,
                )
    report(args, direct, served)


def report(args: argparse.Namespace, direct: list[Run], served: list[Run]) -> None:
    same = all("".join(d.pieces) == "".join(s.pieces) for d, s in zip(direct, served, strict=True))
    print()
    print(
        f"SmolLM2-135M-Instruct (bundled GGUF), llama-cpp-python, max_tokens={args.max_tokens}, "
        f"temperature 0, llama.cpp threads {args.threads or 'default'}, {args.runs} runs each, "
        "alternating; chatgate: serve --workers 1, SQLite"
    )
    print(
        f"{'path':<26}{'TTFT ms':>9}{'(min-max)':>11}{'tokens/s':>10}{'(min-max)':>11}"
        f"{'tokens':>8}{'total s':>9}"
    )
    rows = (("llama.cpp direct", summary(direct)), ("chatgate streaming (SSE)", summary(served)))
    for label, s in rows:
        ttft_spread = f"{s['ttft_min']:.0f}-{s['ttft_max']:.0f}"
        spread = f"{s['rate_min']:.0f}-{s['rate_max']:.0f}"
        print(
            f"{label:<26}{s['ttft_ms']:>9.0f}{ttft_spread:>11}{s['rate']:>10.1f}{spread:>11}"
            f"{s['pieces']:>8.0f}{s['total_s']:>9.2f}"
        )
    ratio = rows[1][1]["rate"] / rows[0][1]["rate"]
    verdict = "meets target" if ratio >= 0.9 else "MISSES target"
    print(f"ratio chatgate/direct tokens/s (medians): {ratio:.2f}  (target >= 0.90 -> {verdict})")
    extra = rows[1][1]["ttft_ms"] - rows[0][1]["ttft_ms"]
    print(f"time to first token, chatgate minus direct (medians): {extra:.0f} ms")
    print(f"same text from both paths: {'yes' if same else 'NO (the prompts differ?)'}")
    if not same:
        print(f"  direct:   {''.join(direct[0].pieces)[:200]!r}", file=sys.stderr)
        print(f"  chatgate: {''.join(served[0].pieces)[:200]!r}", file=sys.stderr)


if __name__ == "__main__":
    main()
