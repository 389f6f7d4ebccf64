#!/usr/bin/env bash
# Installs Debian's Chromium for the browser tests when it is missing. Playwright drives this
# system browser (executable_path); it never downloads one of its own.
set -euo pipefail
CHROMIUM=${CHATGATE_CHROMIUM:-/usr/bin/chromium}

if [ -x "$CHROMIUM" ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "Chromium is missing at $CHROMIUM and installing it needs root:" >&2
  echo "  sudo apt-get install chromium   (or set CHATGATE_CHROMIUM to a Chromium binary)" >&2
  exit 1
fi
if ! command -v apt-get >/dev/null; then
  echo "Chromium is missing at $CHROMIUM and this is not a Debian-like system with apt-get;" >&2
  echo "install Chromium and set CHATGATE_CHROMIUM to its binary" >&2
  exit 1
fi
echo "installing Chromium from Debian for the browser tests" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get -o DPkg::Lock::Timeout=300 update -qq
apt-get -o DPkg::Lock::Timeout=300 install -y -qq chromium >/dev/null
if [ ! -x "$CHROMIUM" ]; then
  echo "apt-get installed chromium, yet $CHROMIUM is still missing" >&2
  exit 1
fi
