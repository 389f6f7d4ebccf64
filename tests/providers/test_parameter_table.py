"""docs/api.md's "Parameters per engine" table is what the engines declare: each cell says
whether that engine's `honours` has the parameter, and every refused parameter is refused by
its name before the engine is asked."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from chatgate.providers.anthropic import AnthropicProvider
from chatgate.providers.base import ChatTurn, CompletionRequest
from chatgate.providers.dify import DifyProvider
from chatgate.providers.features import (
    PARAMETERS,
    UnsupportedParameter,
    parameters_used,
    require_honoured,
)
from chatgate.providers.local import LocalProvider
from chatgate.providers.messages import AudioPart, ImagePart, TextPart, Tool
from chatgate.providers.openai import OpenAIProvider

API_MD = Path(__file__).parents[2] / "docs" / "api.md"
ENGINES: dict[str, frozenset[str]] = {
    "openai": OpenAIProvider.honours,
    "anthropic": AnthropicProvider.honours,
    "dify": DifyProvider.honours,
    "local": LocalProvider.honours,
}
HEADING = "### Parameters per engine"


def parameter_table() -> dict[str, dict[str, str]]:
    """The table's cells: {parameter: {engine column: "honoured" | "refused"}}."""
    section = API_MD.read_text(encoding="utf-8").split(HEADING, 1)[1].split("\n#", 1)[0]
    rows = [
        [cell.strip() for cell in line.strip().strip("|").split("|")]
        for line in section.splitlines()
        if line.startswith("|")
    ]
    header, rule, *body = rows
    assert all(re.fullmatch(r"-+", cell) for cell in rule), rule
    table: dict[str, dict[str, str]] = {}
    for cells in body:
        name = cells[0].strip("`")
        assert name not in table, f"{name} has two rows"
        table[name] = {engine: cells[header.index(engine)] for engine in ENGINES}
    return table


def asking_for(parameter: str) -> CompletionRequest:
    """A request that sets this one parameter and nothing else of PARAMETERS."""
    user = ChatTurn("user", "What is in this?")
    by_parameter: dict[str, dict[str, Any]] = {
        "tools": {"tools": (Tool("get_weather", parameters={"type": "object"}),)},
        "tool_choice": {"tool_choice": "auto"},
        "parallel_tool_calls": {"parallel_tool_calls": False},
        "image_url": {
            "messages": [
                ChatTurn(
                    "user",
                    user.content,
                    parts=(TextPart(user.content), ImagePart("https://example.com/a.png")),
                )
            ]
        },
        "input_audio": {
            "messages": [
                ChatTurn("user", user.content, parts=(AudioPart(data="UklGRg==", format="wav"),))
            ]
        },
        "response_format.json_object": {"response_format": {"type": "json_object"}},
        "response_format.json_schema": {
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "answer", "schema": {"type": "object"}},
            }
        },
        "stop": {"stop": ("\n",)},
        "seed": {"seed": 7},
        "top_p": {"top_p": 0.9},
        "presence_penalty": {"presence_penalty": 0.5},
        "frequency_penalty": {"frequency_penalty": 0.5},
        "logprobs": {"logprobs": True},
        "top_logprobs": {"top_logprobs": 2},
        "n": {"n": 2},
    }
    fields = dict(by_parameter[parameter])
    messages = fields.pop("messages", [user])
    return CompletionRequest(model="m", messages=messages, max_tokens=16, **fields)


def test_the_table_has_one_row_per_parameter_in_their_order() -> None:
    assert list(parameter_table()) == list(PARAMETERS)


@pytest.mark.parametrize("engine", ENGINES)
def test_each_cell_is_what_the_engine_honours(engine: str) -> None:
    table = parameter_table()
    documented = {name for name in PARAMETERS if table[name][engine] == "honoured"}
    assert {table[name][engine] for name in PARAMETERS} <= {"honoured", "refused"}
    assert documented == ENGINES[engine]


@pytest.mark.parametrize("parameter", PARAMETERS)
def test_a_request_sets_only_the_parameter_it_asks_for(parameter: str) -> None:
    assert parameters_used(asking_for(parameter)) == [parameter]


@pytest.mark.parametrize("engine", ENGINES)
def test_a_refused_parameter_is_refused_by_name_and_an_honoured_one_passes(engine: str) -> None:
    honours = ENGINES[engine]
    for parameter in PARAMETERS:
        request = asking_for(parameter)
        if parameter in honours:
            require_honoured(request, engine=engine, honours=honours)
            continue
        with pytest.raises(UnsupportedParameter) as refused:
            require_honoured(request, engine=engine, honours=honours)
        assert refused.value.param == parameter
        assert refused.value.status == 400 and refused.value.code == "unsupported_parameter"
        assert repr(parameter) in str(refused.value)
