"""deploy/prometheus: the scrape config and rules are valid, the rules' own unit tests pass, and a
live chatgate whose engine fails exports what fires ChatgateEngineFailing and ChatgateBreakerOpen
in `promtool test rules`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import yaml
from prometheus_client.parser import text_string_to_metric_families

from chatgate.core.config import AssistantConfig, ProviderConfig
from chatgate.core.engine_config import Timeouts
from chatgate.core.policies import RetryPolicy
from tests.conftest import Double, open_caller, remote_only_settings, serve_chatgate
from tests.deploy.conftest import ALERTS, ALERTS_TEST, PROMETHEUS_CONFIG, run_tool

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def test_the_scrape_config_and_its_rules_are_valid(promtool: str) -> None:
    checked = run_tool(promtool, "check", "config", str(PROMETHEUS_CONFIG))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 1 rule files found" in checked.stdout + checked.stderr
    rules = run_tool(promtool, "check", "rules", str(ALERTS))
    assert rules.returncode == 0, rules.stdout + rules.stderr


def test_the_rules_unit_tests_pass(promtool: str) -> None:
    tested = run_tool(promtool, "test", "rules", str(ALERTS_TEST))
    assert tested.returncode == 0, tested.stdout + tested.stderr
    # Every rule has a test of its own.
    rules = {r["alert"] for g in yaml.safe_load(ALERTS.read_text())["groups"] for r in g["rules"]}
    tests = yaml.safe_load(ALERTS_TEST.read_text())["tests"]
    named = {case["alertname"] for t in tests for case in t.get("alert_rule_test", [])}
    assert named == rules


async def scrape(url: str) -> Samples:
    async with httpx.AsyncClient(base_url=url) as http:
        text = (await http.get("/metrics")).text
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def series_of(
    samples: Samples, name: str, provider: str
) -> dict[frozenset[tuple[str, str]], float]:
    return {
        labels: value
        for (sample_name, labels), value in samples.items()
        if sample_name == name and dict(labels).get("provider") == provider
    }


def grown(before: Samples, name: str, series: dict[frozenset[tuple[str, str]], float]) -> float:
    return sum(value - before.get((name, labels), 0.0) for labels, value in series.items())


def promql_series(name: str, labels: frozenset[tuple[str, str]]) -> str:
    every = {"job": "chatgate", "instance": "gateway:8000", **dict(labels)}
    inner = ", ".join(f'{k}="{v}"' for k, v in sorted(every.items()))
    return f"{name}{{{inner}}}"


async def test_a_failing_engine_fires_its_alerts_in_promtool(
    tmp_path: Path, openai_double: Double, promtool: str
) -> None:
    failing = ProviderConfig(
        id="failing", type="openai", base_url=f"{openai_double.url}/v1",
        api_key_env="DOUBLE_API_KEY", retries=RetryPolicy(attempts=0),
        timeouts=Timeouts(connect=2, first_token=3, total=10),
    )  # fmt: skip
    flaky = AssistantConfig(
        id="flaky", name="Flaky", provider="failing", model="double-flaky",
        max_context_tokens=4000, max_answer_tokens=100,
    )  # fmt: skip
    settings = remote_only_settings(
        f"sqlite+aiosqlite:///{tmp_path}/failing.db", openai_double.url,
        providers=[failing], assistants=[flaky],
    )  # fmt: skip
    async with serve_chatgate(settings) as url, open_caller(url) as caller:
        before = await scrape(url)
        session = await caller.new_session("flaky")
        statuses = []
        for _ in range(8):
            reply = await caller.http.post(
                f"/v1/sessions/{session['id']}/messages", json={"content": "[[status 500]]"}
            )
            statuses.append(reply.status_code)
        after = await scrape(url)
    # Five failures in a row open the breaker; then calls are refused without reaching it.
    assert statuses == [502] * 5 + [503] * 3, statuses
    errors = series_of(after, "chatgate_engine_errors_total", "failing")
    requests = series_of(after, "chatgate_engine_requests_total", "failing")
    [state] = series_of(after, "chatgate_breaker_state", "failing").values()
    # Between the scrapes: this process's registry also holds other tests' engines named so.
    assert grown(before, "chatgate_engine_errors_total", errors) == 5
    assert grown(before, "chatgate_engine_requests_total", requests) == 5
    assert state == 2

    # What the engine did between the scrapes, kept up for 15 minutes, once a minute.
    input_series: list[dict[str, Any]] = []
    for name, series in (
        ("chatgate_engine_errors_total", errors),
        ("chatgate_engine_requests_total", requests),
    ):
        for labels, value in series.items():
            start = before.get((name, labels), 0.0)
            input_series.append(
                {"series": promql_series(name, labels), "values": f"{start}+{value - start}x15"}
            )
    for labels, value in series_of(after, "chatgate_breaker_state", "failing").items():
        input_series.append(
            {"series": promql_series("chatgate_breaker_state", labels), "values": f"{value}x15"}
        )
    expected = {"severity": "page", "job": "chatgate", "provider": "failing"}
    unit_test = {
        "rule_files": [str(ALERTS)],
        "evaluation_interval": "1m",
        "tests": [{
            "interval": "1m",
            "input_series": input_series,
            "alert_rule_test": [
                {"eval_time": "10m", "alertname": "ChatgateEngineFailing", "exp_alerts": [{
                    "exp_labels": expected,
                    "exp_annotations": {
                        "summary": "engine failing fails more than 10% of its calls"
                    },
                }]},
                {"eval_time": "10m", "alertname": "ChatgateBreakerOpen", "exp_alerts": [{
                    "exp_labels": expected,
                    "exp_annotations": {
                        "summary": "the circuit breaker of engine failing is open"
                    },
                }]},
                {"eval_time": "10m", "alertname": "ChatgateSlowFirstToken"},
            ],
        }],
    }  # fmt: skip
    test_file = tmp_path / "failing_engine_test.yml"
    test_file.write_text(yaml.safe_dump(unit_test, sort_keys=False))
    tested = run_tool(promtool, "test", "rules", str(test_file))
    assert tested.returncode == 0, tested.stdout + tested.stderr + test_file.read_text()
