"""Helpers for the deployment files' tests: the Helm chart rendered by Helm's own Go engine
(the PyPI package helm-python-sdk binds it; no `helm` binary, no cluster), the manifests checked
against Kubernetes's JSON schemas (kubernetes-validate bundles them), compose.yaml interpolated
as compose does it, and the environment either one gives chatgate turned into its Settings.
The packages are dev dependencies (scripts/setup-venv.sh installs them); without one these
tests fail naming it, they never skip."""

from __future__ import annotations

import importlib
import re
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from chatgate.core.config import Settings, load_settings
from chatgate.vault.keyring import new_key_line
from tests.deploy.conftest import DEPLOY

CHART = DEPLOY / "helm" / "chatgate"
COMPOSE = DEPLOY / "compose.yaml"
RELEASE = "demo"
NAMESPACE = "chatgate"
# The oldest Kubernetes the chart claims (Chart.yaml's kubeVersion); the newest schemas too.
OLDEST_KUBE = "1.25.0"

Manifest = dict[str, Any]


def dev_package(module: str, package: str) -> ModuleType:
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        pytest.fail(
            f"{package} is missing ({exc}): it is a dev dependency in pyproject.toml; "
            "run scripts/setup-venv.sh (or .venv/bin/pip install -e '.[dev]')"
        )


def secret_values() -> dict[str, Any]:
    """The chart's required secrets, well-formed (a real key, a long enough JWT secret)."""
    return {
        "secrets": {
            "databaseUrl": "postgresql+asyncpg://chatgate:pw@postgres:5432/chatgate",
            "redisUrl": "redis://redis:6379/0",
            "jwtSecret": "s" * 48,
            "encryptionKeys": new_key_line("k1"),
        }
    }


def merged(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merged(out[key], value)
        else:
            out[key] = value
    return out


def render_chart(values: dict[str, Any] | None = None) -> dict[str, str]:
    """Template path -> rendered text, as `helm template` (an install) renders them."""
    helm = dev_package("helm_python", "helm-python-sdk")
    with helm.Chart.load(str(CHART)) as chart:
        rendered: dict[str, str] = chart.render(
            values or {}, name=RELEASE, namespace=NAMESPACE, is_install=True
        )
    return rendered


def render_error(values: dict[str, Any]) -> str:
    """The message of a render the chart refuses; fails the test if it renders."""
    helm = dev_package("helm_python", "helm-python-sdk")
    try:
        render_chart(values)
    except helm.HelmError as exc:
        return str(exc)
    pytest.fail(f"the chart rendered with {values}")


def manifests(rendered: dict[str, str]) -> list[Manifest]:
    return [
        doc
        for path, text in sorted(rendered.items())
        if path.endswith((".yaml", ".yml"))
        for doc in yaml.safe_load_all(text)
        if doc
    ]


def by_kind(docs: list[Manifest], kind: str) -> dict[str, Manifest]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def one(docs: list[Manifest], kind: str, name: str) -> Manifest:
    found = by_kind(docs, kind)
    assert name in found, f"no {kind} {name}; there are {sorted(found)}"
    return found[name]


def container(deployment: Manifest) -> Manifest:
    [only] = deployment["spec"]["template"]["spec"]["containers"]
    return only


def chatgate_environment(docs: list[Manifest], workload: Manifest) -> dict[str, str]:
    """What the workload's one container gets: its `env` and the Secrets of its `envFrom`."""
    box = container(workload)
    env = {item["name"]: item["value"] for item in box.get("env", [])}
    secrets = by_kind(docs, "Secret")
    for source in box.get("envFrom", []):
        env.update(secrets[source["secretRef"]["name"]]["stringData"])
    return env


def settings_from(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Settings:
    """chatgate's Settings from exactly this environment (the tests' own CHATGATE_* cleared);
    each CHATGATE_* variable must name a setting, else a typo would pass unnoticed."""
    import os

    for name in list(os.environ):
        if name.startswith("CHATGATE_"):
            monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
        if name.startswith("CHATGATE_") and name != "CHATGATE_CONFIG":
            field = name.removeprefix("CHATGATE_").split("__")[0].lower()
            assert field in Settings.model_fields, f"{name} names no chatgate setting"
    return load_settings()


# Compose's interpolation: $$, $NAME, ${NAME}, ${NAME:-default}, ${NAME-default},
# ${NAME:?error}, ${NAME?error} (the colon forms treat an empty value as unset).
_VARIABLE = re.compile(
    r"\$(?:(?P<escaped>\$)|\{(?P<braced>[A-Za-z_]\w*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}"
    r"|(?P<bare>[A-Za-z_]\w*))"
)


class MissingVariable(KeyError):
    pass


def interpolate(value: Any, env: dict[str, str]) -> Any:
    if isinstance(value, dict):
        return {key: interpolate(item, env) for key, item in value.items()}
    if isinstance(value, list):
        return [interpolate(item, env) for item in value]
    if not isinstance(value, str):
        return value

    def one(match: re.Match[str]) -> str:
        if match["escaped"]:
            return "$"
        name = match["braced"] or match["bare"]
        op, arg, found = match["op"] or "", match["arg"] or "", env.get(name)
        unset = not found if op.startswith(":") else found is None
        if op.endswith("?") and unset:
            raise MissingVariable(f"{name}: {arg}")
        if op.endswith("-") and unset:
            return arg
        return found or ""

    return _VARIABLE.sub(one, value)


def compose_file() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())  # resolves the `<<` merges
    return data


def compose_secrets() -> dict[str, str]:
    return {
        "POSTGRES_PASSWORD": "pg-password",
        "CHATGATE_JWT_SECRET": "j" * 48,
        "CHATGATE_ENCRYPTION_KEYS": new_key_line("k1"),
        "GRAFANA_ADMIN_PASSWORD": "grafana-password",
    }


def relative(path: str) -> Path:
    """A compose bind mount's host path (relative to deploy/)."""
    return (DEPLOY / path).resolve()
