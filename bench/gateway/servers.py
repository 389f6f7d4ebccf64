"""The servers of the gateway benchmark: the nginx upstream, LiteLLM's proxy, and chatgate.

Each is a child process on a free loopback port, started in its own process group and stopped
by its own pid when its context ends, whatever happened in between.
"""

from __future__ import annotations

import contextlib
import fcntl
import http.client
import http.server
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from harness import JWT_AUDIENCE, free_port, serve_chatgate, stop_process_group

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
LITELLM_VENV = HERE / ".venv-litellm"
LUA_MODULE = Path("/usr/lib/nginx/modules/ngx_http_lua_module.so")
SETUP = "bench/gateway/setup.sh"


@contextlib.contextmanager
def one_run_at_a_time(out: Path) -> Iterator[None]:
    """Holds out/.lock: two runs would share CPUs (spoiling both) and this directory."""
    out.mkdir(parents=True, exist_ok=True)
    with (out / ".lock").open("a+") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.seek(0)
            holder = lock.read().strip() or "another process"
            print(f"waiting for the gateway benchmark already running ({holder})", file=sys.stderr)
            fcntl.flock(lock, fcntl.LOCK_EX)
        lock.seek(0)
        lock.truncate()
        lock.write(f"pid {os.getpid()}\n")
        lock.flush()
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def missing_tools(*, litellm: bool = True) -> list[str]:
    """What is not installed, each with the command that installs it (LiteLLM's proxy only
    when it is to be measured)."""
    missing = []
    if not shutil.which("nginx") or not LUA_MODULE.exists():
        missing.append(
            f"nginx with its Lua module (apt-get install -y nginx-light "
            f"libnginx-mod-http-lua, or {SETUP})"
        )
    if not shutil.which("wrk"):
        missing.append(f"wrk (apt-get install -y wrk, or {SETUP})")
    if litellm and not (LITELLM_VENV / "bin" / "litellm").exists():
        missing.append(f"LiteLLM's proxy in {LITELLM_VENV} ({SETUP})")
    return missing


@contextlib.contextmanager
def pinned(cpus: set[int] | None) -> Iterator[None]:
    """Children spawned inside this block run on `cpus` (they inherit the affinity)."""
    if not cpus:
        yield
        return
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, cpus)
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


def _status(port: int, path: str) -> int | None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        response.read()
        return response.status
    except OSError:
        return None
    finally:
        conn.close()


def _wait_ready(
    process: subprocess.Popen[bytes], port: int, path: str, name: str, log: Path, timeout: float
) -> None:
    deadline = time.monotonic() + timeout
    while _status(port, path) != 200:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited at start-up; see {log}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{name} did not answer {path} in {timeout:.0f} s; see {log}")
        time.sleep(0.2)


