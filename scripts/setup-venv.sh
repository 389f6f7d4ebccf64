# Sourced by the other scripts: makes .venv and installs the project once per pyproject.toml change.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PYTHON_BIN=${PYTHON:-$(command -v python3.11 || command -v python3)}
if [ ! -x .venv/bin/python ]; then
  echo "setting up .venv with $PYTHON_BIN (the first run builds llama-cpp-python: about 4 minutes)" >&2
  "$PYTHON_BIN" -m venv .venv
  .venv/bin/pip install -q --upgrade pip
fi
stamp=".venv/.installed-$(cat pyproject.toml | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  .venv/bin/pip install -q -e ".[dev]"
  rm -f .venv/.installed-*
  touch "$stamp"
fi
