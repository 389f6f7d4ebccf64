#!/usr/bin/env bash
# One-time setup of the gateway benchmark's tools: nginx with its Lua module, wrk, and LiteLLM's
# proxy in an environment of its own (bench/gateway/.venv-litellm, ignored by git).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
if ! command -v nginx >/dev/null || ! command -v wrk >/dev/null \
    || [ ! -e /usr/lib/nginx/modules/ngx_http_lua_module.so ]; then
    apt-get update
    apt-get install -y nginx-light libnginx-mod-http-lua wrk
fi
if [ ! -x "$here/.venv-litellm/bin/litellm" ]; then
    python3.11 -m venv "$here/.venv-litellm"
    "$here/.venv-litellm/bin/pip" install -r "$here/requirements-litellm.txt"
fi
echo "ready: .venv/bin/python bench/gateway/run.py"
