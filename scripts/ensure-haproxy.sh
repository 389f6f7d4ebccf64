#!/usr/bin/env bash
# Installs HAProxy for tests/replicas and bench/replicas.py when it is missing: the load balancer
# in front of several `chatgate serve` processes (health checks on /ready, retries of idempotent
# requests). Debian's `haproxy` package; its own service is never started (the tests run their
# own haproxy with a generated configuration).
set -euo pipefail

if command -v haproxy >/dev/null; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "haproxy is missing and installing it needs root:" >&2
  echo "  sudo apt-get install haproxy" >&2
  exit 1
fi
if ! command -v apt-get >/dev/null; then
  echo "haproxy is missing and this is not a Debian-like system with apt-get;" >&2
  echo "install HAProxy 2.2 or newer (haproxy on PATH)" >&2
  exit 1
fi
echo "installing HAProxy from Debian for the replica tests" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get -o DPkg::Lock::Timeout=300 update -qq
# policy-rc.d 101: the package's own service is not started where a supervisor would start it.
policy=/usr/sbin/policy-rc.d
made_policy=0
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && made_policy=1
fi
status=0
apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends haproxy >/dev/null \
  || status=$?
[ "$made_policy" = 1 ] && rm -f "$policy"
[ "$status" = 0 ] || exit "$status"
command -v haproxy >/dev/null || {
  echo "apt-get installed haproxy, yet haproxy is still not on PATH" >&2
  exit 1
}
