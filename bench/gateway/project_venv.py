"""The gateway benchmarks run in the project's `.venv`, whichever Python started them, and see
`bench/` (harness.py) on their path."""

from __future__ import annotations

import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
VENV = REPO / ".venv"


def enter(script: str) -> None:
    """Runs `script` again under the project's Python when another one started it."""
    python = VENV / "bin" / "python"
    if Path(sys.prefix).resolve() != VENV.resolve() and python.exists():
        os.execv(str(python), [str(python), script, *sys.argv[1:]])
    sys.path.insert(0, str(HERE.parent))
