"""Shared pieces of the benchmarks: file limits, a scratch PostgreSQL database, a served chatgate.

Nothing here installs anything; a missing tool is reported with the command that installs it.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import os
import platform
import resource
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import asyncpg

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "bench" / "out"  # server logs and generated configs; ignored by git
CHATGATE = Path(sys.executable).parent / "chatgate"
PG_ADMIN_URL = os.environ.get("CHATGATE_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/test")
# Auth mode jwt checks the audience: the benchmark's tokens are made for this one.
JWT_AUDIENCE = "chatgate-bench"


def bench_token(secret: str, *, ttl: int = 86400) -> str:
    """A signed JWT for the benchmark's one user, with the audience chatgate is started with."""
    import jwt

    claims = {"sub": "bench-user", "aud": JWT_AUDIENCE, "exp": int(time.time()) + ttl}
    return jwt.encode(claims, secret, algorithm="HS256")


def raise_file_limit(wanted: int = 65536) -> int:
    """Raises RLIMIT_NOFILE (soft, up to the hard limit) for this process and its children."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def machine_line() -> str:
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return (
        f"{datetime.now(UTC):%Y-%m-%d %H:%M UTC}; {os.cpu_count()} CPUs ({cpu_model()}); "
        f"load average at start {load} (the machine is shared: figures are noisy)"
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile (pct in 0..100) of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(pct / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


class ScratchPostgres:
    """A fresh database on the admin server, dropped (WITH FORCE) afterwards unless kept."""

    def __init__(self, name: str, admin_url: str = PG_ADMIN_URL) -> None:
        self.name = name
        self.admin_url = admin_url
        base = admin_url.rsplit("/", 1)[0]
        self.dsn = f"{base}/{name}"  # for asyncpg
        self.url = self.dsn.replace("postgresql://", "postgresql+asyncpg://", 1)  # for chatgate

    async def _admin(self, sql: str) -> None:
        conn = await asyncpg.connect(self.admin_url)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    def create(self) -> None:
        asyncio.run(self._admin(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)'))
        asyncio.run(self._admin(f'CREATE DATABASE "{self.name}"'))

    def drop(self) -> None:
        asyncio.run(self._admin(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)'))


def _get(port: int, path: str, timeout: float = 2.0) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


@contextlib.contextmanager
def serve_chatgate(
    *,
    env: dict[str, str],
    workers: int = 1,
    config: Path | None = None,
    log_name: str = "chatgate",
    start_timeout: float = 120.0,
) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    """`chatgate serve` as a child process on a free loopback port; yields (port, process)."""
    port = free_port()
    OUT.mkdir(parents=True, exist_ok=True)
    log_path = OUT / f"{log_name}.log"
    command = [str(CHATGATE), "serve", "--host", "127.0.0.1", "--port", str(port)]
    command += ["--workers", str(workers)]
    if config is not None:
        command += ["--config", str(config)]
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command,
            env={**os.environ, **env},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own group, so its workers can be ended with it
        )
        try:
            deadline = time.monotonic() + start_timeout
            while True:
                if process.poll() is not None:
                    raise RuntimeError(f"chatgate exited at start-up; see {log_path}")
                with contextlib.suppress(OSError):
                    if _get(port, "/health") == 200:
                        break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"chatgate did not answer /health; see {log_path}")
                time.sleep(0.2)
            yield port, process
        except Exception:
            code = process.poll()
            state = "running" if code is None else f"exited with code {code}"
            tail = log_path.read_text(errors="replace").splitlines()[-15:]
            print(f"chatgate ({state}); last lines of {log_path}:", file=sys.stderr)
            print("\n".join(f"  {line}" for line in tail), file=sys.stderr)
            raise
        finally:
            stop_process_group(process)


def stop_process_group(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the server we started (uvicorn stops its workers); SIGKILL its group if stuck."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


def process_tree_cpu_seconds(pid: int) -> float:
    """User+system CPU seconds of a process and its live descendants (Linux /proc)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    stack = [pid]
    while stack:
        current = stack.pop()
        try:
            stat = Path(f"/proc/{current}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / ticks
        for task in Path(f"/proc/{current}/task").glob("*/children"):
            with contextlib.suppress(OSError):
                stack.extend(int(c) for c in task.read_text().split())
    return total


def machine_cpu_seconds() -> float:
    """Busy CPU seconds of the whole machine so far, from /proc/stat (all cores together)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def postgres_backends(database: str) -> list[int]:
    """Pids of the PostgreSQL backends connected to one database (their titles name it)."""
    pids = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        with contextlib.suppress(OSError):
            title = cmdline.read_bytes().decode(errors="replace")
            if title.startswith("postgres: ") and f" {database} " in title:
                pids.append(int(cmdline.parent.name))
    return pids


class CpuMeter:
    """CPU used during a stretch of time: by a server tree, by our children (the load tool), by
    the database's backends, and by everything else on the machine (other people's work)."""

    def __init__(self, *, server_pid: int, database: str | None = None) -> None:
        self.server_pid = server_pid
        self.database = database

    def _sample(self) -> dict[str, float]:
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        backends = postgres_backends(self.database) if self.database else []
        self.backends = {pid: process_tree_cpu_seconds(pid) for pid in backends}
        return {
            "server": process_tree_cpu_seconds(self.server_pid),
            "load_tool": children.ru_utime + children.ru_stime,
            "machine": machine_cpu_seconds(),
            "wall": time.monotonic(),
        }

    def __enter__(self) -> CpuMeter:
        self.start = self._sample()
        self.backends_at_start = self.backends
        return self

    def __exit__(self, *exc: object) -> None:
        end = self._sample()
        wall = end["wall"] - self.start["wall"]
        used = {k: (end[k] - self.start[k]) / wall for k in end if k != "wall"}
        # Backends opened during the stretch count from zero; those closed in it are not seen.
        used["postgres"] = (
            sum(cpu - self.backends_at_start.get(pid, 0.0) for pid, cpu in self.backends.items())
            / wall
        )
        used["others"] = max(
            0.0, used["machine"] - used["server"] - used["load_tool"] - used["postgres"]
        )
        self.cores = used  # average cores busy during the stretch, per consumer


def chatgate_source(spec: str | None, out: Path) -> tuple[Path | None, str]:
    """Which chatgate to serve: (directory to put first on PYTHONPATH, label).

    None is the working tree as it is; a directory is a copy holding a `chatgate` package; any
    other name is a git commit, exported read-only with `git archive` (the working tree, index
    and branches are left alone).
    """
    if spec is None:
        return None, "working tree"
    if Path(spec).is_dir():
        return Path(spec).resolve(), spec
    repo = REPO
    sha = subprocess.run(
        ["git", "-C", str(repo), "rev-parse", "--short", f"{spec}^{{commit}}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    target = out / f"src-{sha}"
    if not (target / "chatgate").is_dir():
        target.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(
            ["git", "-C", str(repo), "archive", sha, "chatgate"], capture_output=True, check=True
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(target)], input=archive, check=True)
    return target, f"commit {sha}"
