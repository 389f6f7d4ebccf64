"""deploy/helm/chatgate: rendered by Helm's engine and checked against Kubernetes's schemas, with
what chatgate needs of it (probes, drain, migrations, secrets, streaming through the Ingress),
its values' toggles, and the refusals of a release that would not work. Nothing is installed:
there is no cluster here."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from chatgate.vault.keyring import load_keyring
from tests.deploy.manifests import (
    CHART,
    OLDEST_KUBE,
    RELEASE,
    by_kind,
    chatgate_environment,
    container,
    dev_package,
    manifests,
    merged,
    one,
    render_chart,
    render_error,
    secret_values,
    settings_from,
)

FULLNAME = f"{RELEASE}-chatgate"
API, WORKER, MIGRATE = f"{FULLNAME}-api", f"{FULLNAME}-worker", f"{FULLNAME}-migrate"


def render(extra: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    return manifests(render_chart(merged(secret_values(), extra or {})))


@pytest.fixture(scope="module")
def default_docs() -> list[dict[str, Any]]:
    return render()


def test_helm_lints_the_chart_clean() -> None:
    helm = dev_package("helm_python", "helm-python-sdk")
    report = helm.lint(str(CHART), secret_values(), strict=True)
    assert report["errors"] == [], report
    # Severity 1 is INFO (a chart icon is recommended); warnings and errors are 2 and above.
    assert [m for m in report["messages"] if m["severity"] > 1] == [], report


def test_every_manifest_passes_the_kubernetes_schemas(default_docs: list[dict[str, Any]]) -> None:
    validator = dev_package("kubernetes_validate", "kubernetes-validate")
    every_toggle = render(
        {"ingress": {"tls": [{"secretName": "tls", "hosts": ["chat.example.com"]}]},
         "autoscaling": {"enabled": False}, "secrets": {"providerApiKeys": {"OPENAI_API_KEY": "k"}},
         "config": {"providers": [{"id": "local", "type": "local"}]}}
    )  # fmt: skip
    kinds = {d["kind"] for d in default_docs}
    assert kinds == {
        "ConfigMap", "Deployment", "HorizontalPodAutoscaler", "Ingress", "Job",
        "PodDisruptionBudget", "Secret", "Service",
    }  # fmt: skip
    for version in (OLDEST_KUBE, validator.latest_version()):
        for doc in default_docs + every_toggle:
            try:
                validator.validate(doc, version, strict=True)
            except validator.ValidationError as exc:
                pytest.fail(f"{doc['kind']} {doc['metadata']['name']} on {version}: {exc}")


def test_the_schemas_refuse_a_misspelt_field(default_docs: list[dict[str, Any]]) -> None:
    """The check above can fail: an unknown field in a probe is refused."""
    validator = dev_package("kubernetes_validate", "kubernetes-validate")
    api = copy.deepcopy(one(default_docs, "Deployment", API))
    probe = container(api)["readinessProbe"]
    probe["httpGet"]["pathh"] = probe["httpGet"].pop("path")
    with pytest.raises(validator.ValidationError, match="pathh"):
        validator.validate(api, OLDEST_KUBE, strict=True)


def test_the_api_serves_with_probes_on_health_and_ready(
    default_docs: list[dict[str, Any]],
) -> None:
    api = one(default_docs, "Deployment", API)
    box = container(api)
    assert box["args"][0] == "serve" and "--host=0.0.0.0" in box["args"]
    assert "--workers=2" in box["args"]
    [port] = box["ports"]
    assert (port["name"], port["containerPort"]) == ("http", 8000)
    assert box["readinessProbe"]["httpGet"] == {"path": "/ready", "port": "http"}
    assert box["livenessProbe"]["httpGet"] == {"path": "/health", "port": "http"}
    assert box["startupProbe"]["httpGet"]["path"] == "/health"
    service = one(default_docs, "Service", FULLNAME)
    assert service["spec"]["selector"] == api["spec"]["selector"]["matchLabels"]
    assert service["spec"]["ports"][0]["targetPort"] == "http"
    annotations = api["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/path"] == "/metrics"


def test_the_worker_runs_chatgate_worker_with_the_same_settings(
    default_docs: list[dict[str, Any]],
) -> None:
    worker = one(default_docs, "Deployment", WORKER)
    assert container(worker)["args"] == ["worker"]
    api = one(default_docs, "Deployment", API)
    assert chatgate_environment(default_docs, worker) == chatgate_environment(default_docs, api)
    assert worker["spec"]["selector"] != api["spec"]["selector"]  # the Service reaches the API only


def test_pods_drain_longer_than_chatgate_s_grace(default_docs: list[dict[str, Any]]) -> None:
    for name in (API, WORKER):
        deployment = one(default_docs, "Deployment", name)
        env = chatgate_environment(default_docs, deployment)
        assert env["CHATGATE_DRAIN_GRACE_SECONDS"] == "25"
        assert env["CHATGATE_KEEP_ALIVE_SECONDS"] == "75"
        grace = deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
        assert grace > 25
    api = container(one(default_docs, "Deployment", API))
    assert api["lifecycle"]["preStop"]["exec"]["command"] == ["sleep", "5"]
    error = render_error(merged(secret_values(), {"drainGraceSeconds": 60}))
    assert "terminationGracePeriodSeconds (45) must exceed" in error


def test_the_ingress_streams_unbuffered(default_docs: list[dict[str, Any]]) -> None:
    ingress = one(default_docs, "Ingress", FULLNAME)
    annotations = ingress["metadata"]["annotations"]
    assert annotations["nginx.ingress.kubernetes.io/proxy-buffering"] == "off"
    for timeout in ("proxy-read-timeout", "proxy-send-timeout"):
        assert int(annotations[f"nginx.ingress.kubernetes.io/{timeout}"]) >= 3600
    [rule] = ingress["spec"]["rules"]
    backend = rule["http"]["paths"][0]["backend"]["service"]
    assert backend == {"name": FULLNAME, "port": {"name": "http"}}


def test_migrations_run_once_in_a_hook_job_before_the_pods(
    default_docs: list[dict[str, Any]],
) -> None:
    job = one(default_docs, "Job", MIGRATE)
    annotations = job["metadata"]["annotations"]
    assert annotations["helm.sh/hook"] == "pre-install,pre-upgrade"
    assert container(job)["args"] == ["migrate"]
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"
    # The Job reads the Secret, so the Secret is an earlier hook of the same events.
    secret = one(default_docs, "Secret", FULLNAME)
    assert secret["metadata"]["annotations"]["helm.sh/hook"] == annotations["helm.sh/hook"]
    secret_weight = int(secret["metadata"]["annotations"]["helm.sh/hook-weight"])
    assert secret_weight < int(annotations["helm.sh/hook-weight"])
    assert container(job)["envFrom"] == [{"secretRef": {"name": FULLNAME}}]


def test_containers_run_as_non_root_on_a_read_only_root(
    default_docs: list[dict[str, Any]],
) -> None:
    for kind, name in (("Deployment", API), ("Deployment", WORKER), ("Job", MIGRATE)):
        pod = one(default_docs, kind, name)["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] != 0
        assert pod["automountServiceAccountToken"] is False
        box = pod["containers"][0]
        assert box["securityContext"]["readOnlyRootFilesystem"] is True
        assert box["securityContext"]["allowPrivilegeEscalation"] is False
        assert box["securityContext"]["capabilities"]["drop"] == ["ALL"]
        assert box["resources"]["requests"] and box["resources"]["limits"]
        # /tmp is writable: several workers' metrics files (PROMETHEUS_MULTIPROC_DIR), uploads.
        [tmp] = [m for m in box["volumeMounts"] if m["mountPath"] == "/tmp"]
        [volume] = [v for v in pod["volumes"] if v["name"] == tmp["name"]]
        assert "emptyDir" in volume


def test_the_rendered_environment_is_valid_chatgate_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = {
        "providers": [{"id": "upstream", "type": "openai", "base_url": "http://u/v1",
                       "api_key_env": "UPSTREAM_API_KEY"}],
        "assistants": [{"id": "support", "name": "Support", "provider": "upstream",
                        "model": "gpt-4o-mini"}],
    }  # fmt: skip
    docs = render({"config": config, "secrets": {"providerApiKeys": {"UPSTREAM_API_KEY": "k"}}})
    api = one(docs, "Deployment", API)
    env = chatgate_environment(docs, api)
    mount = next(m for m in container(api)["volumeMounts"] if m["name"] == "config")
    assert env["CHATGATE_CONFIG"] == f"{mount['mountPath']}/chatgate.yaml"
    config_map = one(docs, "ConfigMap", FULLNAME)
    assert yaml.safe_load(config_map["data"]["chatgate.yaml"]) == config
    (tmp_path / "chatgate.yaml").write_text(config_map["data"]["chatgate.yaml"])
    env["CHATGATE_CONFIG"] = str(tmp_path / "chatgate.yaml")
    settings = settings_from(env, monkeypatch)
    assert settings.auth_mode == "jwt" and settings.jwt_audience == "chatgate"
    assert settings.database_url.startswith("postgresql+asyncpg://") and settings.redis_url
    assert [a.id for a in settings.assistants] == ["support"]
    assert settings.providers[0].api_key() == "k"
    assert load_keyring(settings) is not None  # PostgreSQL needs keys: they are there


def test_required_secrets_have_no_defaults() -> None:
    error = render_error({})
    assert "secrets.databaseUrl is required" in error
    for missing in ("redisUrl", "encryptionKeys", "jwtSecret"):
        values = secret_values()
        del values["secrets"][missing]
        assert f"secrets.{missing}" in render_error(values)
    jwks = secret_values()
    del jwks["secrets"]["jwtSecret"]
    docs = manifests(render_chart(merged(jwks, {"auth": {"jwksUrl": "https://idp/jwks.json"}})))
    assert "CHATGATE_JWT_SECRET" not in one(docs, "Secret", FULLNAME)["stringData"]
    env = chatgate_environment(docs, one(docs, "Deployment", API))
    assert env["CHATGATE_JWT_JWKS_URL"] == "https://idp/jwks.json"


def test_an_existing_secret_replaces_the_chart_s_own() -> None:
    docs = manifests(render_chart({"secrets": {"existingSecret": "chatgate-prod"}}))
    assert by_kind(docs, "Secret") == {}
    for kind, name in (("Deployment", API), ("Deployment", WORKER), ("Job", MIGRATE)):
        assert container(one(docs, kind, name))["envFrom"] == [
            {"secretRef": {"name": "chatgate-prod"}}
        ]


def test_toggles_leave_out_what_they_turn_off() -> None:
    docs = render(
        {"ingress": {"enabled": False}, "autoscaling": {"enabled": False},
         "podDisruptionBudget": {"enabled": False}, "worker": {"enabled": False},
         "migrations": {"enabled": False}, "api": {"replicas": 3}}
    )  # fmt: skip
    kinds = {d["kind"] for d in docs}
    assert kinds == {"ConfigMap", "Deployment", "Secret", "Service"}
    assert list(by_kind(docs, "Deployment")) == [API]
    assert one(docs, "Deployment", API)["spec"]["replicas"] == 3
    # Without the Job, the Secret is an ordinary release resource, not a hook.
    assert "annotations" not in one(docs, "Secret", FULLNAME)["metadata"]


def test_autoscaling_owns_the_api_s_replicas(default_docs: list[dict[str, Any]]) -> None:
    hpa = one(default_docs, "HorizontalPodAutoscaler", API)
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment",
                                             "name": API}  # fmt: skip
    assert "replicas" not in one(default_docs, "Deployment", API)["spec"]
    pdb = one(default_docs, "PodDisruptionBudget", API)
    assert pdb["apiVersion"] == "policy/v1"
    api_labels = one(default_docs, "Deployment", API)["spec"]["selector"]["matchLabels"]
    assert pdb["spec"]["selector"]["matchLabels"] == api_labels
