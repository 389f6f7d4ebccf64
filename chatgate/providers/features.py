"""What a request may ask of an engine beyond text: tools and their calls, images and audio,
structured output and the sampling parameters of OpenAI's chat completions, and which engines
honour which of them.

Every client dialect (OpenAI's chat completions and Responses, Anthropic's Messages) translates
its request into these shapes; every engine translates them into its own API, or does not
declare the parameter in `honours`, and the request is refused by name (`unsupported_parameter`)
instead of being answered as if the parameter had not been sent.

The shapes are `providers/messages.py`'s; `tool_choice` and `response_format` are OpenAI's own
values.
"""

from __future__ import annotations

from collections.abc import Iterable

from chatgate.core.errors import AppError
from chatgate.providers.base import CompletionRequest
from chatgate.providers.messages import AudioPart, ImagePart


class UnsupportedParameter(AppError):
    status, code = 400, "unsupported_parameter"

    def __init__(self, param: str, engine: str) -> None:
        super().__init__(f"engine {engine!r} cannot honour the parameter {param!r}")
        self.param = param


# Every parameter an engine may or may not honour, in the order a refusal names them. The names
# are OpenAI's; `response_format` is split by its type, an image or audio by its part's type.
PARAMETERS = (
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "image_url",
    "input_audio",
    "response_format.json_object",
    "response_format.json_schema",
    "stop",
    "seed",
    "top_p",
    "presence_penalty",
    "frequency_penalty",
    "logprobs",
    "top_logprobs",
    "n",
)


def parameters_used(request: CompletionRequest) -> list[str]:
    """The parameters of PARAMETERS that this request sets, in that order."""
    used: set[str] = set()
    if request.tools or any(t.tool_calls or t.role == "tool" for t in request.messages):
        used.add("tools")
    if request.tool_choice is not None:
        used.add("tool_choice")
    if request.parallel_tool_calls is not None:
        used.add("parallel_tool_calls")
    for turn in request.messages:
        for part in turn.parts:
            if isinstance(part, ImagePart):
                used.add("image_url")
            elif isinstance(part, AudioPart):
                used.add("input_audio")
    if request.response_format is not None:
        kind = request.response_format.get("type")
        if kind in ("json_object", "json_schema"):
            used.add(f"response_format.{kind}")
    if request.stop:
        used.add("stop")
    for name in ("seed", "top_p", "presence_penalty", "frequency_penalty", "top_logprobs"):
        if getattr(request, name) is not None:
            used.add(name)
    if request.logprobs:
        used.add("logprobs")
    if request.n > 1:
        used.add("n")
    return [name for name in PARAMETERS if name in used]


def first_unhonoured(request: CompletionRequest, honours: Iterable[str]) -> str | None:
    allowed = set(honours)
    return next((name for name in parameters_used(request) if name not in allowed), None)


def require_honoured(request: CompletionRequest, *, engine: str, honours: Iterable[str]) -> None:
    """Refuses the request by the first parameter the engine cannot honour."""
    if (param := first_unhonoured(request, honours)) is not None:
        raise UnsupportedParameter(param, engine)
