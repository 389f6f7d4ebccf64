"""The grammars the bundled engine samples structured output with (OpenAI's `response_format`).

llama.cpp constrains sampling to a GBNF grammar, which llama-cpp-python writes from a JSON schema.
A client's schema is untrusted input to both: the converter writes a repetition out in full
(`maxLength: 1000000` is megabytes of grammar), and llama.cpp's grammar parser refuses more than
about a thousand nested repetitions, after which sampling dereferences the missing grammar, and
far more overflows the parser's stack. Either kills the process. So a schema is bounded before it
is converted, the grammar after, and what is left is parsed once by llama.cpp (see `parses`)
before an answer is sampled with it. What fails is refused by name, never answered unconstrained.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any

from chatgate.providers.features import UnsupportedParameter

log = logging.getLogger("chatgate.providers.local")

# llama.cpp parsed 1,000 nested repetitions and refused 1,500 (llama-cpp-python 0.3.36).
MAX_REPEAT = 1000
# llama.cpp parses a grammar this long in at most about 40 ms: it is checked on the event loop.
MAX_GRAMMAR_CHARS = 100_000
_COUNTS = frozenset({"minLength", "maxLength", "minItems", "maxItems"})
_QUANTIFIER = re.compile(r"\{\s*(\d+)\s*(?:,\s*(\d*)\s*)?\}")

# The converter lets a string hold raw control characters, which JSON forbids (a newline inside a
# name fails every JSON parser); llama-cpp-python's own JSON grammar excludes them, and so does
# the schema's grammar here.
_LOOSE_CHAR = 'char ::= [^"\\\\] |'
_JSON_CHAR = 'char ::= [^"\\\\\\x7F\\x00-\\x1F] |'


def json_grammar(response_format: dict[str, Any] | None, *, engine: str) -> str | None:
    """The grammar an answer to OpenAI's `response_format` is sampled with: any JSON object for
    `json_object` (and for `json_schema` without a schema), the schema's instances for
    `json_schema`; None for text. The grammar holds whether or not the schema is `strict`; its
    `name` and `description` are labels the model does not see.

    Built here rather than by `create_chat_completion(response_format=...)`, which answers with
    any JSON object when it cannot convert the schema: here that is refused by name."""
    from llama_cpp.llama_grammar import JSON_GBNF, json_schema_to_gbnf

    kind = (response_format or {}).get("type")
    if response_format is None or kind not in ("json_object", "json_schema"):
        return None
    spec = response_format.get("json_schema")
    schema = spec.get("schema") if isinstance(spec, dict) else None
    if kind == "json_object" or schema is None:
        return str(JSON_GBNF)
    try:
        text = json.dumps(schema)
        if len(text) > MAX_GRAMMAR_CHARS:  # its grammar would be longer still
            raise ValueError(f"a schema of {len(text)} characters")
        if not _repeats_within_bounds(schema):
            raise ValueError(f"a schema repeating something more than {MAX_REPEAT} times")
        grammar = str(json_schema_to_gbnf(text))
        if len(grammar) > MAX_GRAMMAR_CHARS:
            raise ValueError(f"a grammar of {len(grammar)} characters")
    except Exception as exc:  # the converter asserts on what it does not know
        log.info("a JSON schema the bundled engine cannot honour: %s", exc)
        raise UnsupportedParameter("response_format.json_schema", engine) from None
    return grammar.replace(_LOOSE_CHAR, _JSON_CHAR)


def _repeats_within_bounds(node: Any) -> bool:
    """Whether no count in the schema (lengths, numbers of items, a pattern's `{m,n}`) is above
    MAX_REPEAT, before the converter writes any of them out."""
    if isinstance(node, list):
        return all(_repeats_within_bounds(item) for item in node)
    if not isinstance(node, dict):
        return True
    for key, value in node.items():
        if key in _COUNTS and isinstance(value, int | float) and value > MAX_REPEAT:
            return False
        if key == "pattern" and isinstance(value, str):
            counts = (n for m in _QUANTIFIER.finditer(value) for n in m.groups() if n)
            if any(int(n) > MAX_REPEAT for n in counts):
                return False
        if not _repeats_within_bounds(value):
            return False
    return True


def parses(grammar: str, llm: Any) -> bool:
    """Whether llama.cpp accepts the grammar for this model. llama-cpp-python does not check:
    sampling with a grammar llama.cpp refused crashes the process."""
    from llama_cpp import llama_cpp as native

    # Llama keeps its model (and so the vocabulary a grammar is compiled against) in `_model`.
    sampler = native.llama_sampler_init_grammar(llm._model.vocab, grammar.encode(), b"root")
    if not sampler:
        return False
    native.llama_sampler_free(sampler)
    return True
