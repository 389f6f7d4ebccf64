"""`chatgate serve`, `migrate`, `worker`, `rotate-keys`, `new-key`, `backup` and `restore`."""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import logging
import math
import os
import sys
import tempfile
from pathlib import Path

from chatgate.backup.archive import BackupError
from chatgate.core.config import ConfigError, Settings, load_settings

log = logging.getLogger("chatgate.cli")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _settings(config: str | None) -> Settings:
    if config:
        os.environ["CHATGATE_CONFIG"] = os.path.abspath(config)
    return load_settings()


def migrate(args: argparse.Namespace) -> None:
    from chatgate.core.migrate import upgrade_database

    settings = _settings(args.config)
    upgrade_database(settings.database_url)
    print("database is up to date")


def serve(args: argparse.Namespace) -> None:
    import uvicorn

    from chatgate.core.logging import configure_logging
    from chatgate.core.migrate import upgrade_database
    from chatgate.core.tls import tls_files

    settings = _settings(args.config)
    tls = tls_files(
        args.ssl_certfile or settings.ssl_certfile, args.ssl_keyfile or settings.ssl_keyfile
    )
    if settings.auth_mode == "none" and not _is_loopback(args.host):
        raise ConfigError(
            f"auth mode 'none' only serves on a loopback address, not {args.host}; "
            "set CHATGATE_AUTH_MODE=jwt (with CHATGATE_JWT_SECRET or CHATGATE_JWT_JWKS_URL) "
            "to serve other hosts"
        )
    configure_logging(settings.log_level)
    if args.workers > 1 and not settings.redis_url:
        logging.getLogger("chatgate").warning(
            "several workers without CHATGATE_REDIS_URL keep running answers per process; "
            "stop reaches only the worker that runs the answer"
        )
    upgrade_database(settings.database_url)
    if args.workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # Each worker writes its metrics here; /metrics in any worker sums them all.
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="chatgate-metrics-")
    uvicorn.run(
        "chatgate.main:create_app",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        loop="uvloop",
        http="httptools",
        access_log=False,
        # chatgate decides which proxies to believe (CHATGATE_ACCESS__TRUSTED_PROXIES).
        proxy_headers=False,
        # Behind a load balancer: the balancer closes idle connections first, and a drain
        # (SIGTERM) ends its answers before uvicorn stops waiting for their connections.
        timeout_keep_alive=math.ceil(settings.keep_alive_seconds),
        timeout_graceful_shutdown=math.ceil(settings.drain_grace_seconds) + 5,
        # With TLS on, every answer carries HSTS (gateway/front.py: the scheme is https).
        ssl_certfile=tls.certfile if tls else None,
        ssl_keyfile=tls.keyfile if tls else None,
        log_config=None,  # chatgate's JSON lines (core/logging.py), uvicorn's included
    )


def worker(args: argparse.Namespace) -> None:
    from chatgate.core.migrate import upgrade_database
    from chatgate.worker import run_worker

    settings = _settings(args.config)
    if not settings.redis_url:
        raise ConfigError("chatgate worker needs CHATGATE_REDIS_URL: the queue lives in Redis")
    upgrade_database(settings.database_url)  # as serve does: the runtime reads the data keys
    run_worker(settings)


def rotate_keys(args: argparse.Namespace) -> None:
    asyncio.run(_rotate_keys(_settings(args.config), args.batch))


async def _rotate_keys(settings: Settings, batch: int) -> None:
    """Re-wraps every user's data key under the newest deployment key and seals what was stored
    in the clear, in batches, while chatgate serves; then older keys may be dropped."""
    from chatgate.chat.service import seal_stored
    from chatgate.core.db import Database
    from chatgate.core.migrate import upgrade_database
    from chatgate.responses.sealing import seal_stored_responses
    from chatgate.vault.keyring import load_keyring
    from chatgate.vault.service import Vault

    ring = load_keyring(settings)
    if ring is None:
        raise ConfigError("rotate-keys needs encryption on (CHATGATE_ENCRYPTION_ENABLED=true)")
    await asyncio.to_thread(upgrade_database, settings.database_url)
    database = Database(settings.database_url)
    try:
        vault = Vault(database, ring)
        await vault.start()
        rewrapped = await vault.rotate(batch)
        sealed = await seal_stored(database, vault, batch=batch)
        sealed += await seal_stored_responses(database, vault, batch=batch)
    finally:
        await database.close()
    print(f"{rewrapped} data keys re-wrapped under {ring.newest!r}; {sealed} rows sealed")


