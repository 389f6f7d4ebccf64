#!/usr/bin/env bash
# Starts PostgreSQL and Redis when they are installed but down; fails loudly when they can't run.
set -euo pipefail
PG_HOST=${CHATGATE_TEST_PG_HOST:-127.0.0.1}

if ! pg_isready -q -h "$PG_HOST" -p 5432 2>/dev/null; then
  if command -v pg_ctlcluster >/dev/null && [ -d /etc/postgresql ]; then
    echo "starting PostgreSQL" >&2
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
  fi
  for _ in $(seq 30); do pg_isready -q -h "$PG_HOST" -p 5432 && break; sleep 1; done
  pg_isready -q -h "$PG_HOST" -p 5432 || { echo "PostgreSQL is not reachable on $PG_HOST:5432 and could not be started" >&2; exit 1; }
fi

if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  if command -v redis-server >/dev/null; then
    echo "starting Redis" >&2
    mkdir -p /var/lib/redis /var/log/redis
    redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
      --dir /var/lib/redis --logfile /var/log/redis/ci.log
  fi
  for _ in $(seq 20); do redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && break; sleep 0.5; done
  redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 || { echo "Redis is not reachable on 127.0.0.1:6379 and could not be started" >&2; exit 1; }
fi
