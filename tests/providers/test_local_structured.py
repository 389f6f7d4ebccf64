"""The bundled engine honours what its `honours` claims: structured output through llama.cpp's
grammar, stop sequences and the seed, on the real SmolLM2-135M model (small answers, ~100
tokens a second on two cores)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict

from chatgate.core.config import ProviderConfig
from chatgate.providers.base import ChatTurn, CompletionRequest
from chatgate.providers.features import UnsupportedParameter
from chatgate.providers.grammar import MAX_REPEAT, json_grammar, parses
from chatgate.providers.local import LocalProvider


class Person(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    age: int


PERSON_FORMAT = {
    "type": "json_schema",
    "json_schema": {"name": "person", "strict": True, "schema": Person.model_json_schema()},
}


@pytest.fixture(scope="module")
async def local() -> AsyncIterator[LocalProvider]:
    provider = LocalProvider(ProviderConfig(id="local", type="local"))
    await provider.start()
    try:
        yield provider
    finally:
        await provider.close()


async def answer(provider: LocalProvider, prompt: str, **asked: Any) -> tuple[str, str | None]:
    """The whole text of an answer and its finish reason."""
    asked.setdefault("max_tokens", 40)
    request = CompletionRequest(
        model="smollm2-135m-instruct", messages=[ChatTurn("user", prompt)], **asked
    )
    text, finish = "", None
    async for chunk in provider.stream(request):
        text += chunk.text
        finish = chunk.finish_reason or finish
    return text, finish


@pytest.mark.parametrize(
    "prompt",
    [
        "Alice is 30 years old. Give her as JSON.",
        "Describe a person.",
        "Write a poem about the sea.",  # nothing to do with a person: the grammar still holds
    ],
)
async def test_a_json_schema_answer_is_an_instance_of_the_schema(
    local: LocalProvider, prompt: str
) -> None:
    text, finish = await answer(local, prompt, response_format=PERSON_FORMAT, temperature=1.0)
    assert finish == "stop", text
    person = Person.model_validate_json(text)
    assert person.name.strip()


async def test_a_json_object_answer_is_a_json_object(local: LocalProvider) -> None:
    text, finish = await answer(
        local,
        'What is the capital of France? Answer in JSON, as {"capital": "..."}.',
        response_format={"type": "json_object"},
        temperature=0.0,
        max_tokens=48,
    )
    assert finish == "stop", text
    assert isinstance(json.loads(text), dict)


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "date"},  # the converter does not know it
        {"$ref": "https://example.com/person.json"},  # never fetched
        # Each would kill the process if sampled: llama.cpp refuses the grammar (and sampling
        # then dereferences nothing), or its parser overflows its stack, or the converter writes
        # megabytes of grammar.
        {"type": "string", "maxLength": MAX_REPEAT + 1},
        {"type": "string", "maxLength": 10**9},
        {"type": "array", "items": {"type": "integer"}, "minItems": 10**6},
        {"type": "string", "pattern": "^a{2000}$"},
        {"type": "object", "properties": {"a": {"type": "string", "maxLength": 1500}}},
        {"enum": [f"value {i}" for i in range(20_000)]},  # a grammar too long to check at once
    ],
)
async def test_a_schema_the_engine_cannot_honour_is_refused_by_name(
    local: LocalProvider, schema: dict[str, Any]
) -> None:
    asked = {"type": "json_schema", "json_schema": {"name": "x", "schema": schema}}
    with pytest.raises(UnsupportedParameter) as refused:
        await answer(local, "Hello", response_format=asked)
    assert refused.value.param == "response_format.json_schema"


async def test_a_schema_at_the_bounds_is_honoured(local: LocalProvider) -> None:
    bounded = {"type": "string", "maxLength": MAX_REPEAT, "pattern": "^[a-z ]{1,1000}$"}
    asked = {"type": "json_schema", "json_schema": {"name": "x", "schema": bounded}}
    text, _ = await answer(local, "Say hello.", response_format=asked, max_tokens=8)
    assert text.startswith('"'), text


def test_a_grammar_llama_cpp_refuses_is_found_before_sampling(local: LocalProvider) -> None:
    from llama_cpp.llama_grammar import json_schema_to_gbnf

    # Past the bounds json_grammar keeps to: sampled, it would crash the process.
    too_deep = json_schema_to_gbnf(json.dumps({"type": "string", "maxLength": 1500}))
    assert not parses(too_deep, local._llm)
    assert parses(
        json_schema_to_gbnf(json.dumps({"type": "string", "maxLength": 1000})), local._llm
    )


def test_strings_in_a_schema_s_grammar_hold_no_raw_control_characters() -> None:
    grammar = json_grammar(PERSON_FORMAT, engine="local")
    assert grammar is not None and 'char ::= [^"\\\\\\x7F\\x00-\\x1F] |' in grammar
    assert json_grammar(None, engine="local") is None
    assert json_grammar({"type": "text"}, engine="local") is None


async def test_a_stop_sequence_cuts_the_answer_before_it(local: LocalProvider) -> None:
    prompt = "List the numbers from 1 to 20, separated by commas."
    whole, _ = await answer(local, prompt, temperature=0.0)
    assert "5," in whole, whole
    cut, finish = await answer(local, prompt, temperature=0.0, stop=("5",))
    assert finish == "stop"
    assert cut == whole[: whole.index("5")], (cut, whole)


async def test_top_p_narrows_the_choice(local: LocalProvider) -> None:
    prompt = "Tell me a story about a dragon."
    greedy, _ = await answer(local, prompt, temperature=0.0)
    # At temperature 1, only the likeliest token is left at each step: the greedy answer.
    assert (await answer(local, prompt, temperature=1.0, top_p=1e-6))[0] == greedy


async def test_penalties_change_the_answer(local: LocalProvider) -> None:
    prompt = "Tell me a story about a dragon."
    plain, _ = await answer(local, prompt, temperature=0.0)
    for penalty in ("presence_penalty", "frequency_penalty"):
        penalised, _ = await answer(local, prompt, temperature=0.0, **{penalty: 2.0})
        assert penalised != plain, penalty


async def test_the_same_seed_gives_the_same_answer_and_others_differ(local: LocalProvider) -> None:
    prompt = "Tell me a story about a dragon."
    first, _ = await answer(local, prompt, temperature=1.0, seed=7)
    again, _ = await answer(local, prompt, temperature=1.0, seed=7)
    assert first == again
    others = {(await answer(local, prompt, temperature=1.0, seed=seed))[0] for seed in (8, 9)}
    assert others - {first}
