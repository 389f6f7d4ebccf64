#!/usr/bin/env bash
# Installs Prometheus's tools for tests/deploy when they are missing: `promtool` (checks and
# unit-tests deploy/prometheus) and the `prometheus` server (scrapes a test chatgate so the
# dashboard's queries can be checked). Both come with Debian's `prometheus` package.
set -euo pipefail

if command -v promtool >/dev/null && command -v prometheus >/dev/null; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "promtool/prometheus are missing and installing them needs root:" >&2
  echo "  sudo apt-get install prometheus" >&2
  exit 1
fi
if ! command -v apt-get >/dev/null; then
  echo "promtool/prometheus are missing and this is not a Debian-like system with apt-get;" >&2
  echo "install Prometheus (promtool and prometheus on PATH)" >&2
  exit 1
fi
echo "installing Prometheus from Debian for the deploy tests" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get -o DPkg::Lock::Timeout=300 update -qq
# No recommends: the exporters it suggests are not needed and would start services.
apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends prometheus >/dev/null
command -v promtool >/dev/null && command -v prometheus >/dev/null || {
  echo "apt-get installed prometheus, yet promtool or prometheus is still missing" >&2
  exit 1
}
