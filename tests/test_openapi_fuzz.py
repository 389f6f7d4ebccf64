"""schemathesis over chatgate's whole OpenAPI, over real HTTP: no generated request gets a 5xx.

A real chatgate is fuzzed as an admin (on SQLite and on PostgreSQL), so every authenticated
route is reached past its auth, and once without a token. Random ids never name a stored row,
so every route with a `{session_id}` is fuzzed a second time on a real session of the caller:
that reaches the code behind the 404 (history, turns, stop). Examples are bounded and
derandomized, so a CI run is repeatable and short.

schemathesis's own pytest plugin does not run under pytest 9 (it writes `Function._nodeid`),
so each operation gets a plain Hypothesis test from `APIOperation.as_strategy`, the API
schemathesis documents for use with `@given`.

The completions lane documents a loose body (any object with `model` and `messages`): fuzzed as
is, no example would get past its parsing. So the document fuzzed here gives the lane the
request model it really parses, with `model` one of the configured assistants, and the fuzz
reaches the engine, streams included.

schemathesis writes only what its schema allows in positive mode, and never a lone surrogate
(it cannot encode one). Clients slip in both ways, and each once gave chatgate a 500: so a share
of the generated requests gets one slip (`_with_slips`): a string in the JSON body with a lone
surrogate (JSON's `\udc80` escape), or a zoned date-time in the query sent without its zone.

The engines are the OpenAI double (remote_only_settings): the bundled model would make the
default assistant's answers on `/v1/qa` take seconds each, far over this test's budget."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup

from chatgate.openai_compat.schemas import ChatCompletionRequest
from tests.conftest import Double, make_token, remote_only_settings
from tests.runner import run_chatgate

EXAMPLES = 25  # per operation and generation mode (and again with a real session id)
TIMEOUT = 10  # seconds for one request; an answer from the engine double takes milliseconds
FUZZ_SETTINGS = settings(
    max_examples=EXAMPLES,
    derandomize=True,  # the same examples on every run: a CI failure can be replayed
    database=None,
    deadline=None,
    phases=[Phase.explicit, Phase.generate, Phase.shrink],
    suppress_health_check=list(HealthCheck),
)


@pytest.fixture(scope="module")
def fuzzed_gateway(database_url: str, openai_double: Double) -> Iterator[str]:
    settings = remote_only_settings(database_url, openai_double.url)
    with run_chatgate(settings) as url:
        yield url


def _new_session(url: str, headers: dict[str, str]) -> dict[str, str]:
    response = requests.post(
        f"{url}/v1/sessions", json={"assistant_id": "echo"}, headers=headers, timeout=TIMEOUT
    )
    assert response.status_code == 201, response.text
    return {"session_id": response.json()["id"]}


def _load_schema(url: str) -> Any:
    document = requests.get(f"{url}/openapi.json", timeout=TIMEOUT).json()
    body = ChatCompletionRequest.model_json_schema(ref_template="#/components/schemas/{model}")
    document["components"]["schemas"].update(body.pop("$defs"))
    body["properties"]["model"] = {"enum": ["echo", "support", "tiny", "nobody"]}
    lane = document["paths"]["/v1/chat/completions"]["post"]["requestBody"]["content"]
    lane["application/json"]["schema"] = body
    return schemathesis.openapi.from_dict(document)


ZONE = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?)(?:Z|[+-]\d\d:\d\d)$", re.I)
LONE_SURROGATE = "\udc80"


def _strings(value: Any, at: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Where the strings are in a JSON value, as paths of keys and indexes."""
    if isinstance(value, str):
        yield at
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _strings(item, (*at, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _strings(item, (*at, index))


@st.composite
def _with_slips(draw: st.DrawFn, cases: st.SearchStrategy[Any]) -> Any:
    case = draw(cases)
    slips: list[tuple[Any, tuple[Any, ...], str]] = []
    # Only into JSON: a multipart form (an upload) is UTF-8, which cannot encode one.
    json_body = "json" in (getattr(case, "media_type", None) or "application/json")
    for at in _strings(case.body) if json_body else ():
        if at:  # a path into a dict or list: a body that is a bare string stays as it is
            slips.append((case.body, at, "surrogate"))
    for at in _strings(case.query or {}):
        # No lone surrogate here: a URL holds UTF-8, which cannot encode one.
        if ZONE.match(_get(case.query, at)):
            slips.append((case.query, at, "naive"))
    if not slips or not draw(st.booleans()):
        return case
    container, at, slip = draw(st.sampled_from(slips))
    value = _get(container, at)
    fixed = ZONE.sub(r"\1", value) if slip == "naive" else value + LONE_SURROGATE
    _get(container, at[:-1])[at[-1]] = fixed
    return case


def _get(value: Any, at: tuple[Any, ...]) -> Any:
    for step in at:
        value = value[step]
    return value


def _run(operation: Any, mode: GenerationMode, send: Any, **fixed: Any) -> str | None:
    """One Hypothesis run over one operation; the failure it found, if any."""

    @FUZZ_SETTINGS
    @given(case=_with_slips(operation.as_strategy(generation_mode=mode, **fixed)))
    def check(case: schemathesis.Case) -> None:
        send(case)

    try:
        check()
    except Unsatisfiable:
        # An operation with no parameters, body or auth has no invalid request to make.
        if mode is GenerationMode.NEGATIVE:
            return None
        return f"{operation.label}: no example could be generated"
    except (Exception, FailureGroup) as exc:  # FailureGroup: a BaseExceptionGroup of checks
        pinned = f", {fixed}" if fixed else ""
        return f"{operation.label} ({mode.value}{pinned}): {exc}"
    return None


def _fuzz(url: str, headers: dict[str, str]) -> list[str]:
    """Every operation in both generation modes; one line for each that got a 5xx."""
    schema = _load_schema(url)
    failures: list[str | None] = []
    with requests.Session() as http:

        def send(case: schemathesis.Case) -> None:
            # `headers` outrank the Authorization that schemathesis makes up from the
            # security scheme, so the admin's token goes where schemathesis sends one.
            case.call_and_validate(
                base_url=url,
                session=http,
                headers=headers,
                checks=[not_a_server_error],
                timeout=TIMEOUT,
            )

        for result in schema.get_all_operations():
            operation = result.ok()
            pinned = headers and "{session_id}" in operation.path
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                failures.append(_run(operation, mode, send))
                if pinned and mode is GenerationMode.POSITIVE:
                    # A fresh session each time: DELETE and stop must not spoil the next.
                    path = _new_session(url, headers)
                    failures.append(_run(operation, mode, send, path_parameters=path))
    return [failure for failure in failures if failure]


def test_no_request_an_admin_can_make_gets_a_server_error(fuzzed_gateway: str) -> None:
    token = make_token(f"fuzz-admin-{uuid.uuid4().hex[:8]}", admin=True, ttl=3600)
    failures = _fuzz(fuzzed_gateway, {"Authorization": f"Bearer {token}"})
    assert not failures, "\n\n".join(failures)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_no_request_without_a_token_gets_a_server_error(fuzzed_gateway: str) -> None:
    # No token of ours: schemathesis sends none, or a made-up bearer token, as it likes.
    failures = _fuzz(fuzzed_gateway, {})
    assert not failures, "\n\n".join(failures)
