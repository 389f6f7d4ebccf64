#!/bin/sh
# Installs what the benchmarks need beyond the project's virtualenv: the `hey` load tool
# (Debian package). Run it yourself, as root; the benchmarks never install anything.
set -e
if command -v hey >/dev/null 2>&1; then
    echo "hey is installed: $(command -v hey)"
    exit 0
fi
apt-get update
apt-get install -y hey
