"""Where chatgate's time goes under load: py-spy samples, summed by function and by library.

py-spy (`.venv/bin/pip install py-spy`) samples the running server from outside, so chatgate
runs unchanged (each sample pauses it for a moment, so profile runs are not timed). Only samples
holding the GIL count, so the shares are of the CPU time the server's Python spends, not of
time spent waiting.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

PY_SPY = Path(sys.executable).parent / "py-spy"
REPO = Path(__file__).resolve().parent.parent.parent
FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^()]*?)(?::\d+)?\)$")


# Where a sample's CPU went in the request path: the stage of the frame nearest the leaf that
# names one; samples that name none are uvicorn's HTTP parsing and the event loop itself.
STAGES = [
    (
        "FastAPI's thread-pool hand-off for sync `def` dependencies",
        ("run_in_threadpool", "WorkerThread.run"),
    ),
    ("JWT check (Authenticator.authenticate)", ("Authenticator.authenticate",)),
    ("log records (e.g. the access log line)", ("Logger.info", "Logger.log", "Logger._log")),
    (
        "Prometheus metrics",
        ("MetricWrapperBase.labels", "Histogram.observe", "Counter.inc", "Gauge.inc", "Gauge.dec"),
    ),
    ("upstream call (OpenAIProvider.stream: aiohttp)", ("OpenAIProvider.stream",)),
    (
        "OpenAI front (chat_completions, completion_request, complete)",
        ("chat_completions", "completion_request", "complete", "completion_events"),
    ),
    ("writing the response (Response.__call__ down to uvicorn)", ("Response.__call__",)),
    (
        "FastAPI request handling (body read + JSON parse + validation, dependency solving)",
        ("get_request_handler.<locals>.app",),
    ),
    ("routing and middleware (Starlette/FastAPI/chatgate)", ("RequestResponseCycle.run_asgi",)),
    ("other threads (e.g. the log writer)", ("Thread._bootstrap_inner",)),
]


def py_spy() -> Path | None:
    return PY_SPY if PY_SPY.exists() else (Path(p) if (p := shutil.which("py-spy")) else None)


def start(pid: int, seconds: float, folded: Path) -> subprocess.Popen[bytes]:
    """Starts sampling `pid` for `seconds` into the folded-stacks file `folded`."""
    tool = py_spy()
    if tool is None:
        raise RuntimeError("py-spy is not installed: .venv/bin/pip install py-spy")
    # --gil: only samples holding the GIL, i.e. Python (or C called from it) running on the CPU;
    # threads parked in a queue are not time the server spends.
    common = [
        "--pid",
        str(pid),
        "--duration",
        str(int(seconds)),
        "--rate",
        "250",
        "--gil",
        "--full-filenames",
        "--nolineno",
    ]
    # Folded stacks: summed below, and readable by flamegraph.pl or speedscope.app as they are.
    return subprocess.Popen(
        [
            str(tool),
            "record",
            *common,
            "--format",
            "raw",
            "--output",
            str(folded),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def _frames(stack: str) -> list[tuple[str, str]]:
    frames = []
    for part in stack.split(";"):
        match = FRAME.match(part.strip())
        frames.append((match["func"], match["file"]) if match else (part.strip(), ""))
    return frames


def _stage(frames: list[tuple[str, str]]) -> str:
    for func, _ in reversed(frames):
        for label, markers in STAGES:
            if func in markers:
                return label
    return "uvicorn HTTP parsing and the event loop (uvloop, asyncio)"


def _short(file: str) -> str:
    for marker in ("/site-packages/", "/lib/python3.11/", str(REPO) + "/"):
        if marker in file:
            return file.split(marker, 1)[1]
    return file


def _area(file: str) -> str:
    """The library a frame belongs to: its package, or `stdlib <module>`, or chatgate."""
    if "/site-packages/" in file:
        return file.split("/site-packages/", 1)[1].split("/")[0].removesuffix(".py")
    if "/chatgate/" in file:
        return "chatgate"
    if "/lib/python3" in file:
        module = file.split("/lib/python3", 1)[1].split("/")[1]
        return f"stdlib {module.removesuffix('.py')}"
    return file or "no Python frame (uvloop, C)"


def summarise(folded: Path, *, top: int = 25) -> str:
    """Inclusive and self shares by function, and self share by library, as plain text."""
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    areas: Counter[str] = Counter()
    stages: Counter[str] = Counter()
    total = 0
    for line in folded.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = _frames(stack)
        # Drop the thread name py-spy may put first.
        frames = [f for f in frames if f[1] or not f[0].startswith(("process ", "thread "))]
        if not frames:
            continue
        total += count
        names = [f"{func} ({_short(file)})" for func, file in frames]
        for name in set(names):
            inclusive[name] += count
        own[names[-1]] += count
        areas[_area(frames[-1][1])] += count
        stages[_stage(frames)] += count
    if not total:
        return "no samples (is py-spy allowed to ptrace? run as root or with CAP_SYS_PTRACE)"

    def table(title: str, counter: Counter[str]) -> list[str]:
        rows = [f"{title} ({total} samples)"]
        rows += [f"  {100 * n / total:5.1f}%  {name}" for name, n in counter.most_common(top)]
        return rows

    return "\n\n".join(
        "\n".join(table(title, counter))
        for title, counter in (
            ("CPU by stage of the request", stages),
            ("self time by library", areas),
            ("inclusive time by function", inclusive),
            ("self time by function", own),
        )
    )
