"""HAProxy from Debian in front of the replicas, as an operator would run it: health checks on
`/ready`, round robin, and retries of idempotent requests only, on another replica.

Its runtime API (the stats socket) tells the tests what the balancer believes: which replica is
UP or DOWN, and how many requests each one was sent.
"""

from __future__ import annotations

import csv
import io
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

BACKEND = "chatgate"
INSTALL = "scripts/ensure-haproxy.sh (apt-get install haproxy) installs it"

# `retry-on`: what is retried on another replica (`option redispatch 1`). A request that never
# reached a replica (conn-failure) is retried whatever its method; the rest (a connection closed
# before any answer, a replica that answers 503 while it drains) only for GET and HEAD: a POST
# may already have been acted on, so it is never sent twice.
CONFIG = """\
global
    maxconn 4096
    stats socket {socket} mode 600 level admin
    log stdout format raw local0 info

defaults
    mode http
    log global
    option httplog
    option forwardfor
    option redispatch 1
    retries 3
    retry-on conn-failure empty-response junk-response response-timeout 503
    timeout connect 1s
    timeout client 120s
    timeout server {server_timeout}s
    timeout http-request 10s
    timeout queue 5s

frontend front
    bind 127.0.0.1:{port}
    default_backend {backend}

backend {backend}
    balance roundrobin
    http-request disable-l7-retry unless METH_GET
    option httpchk GET /ready
    http-check expect status 200
    default-server check inter {inter_ms}ms fastinter {inter_ms}ms downinter {inter_ms}ms \
fall 2 rise 2
{servers}
"""


def haproxy_binary() -> str:
    found = shutil.which("haproxy")
    if found is None:
        raise RuntimeError(f"haproxy is not installed: {INSTALL}")
    return found


@dataclass
class ServerStat:
    name: str
    status: str  # UP, DOWN, MAINT, NOLB (draining), "UP 1/2" while rising...
    sessions: int  # requests (connections) the balancer sent it, since it started


@dataclass
class Balancer:
    port: int
    socket: Path
    log: Path
    process: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self, line: str) -> str:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(5)
            sock.connect(str(self.socket))
            sock.sendall(line.encode() + b"\n")
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks).decode()

    def servers(self) -> dict[str, ServerStat]:
        """The backend's servers as the balancer sees them now."""
        text = self.command("show stat").lstrip("# ")
        stats = {}
        for row in csv.DictReader(io.StringIO(text)):
            if row["pxname"] == BACKEND and row["svname"] not in ("FRONTEND", "BACKEND"):
                stats[row["svname"]] = ServerStat(
                    row["svname"], row["status"], int(row["stot"] or 0)
                )
        return stats

    def wait_for(self, name: str, status: str, seconds: float = 15) -> float:
        """Waits until the balancer holds server `name` to be `status`; the seconds it took."""
        started = time.monotonic()
        while True:
            seen = self.servers()[name].status
            if seen == status:
                return time.monotonic() - started
            if time.monotonic() - started > seconds:
                raise AssertionError(f"haproxy holds {name} {seen}, not {status}, after {seconds}s")
            time.sleep(0.05)

    def retries(self) -> int:
        """Requests the backend retried (`wretr`) or sent to another server (`wredis`)."""
        text = self.command("show stat").lstrip("# ")
        for row in csv.DictReader(io.StringIO(text)):
            if row["pxname"] == BACKEND and row["svname"] == "BACKEND":
                return int(row["wretr"] or 0) + int(row["wredis"] or 0)
        return 0

    def log_text(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")


def write_config(
    folder: Path,
    *,
    port: int,
    servers: dict[str, int],
    inter_ms: int = 500,
    server_timeout: int = 120,
) -> Path:
    lines = "\n".join(f"    server {name} 127.0.0.1:{p}" for name, p in servers.items())
    config = folder / "haproxy.cfg"
    config.write_text(
        CONFIG.format(
            socket=folder / "haproxy.sock", port=port, backend=BACKEND, servers=lines,
            inter_ms=inter_ms, server_timeout=server_timeout,
        ),
        encoding="utf-8",
    )  # fmt: skip
    return config


@contextmanager
def run_haproxy(
    folder: Path, *, port: int, servers: dict[str, int], inter_ms: int = 500
) -> Iterator[Balancer]:
    """HAProxy in the foreground (`-db`), its log in `folder/haproxy.log`, until the block ends;
    yielded once every server is UP."""
    binary = haproxy_binary()
    config = write_config(folder, port=port, servers=servers, inter_ms=inter_ms)
    check = subprocess.run([binary, "-c", "-f", str(config)], capture_output=True, text=True)
    if check.returncode != 0:
        raise RuntimeError(f"haproxy refuses {config}:\n{check.stdout}{check.stderr}")
    log = folder / "haproxy.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [binary, "-db", "-f", str(config)], stdout=out, stderr=subprocess.STDOUT
        )
    balancer = Balancer(port=port, socket=folder / "haproxy.sock", log=log, process=process)
    try:
        deadline = time.monotonic() + 15
        while not balancer.socket.exists() or not _answers(balancer):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"haproxy did not start:\n{balancer.log_text()}")
            time.sleep(0.05)
        for name in servers:
            balancer.wait_for(name, "UP")
        yield balancer
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


def _answers(balancer: Balancer) -> bool:
    try:
        return "pxname" in balancer.command("show stat")
    except OSError:
        return False