def backup(args: argparse.Namespace) -> None:
    from chatgate.backup.commands import run_backup

    print(run_backup(_settings(args.config).database_url, Path(args.file)))


def restore(args: argparse.Namespace) -> None:
    from chatgate.backup.commands import run_restore

    keys = Path(args.keys) if args.keys else None
    url = _settings(args.config).database_url
    print(run_restore(url, Path(args.file), keys=keys, force=args.force))


def new_key(args: argparse.Namespace) -> None:
    from chatgate.vault.keyring import new_key_line

    print(new_key_line(args.key_id))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="chatgate", description="A self-hosted AI chat gateway.")
    commands = parser.add_subparsers(dest="command", required=True)
    serve_cmd = commands.add_parser("serve", help="run migrations if needed and serve the API")
    serve_cmd.add_argument("--host", default="127.0.0.1")
    serve_cmd.add_argument("--port", type=int, default=8000)
    serve_cmd.add_argument("--workers", type=int, default=1)
    serve_cmd.add_argument("--config", help="YAML file of providers and assistants")
    serve_cmd.add_argument("--ssl-certfile", help="serve HTTPS with this PEM certificate (chain)")
    serve_cmd.add_argument("--ssl-keyfile", help="the PEM private key of --ssl-certfile")
    serve_cmd.set_defaults(run=serve)
    migrate_cmd = commands.add_parser("migrate", help="apply database migrations")
    migrate_cmd.add_argument("--config", help="YAML file of providers and assistants")
    migrate_cmd.set_defaults(run=migrate)
    worker_cmd = commands.add_parser("worker", help="write queued answers from Redis")
    worker_cmd.add_argument("--config", help="YAML file of providers and assistants")
    worker_cmd.set_defaults(run=worker)
    rotate_cmd = commands.add_parser(
        "rotate-keys", help="re-wrap data keys under the newest encryption key, seal clear rows"
    )
    rotate_cmd.add_argument("--config", help="YAML file of providers and assistants")
    rotate_cmd.add_argument("--batch", type=int, default=500, help="rows per transaction")
    rotate_cmd.set_defaults(run=rotate_keys)
    backup_cmd = commands.add_parser(
        "backup", help="write a consistent, checksummed archive of the database while it serves"
    )
    backup_cmd.add_argument("file", help="the archive; the data keys go to FILE.keys beside it")
    backup_cmd.add_argument("--config", help="YAML file of providers and assistants")
    backup_cmd.set_defaults(run=backup)
    restore_cmd = commands.add_parser(
        "restore", help="load an archive into the database (SQLite or PostgreSQL, either way)"
    )
    restore_cmd.add_argument("file", help="an archive written by chatgate backup")
    restore_cmd.add_argument("--keys", help="the data keys file (default: FILE.keys)")
    restore_cmd.add_argument(
        "--force", action="store_true", help="replace whatever the database holds"
    )
    restore_cmd.add_argument("--config", help="YAML file of providers and assistants")
    restore_cmd.set_defaults(run=restore)
    key_cmd = commands.add_parser("new-key", help="print a new key_id:base64 encryption key")
    key_cmd.add_argument("--key-id", default="k1")
    key_cmd.set_defaults(run=new_key)
    args = parser.parse_args(argv)
    try:
        args.run(args)
    except ConfigError as exc:
        print(f"chatgate: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    except BackupError as exc:
        print(f"chatgate: {exc.message} ({exc.code})", file=sys.stderr)
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
