"""Several `chatgate serve` replicas and a `chatgate worker` on one PostgreSQL database and one
Redis, behind HAProxy: the deployment of docs/deploy, on one machine.

Each replica is a process of its own (a session of its own, so a test may kill it outright with
SIGKILL or drain it with SIGTERM) started from the installed script with its settings in the
environment and a YAML file; its log lines go to a file. The database is a scratch one of the
topology's own, Redis a private redis-server (the survivors of a killed replica look for the
answers it left in Redis: no other suite's processes may be in it).
"""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import yaml

from tests.doubles.server import free_port
from tests.replicas.haproxy import Balancer, run_haproxy

CHATGATE = str(Path(sys.executable).with_name("chatgate"))
PG_ADMIN_URL = os.environ.get("CHATGATE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
START_WITHIN = 90.0


@dataclass
class Replica:
    """One `chatgate serve` on its own port; `process` is replaced when it is started again."""

    name: str
    port: int
    command: list[str]
    env: dict[str, str]
    log: Path
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0
    terminated: bool = False  # SIGTERM sent to this process (a second one would force it out)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self) -> None:
        self.starts += 1
        self.terminated = False
        with self.log.open("ab") as out:
            out.write(f"--- start {self.starts} ---\n".encode())
            out.flush()
            self.process = subprocess.Popen(
                self.command, env=self.env, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip

    def wait_ready(self, deadline: float) -> None:
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited with {self.process.returncode}:\n{self.tail()}"
                )
            try:
                if httpx.get(f"{self.url}/ready", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"{self.name} was not ready in time:\n{self.tail()}")

    def kill(self) -> None:
        """SIGKILL: no shutdown, nothing saved on the way out."""
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(10)

    def terminate(self) -> None:
        """SIGTERM, as a supervisor (systemd, Kubernetes) drains a process; returns at once."""
        assert self.process is not None
        if not self.terminated:
            self.terminated = True
            self.process.send_signal(signal.SIGTERM)

    def stop(self) -> None:
        if not self.running:
            return
        assert self.process is not None
        self.terminate()
        try:
            self.process.wait(40)
        except subprocess.TimeoutExpired:
            self.kill()

    def tail(self, lines: int = 40) -> str:
        text = self.log.read_text(encoding="utf-8", errors="replace")
        return "\n".join(text.splitlines()[-lines:])


@dataclass
class PrivateRedis:
    port: int
    process: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def pause(self) -> None:
        """SIGSTOP: it holds every connection and answers nothing, like a stalled host."""
        os.kill(self.process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        os.kill(self.process.pid, signal.SIGCONT)


@dataclass
class Topology:
    folder: Path
    database_url: str
    redis: PrivateRedis
    replicas: list[Replica]
    worker: Replica  # the same life cycle; it serves no port (`port` unused)
    balancer: Balancer
    config: dict[str, Any] = field(default_factory=dict)

    @property
    def url(self) -> str:
        """The balancer: where clients go."""
        return self.balancer.url

    def replica(self, name: str) -> Replica:
        return next(r for r in self.replicas if r.name == name)

    def restart(self, replica: Replica) -> None:
        """Starts a stopped or killed replica again on its port, and waits until the balancer
        sends it requests once more."""
        replica.stop()
        replica.start()
        replica.wait_ready(time.monotonic() + START_WITHIN)
        self.balancer.wait_for(replica.name, "UP")

    def ensure_all_up(self) -> None:
        """Every replica running, and UP at the balancer."""
        for replica in self.replicas:
            if not replica.running:
                self.restart(replica)
            else:
                self.balancer.wait_for(replica.name, "UP")


@contextmanager
def private_redis() -> Iterator[PrivateRedis]:
    port = free_port()
    process = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        for _ in range(200):
            ping = subprocess.run(["redis-cli", "-p", str(port), "ping"], capture_output=True)
            if ping.stdout.strip() == b"PONG":
                break
            time.sleep(0.05)
        else:
            raise RuntimeError("the private redis-server did not start")
        yield PrivateRedis(port, process)
    finally:
        process.send_signal(signal.SIGCONT)  # a paused one acts on SIGTERM once it runs again
        process.terminate()
        process.wait(10)


@contextmanager
def scratch_database(prefix: str = "chatgate_replicas") -> Iterator[str]:
    """A PostgreSQL database of its own (an async SQLAlchemy URL), dropped afterwards."""
    name = f"{prefix}_{secrets.token_hex(4)}"
    try:
        asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
    except OSError as exc:
        raise RuntimeError(f"PostgreSQL is not reachable at {PG_ADMIN_URL}: {exc}") from exc
    base = PG_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
    try:
        yield f"{base}/{name}"
    finally:
        asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def _admin(statement: str) -> None:
    conn = await asyncpg.connect(PG_ADMIN_URL)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


def chatgate_environment(
    *, database_url: str, redis_url: str, config: Path, jwt_secret: str, jwt_audience: str,
    encryption_keys: str, extra: dict[str, str] | None = None,
) -> dict[str, str]:  # fmt: skip
    """This process's environment without its CHATGATE_ settings, and the topology's."""
    env = {
        k: v for k, v in os.environ.items()
        if not k.startswith("CHATGATE_") and k != "PROMETHEUS_MULTIPROC_DIR"
    }  # fmt: skip
    env.update({
        "CHATGATE_CONFIG": str(config),
        "CHATGATE_DATABASE_URL": database_url,
        "CHATGATE_REDIS_URL": redis_url,
        "CHATGATE_AUTH_MODE": "jwt",
        "CHATGATE_JWT_SECRET": jwt_secret,
        "CHATGATE_JWT_AUDIENCE": jwt_audience,
        "CHATGATE_ENCRYPTION_KEYS": encryption_keys,
        "CHATGATE_STREAM_FLUSH_SECONDS": "0.2",
        # The balancer's X-Forwarded-For names the client (rate limits per address).
        "CHATGATE_ACCESS__TRUSTED_PROXIES": '["127.0.0.0/8"]',
        "CHATGATE_LOG_LEVEL": "WARNING",
        "DOUBLE_API_KEY": "sk-double",
        **(extra or {}),
    })  # fmt: skip
    return env


@contextmanager
def run_topology(
    folder: Path,
    config: dict[str, Any],
    *,
    replicas: int = 3,
    jwt_secret: str,
    jwt_audience: str,
    encryption_keys: str,
    extra_env: dict[str, str] | None = None,
    inter_ms: int = 500,
) -> Iterator[Topology]:
    """Migrates the scratch database once, then starts the replicas and the worker side by side
    and HAProxy in front once they are ready; stops everything (SIGTERM) when the block ends."""
    folder.mkdir(parents=True, exist_ok=True)
    config_file = folder / "chatgate.yaml"
    config_file.write_text(yaml.safe_dump(config), encoding="utf-8")
    with ExitStack() as stack:
        database_url = stack.enter_context(scratch_database())
        redis = stack.enter_context(private_redis())
        env = chatgate_environment(
            database_url=database_url, redis_url=redis.url, config=config_file,
            jwt_secret=jwt_secret, jwt_audience=jwt_audience,
            encryption_keys=encryption_keys, extra=extra_env,
        )  # fmt: skip
        migrate = subprocess.run([CHATGATE, "migrate"], env=env, capture_output=True, text=True)
        if migrate.returncode != 0:
            raise RuntimeError(f"chatgate migrate failed:\n{migrate.stdout}{migrate.stderr}")
        processes = [serve_process(f"r{i}", env, folder) for i in range(1, replicas + 1)]
        # INFO: its "worker ready" line says when it takes jobs.
        worker = Replica(
            name="worker", port=0, command=[CHATGATE, "worker"],
            env={**env, "CHATGATE_LOG_LEVEL": "INFO"}, log=folder / "worker.log",
        )  # fmt: skip
        stack.callback(stop_all, [*processes, worker])
        for process in (*processes, worker):
            process.start()
        deadline = time.monotonic() + START_WITHIN
        for replica in processes:
            replica.wait_ready(deadline)
        _wait_worker(worker, deadline)
        balancer = stack.enter_context(
            run_haproxy(
                folder, port=free_port(), servers={r.name: r.port for r in processes},
                inter_ms=inter_ms,
            )
        )  # fmt: skip
        yield Topology(
            folder=folder, database_url=database_url, redis=redis,
            replicas=processes, worker=worker, balancer=balancer, config=config,
        )  # fmt: skip


def serve_process(name: str, env: dict[str, str], folder: Path) -> Replica:
    port = free_port()
    command = [CHATGATE, "serve", "--host", "127.0.0.1", "--port", str(port)]
    return Replica(name=name, port=port, command=command, env=env, log=folder / f"{name}.log")


def stop_all(processes: list[Replica]) -> None:
    """SIGTERM to every one at once, then waits for each (SIGKILL after 40 s)."""
    for process in processes:
        if process.running:
            process.terminate()
    for process in processes:
        process.stop()


def _wait_worker(worker: Replica, deadline: float) -> None:
    while time.monotonic() < deadline:
        assert worker.process is not None
        if worker.process.poll() is not None:
            raise RuntimeError(f"chatgate worker exited:\n{worker.tail()}")
        if b"worker ready" in worker.log.read_bytes():
            return
        time.sleep(0.2)
    raise RuntimeError(f"chatgate worker was not ready in time:\n{worker.tail()}")


def deployment_config(
    engine_url: str, fragile_url: str, *, requests_per_minute: int
) -> dict[str, Any]:
    """The replicas' YAML: `echo` on a dependable engine (slow on request), `fragile` on one
    with a circuit breaker (3 failures in a row open it for a minute), the answer cache on,
    rate limits per user tight enough to reach in a test; guards off (other suites' subject)."""
    no_guards = {"pii": "off", "injection": "off"}

    def assistant(assistant_id: str, provider: str) -> dict[str, Any]:
        return {
            "id": assistant_id, "name": assistant_id, "provider": provider,
            "model": "double-model", "system_prompt": "Echo the user.",
            "max_context_tokens": 8000, "max_answer_tokens": 2000, "guards": no_guards,
        }  # fmt: skip

    def provider(provider_id: str, url: str, breaker: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": provider_id, "type": "openai", "base_url": f"{url}/v1",
            "api_key_env": "DOUBLE_API_KEY", "retries": {"attempts": 0}, "breaker": breaker,
            "timeouts": {"connect": 2, "first_token": 5, "between_tokens": 5, "total": 120},
        }  # fmt: skip

    return {
        "rate_limits": {
            "requests_per_minute": requests_per_minute,
            "ip_requests_per_minute": 1_000_000,
            "tokens_per_minute": 10_000_000,
        },
        "cache": {"enabled": True, "ttl_seconds": 600},
        "providers": [
            provider("engine", engine_url, {"enabled": False}),
            provider("fragile", fragile_url, {"enabled": True, "failures": 3, "open_seconds": 60}),
        ],
        "assistants": [assistant("echo", "engine"), assistant("fragile", "fragile")],
    }
