"""deploy/compose.yaml: interpolated as compose does it, parsed by a Compose Specification parser
(the PyPI package compose-spec: the Rust compose_spec crate, which refuses unknown keys and bad
values), and checked for what chatgate needs: secrets without defaults, migrations first, each
dependency healthy, Prometheus and Grafana pointed at the right services. Nothing is started
(no container engine here)."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from chatgate.vault.keyring import load_keyring
from tests.deploy.conftest import ALERTS, DASHBOARD, DEPLOY, run_tool
from tests.deploy.manifests import (
    MissingVariable,
    compose_file,
    compose_secrets,
    dev_package,
    interpolate,
    relative,
    settings_from,
)

SERVICES = {"migrate", "api", "worker", "postgres", "redis", "prometheus", "grafana"}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data: dict[str, Any] = interpolate(compose_file(), compose_secrets())
    return data


def parsed(data: dict[str, Any]) -> Any:
    spec = dev_package("compose_spec", "compose-spec")
    project = spec.PyCompose.from_json(json.dumps(data))
    project.validate()
    project.to_spec()
    return project


def test_it_follows_the_compose_specification(compose: dict[str, Any]) -> None:
    assert set(parsed(compose).service_names()) == SERVICES
    # The parser is strict: a misspelt key or an unknown condition is refused.
    misspelt = json.loads(json.dumps(compose))
    misspelt["services"]["api"]["healthcheck"]["intervall"] = "5s"
    with pytest.raises(ValueError, match="intervall"):
        parsed(misspelt)
    unknown = json.loads(json.dumps(compose))
    unknown["services"]["api"]["depends_on"]["migrate"]["condition"] = "service_done"
    with pytest.raises(ValueError, match="service_done"):
        parsed(unknown)


def test_it_refuses_to_start_without_each_secret() -> None:
    raw = compose_file()
    for missing in compose_secrets():
        env = {k: v for k, v in compose_secrets().items() if k != missing}
        with pytest.raises(MissingVariable, match=missing):
            interpolate(raw, env)
        with pytest.raises(MissingVariable, match=missing):
            interpolate(raw, {**env, missing: ""})  # an empty value is no secret either
    # No literal secret anywhere: every such variable comes from a required `${NAME:?...}`.
    for name, service in raw["services"].items():
        for key, value in (service.get("environment") or {}).items():
            if any(word in key for word in ("SECRET", "PASSWORD", "KEYS", "DATABASE_URL")):
                assert ":?" in str(value), f"{name}: {key} has a default or a literal value"


def test_migrations_run_once_before_the_api_and_the_worker(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert services["migrate"]["command"] == ["migrate"]
    assert services["migrate"]["restart"] == "no"
    for name in ("api", "worker"):
        depends = services[name]["depends_on"]
        assert depends["migrate"] == {"condition": "service_completed_successfully"}
        assert depends["postgres"] == {"condition": "service_healthy"}
        assert depends["redis"] == {"condition": "service_healthy"}
    assert services["worker"]["command"] == ["worker"]
    command = services["api"]["command"]
    assert command[0] == "serve" and command[command.index("--host") + 1] == "0.0.0.0"
    assert command[command.index("--workers") + 1] == "2"


def test_every_dependency_is_a_service_with_a_health_check(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name, service in services.items():
        for needed, how in service.get("depends_on", {}).items():
            assert needed in services, f"{name} depends on unknown service {needed}"
            if how["condition"] == "service_healthy":
                check = services[needed].get("healthcheck", {})
                assert check.get("test") and not check.get("disable"), needed
    probe = services["api"]["healthcheck"]["test"]
    assert probe[0] == "CMD" and "/ready" in probe[-1]
    # Longer than chatgate's drain grace (CHATGATE_DRAIN_GRACE_SECONDS).
    drain = int(services["api"]["environment"]["CHATGATE_DRAIN_GRACE_SECONDS"])
    for name in ("api", "worker"):
        assert int(services[name]["stop_grace_period"].removesuffix("s")) > drain


def test_volumes_and_mounted_files_exist(compose: dict[str, Any]) -> None:
    named = set(compose["volumes"])
    for name, service in compose["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert relative(source).exists(), f"{name} mounts missing {source}"
            else:
                assert source in named, f"{name} mounts undeclared volume {source}"


def test_the_environment_is_valid_chatgate_settings(
    compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    env = compose["services"]["api"]["environment"]
    for name in ("migrate", "worker"):
        assert compose["services"][name]["environment"] == env
    settings = settings_from(env, monkeypatch)
    assert settings.auth_mode == "jwt"
    assert load_keyring(settings) is not None  # PostgreSQL refuses to start without keys
    assert urlsplit(settings.database_url).hostname in compose["services"]
    assert urlsplit(settings.redis_url or "").hostname in compose["services"]
    assert env["CHATGATE_DATABASE_URL"].split(":")[2].split("@")[0] == "pg-password"
    postgres = compose["services"]["postgres"]["environment"]
    assert postgres["POSTGRES_PASSWORD"] == "pg-password"


def mount_of(service: dict[str, Any], target: str) -> str:
    [source] = [v.split(":")[0] for v in service["volumes"] if v.split(":")[1] == target]
    return source


def test_prometheus_scrapes_every_api_container(compose: dict[str, Any], promtool: str) -> None:
    prometheus = compose["services"]["prometheus"]
    config_path = relative(mount_of(prometheus, "/etc/prometheus/prometheus.yml"))
    config = yaml.safe_load(config_path.read_text())
    [job] = config["scrape_configs"]
    assert job["job_name"] == "chatgate"  # ChatgateDown in alerts.yml names the job
    [discovery] = job["dns_sd_configs"]
    assert discovery["names"] == ["api"] and discovery["port"] == 8000
    assert "127.0.0.1:${CHATGATE_PORT:-8000}:8000" in compose_file()["services"]["api"]["ports"]
    # Its rule file is mounted beside it, where the config names it.
    [rules] = config["rule_files"]
    assert relative(mount_of(prometheus, f"/etc/prometheus/{rules}")) == ALERTS.resolve()
    checked = run_tool(promtool, "check", "config", str(config_path))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 1 rule files found" in checked.stdout + checked.stderr


def test_grafana_provisions_the_dashboard_on_this_prometheus(compose: dict[str, Any]) -> None:
    grafana = compose["services"]["grafana"]
    provisioning = relative(mount_of(grafana, "/etc/grafana/provisioning"))
    assert provisioning == (DEPLOY / "grafana" / "provisioning").resolve()
    [source] = yaml.safe_load((provisioning / "datasources" / "prometheus.yaml").read_text())[
        "datasources"
    ]
    url = urlsplit(source["url"])
    assert source["type"] == "prometheus" and source["isDefault"] is True
    assert url.hostname == "prometheus" and url.port == 9090
    [provider] = yaml.safe_load((provisioning / "dashboards" / "chatgate.yaml").read_text())[
        "providers"
    ]
    folder = provider["options"]["path"]
    assert relative(mount_of(grafana, f"{folder}/chatgate.json")) == DASHBOARD.resolve()
    # The dashboard picks its data source by type, so the provisioned default serves it.
    variables = json.loads(DASHBOARD.read_text())["templating"]["list"]
    assert {"type": "datasource", "query": "prometheus"}.items() <= variables[0].items()