@contextlib.contextmanager
def _child(
    command: list[str],
    *,
    env: dict[str, str],
    log: Path,
    port: int,
    ready_path: str,
    name: str,
    timeout: float,
) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as out:
        process = subprocess.Popen(
            command, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            _wait_ready(process, port, ready_path, name, log, timeout)
            yield process
        finally:
            stop_process_group(process)


@contextlib.contextmanager
def serve_upstream(out: Path, *, stream_gap: float) -> Iterator[int]:
    """nginx answering /v1/chat/completions with a fixed completion (see upstream.lua)."""
    port = free_port()
    prefix = out / "nginx"
    prefix.mkdir(parents=True, exist_ok=True)
    config = (
        (HERE / "nginx.conf")
        .read_text()
        .format(prefix=prefix, port=port, lua_dir=HERE, stream_gap=stream_gap)
    )
    (prefix / "nginx.conf").write_text(config)
    command = ["nginx", "-p", str(prefix), "-c", str(prefix / "nginx.conf")]
    with _child(
        command,
        env=dict(os.environ),
        log=out / "nginx.log",
        port=port,
        ready_path="/health",
        name="nginx",
        timeout=20,
    ):
        yield port


@contextlib.contextmanager
def serve_litellm(
    out: Path, *, upstream_port: int, master_key: str
) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    """LiteLLM's proxy with one worker, from its own environment."""
    port = free_port()
    config = out / "litellm.yaml"
    config.write_text(
        (HERE / "litellm.yaml")
        .read_text()
        .format(upstream_port=upstream_port, master_key=master_key)
    )
    command = [
        str(LITELLM_VENV / "bin" / "litellm"),
        "--config",
        str(config),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--num_workers",
        "1",
    ]
    env = {
        **os.environ,
        # No internet here: use the bundled model price list instead of fetching it.
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "VIRTUAL_ENV": str(LITELLM_VENV),
        "PATH": f"{LITELLM_VENV / 'bin'}:{os.environ.get('PATH', '')}",
    }
    for name in ("CHATGATE_CONFIG", "PYTHONPATH"):
        env.pop(name, None)
    with _child(
        command,
        env=env,
        log=out / "litellm.log",
        port=port,
        ready_path="/health/liveliness",
        name="LiteLLM",
        timeout=240,
    ) as process:
        yield port, process


@contextlib.contextmanager
def serve_bare_proxy(
    out: Path, *, upstream_port: int, asgi: bool = False
) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    """A floor: a bare FastAPI + aiohttp pass-through (bare_proxy.py) on chatgate's stack, or
    with `asgi` the same with no framework (uvicorn + aiohttp alone)."""
    port = free_port()
    upstream = f"http://127.0.0.1:{upstream_port}/v1/chat/completions"
    command = [sys.executable, str(HERE / "bare_proxy.py"), str(port), upstream]
    name = "asgi-proxy" if asgi else "bare-proxy"
    with _child(
        command + (["--asgi"] if asgi else []),
        env=dict(os.environ),
        log=out / f"{name}.log",
        port=port,
        ready_path="/health",
        name=name.replace("-", " "),
        timeout=60,
    ) as process:
        yield port, process


@contextlib.contextmanager
def serve_gateway(
    out: Path,
    *,
    upstream_port: int,
    jwt_secret: str,
    name: str = "chatgate",
    source: Path | None = None,
    extra_env: dict[str, str] | None = None,
) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    """`chatgate serve --workers 1 --config ...` with JWT auth, on a fresh SQLite database.

    `source`, a directory holding another `chatgate` package (a copy with a change to try), is
    put first on PYTHONPATH so that copy is served instead of the repository's.
    """
    config = out / f"{name}.yaml"
    config.write_text((HERE / "chatgate.yaml").read_text().format(upstream_port=upstream_port))
    database = out / f"{name}.db"
    for leftover in out.glob(f"{name}.db*"):
        leftover.unlink()
    env = {
        "CHATGATE_AUTH_MODE": "jwt",
        "CHATGATE_JWT_SECRET": jwt_secret,
        "CHATGATE_JWT_AUDIENCE": JWT_AUDIENCE,
        "CHATGATE_DATABASE_URL": f"sqlite+aiosqlite:///{database}",
        "BENCH_UPSTREAM_KEY": "sk-bench-upstream",
    }
    env.update(extra_env or {})
    if source is not None:
        env["PYTHONPATH"] = str(source)
    with serve_chatgate(env=env, workers=1, config=config, log_name=f"gateway-{name}") as served:
        yield served


@contextlib.contextmanager
def otlp_sink() -> Iterator[tuple[str, dict[str, int]]]:
    """An OTLP/HTTP collector on loopback that reads each export and drops it; yields its
    endpoint and the running count of exports and bytes received."""
    counts = {"requests": 0, "bytes": 0}

    class Sink(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            size = int(self.headers.get("Content-Length", 0))
            self.rfile.read(size)
            counts["requests"] += 1
            counts["bytes"] += size
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Sink)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", counts
    finally:
        server.shutdown()
        server.server_close()


def cpu_split(pin: bool) -> tuple[set[int] | None, set[int] | None]:
    """(CPUs for the servers under test, CPUs for load generator and upstream)."""
    cpus = sorted(os.sched_getaffinity(0))
    if not pin or len(cpus) < 2:
        return None, None
    return {cpus[-1]}, set(cpus[:-1])


def wait_for_quiet(seconds: float) -> None:
    limit = (os.cpu_count() or 1) / 2
    deadline = time.monotonic() + seconds
    while os.getloadavg()[0] > limit and time.monotonic() < deadline:
        print(f"load average {os.getloadavg()[0]:.1f} > {limit:g}; waiting", file=sys.stderr)
        time.sleep(15)


def versions(chatgate_label: str = "working tree") -> dict[str, str]:
    def run(command: list[str]) -> str:
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        lines = (done.stdout + done.stderr).strip().splitlines()
        return lines[0] if lines else "?"

    litellm_python = LITELLM_VENV / "bin" / "python"
    metadata = "import importlib.metadata as m; print(m.version('litellm'))"
    if chatgate_label == "working tree":
        head = run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"])
        dirty = run(["git", "-C", str(REPO), "status", "--porcelain", "--", "chatgate"])
        chatgate_label = f"working tree at {head}" + (
            " with uncommitted changes" if dirty not in ("", "?") else ""
        )
    return {
        "chatgate": chatgate_label,
        "litellm": run([str(litellm_python), "-c", metadata]) if litellm_python.exists() else "-",
        "nginx": run(["nginx", "-v"]).rpartition("/")[2],
        "wrk": run(["wrk", "-v"]).split(" [")[0].removeprefix("wrk "),
        "python": sys.version.split()[0],
    }
