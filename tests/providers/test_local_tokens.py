"""The bundled engine's exact token count (llama.cpp tokenising at about 2 µs a character) never
holds the event loop for a long text: other requests go on being served meanwhile."""

from __future__ import annotations

import asyncio
import time

from chatgate.core.config import ProviderConfig
from chatgate.providers.local import INLINE_COUNT_CHARS, LocalProvider

# About 700,000 characters: a few hundred milliseconds of tokenising.
LONG_TEXT = "The quick brown fox, 1234567890, jumps over the lazy dog. 中文也算。 " * 10_000


async def longest_stall_while(work: asyncio.Future[int]) -> float:
    """The longest the event loop went without running a 1 ms ticker, while `work` ran."""
    longest, last = 0.0, time.perf_counter()
    while not work.done():
        await asyncio.sleep(0.001)
        now = time.perf_counter()
        longest, last = max(longest, now - last), now
    return longest


async def test_a_long_text_is_counted_exactly_off_the_event_loop() -> None:
    provider = LocalProvider(ProviderConfig(id="local", type="local"))
    await provider.start()
    try:
        started = time.perf_counter()
        exact = provider.count_tokens(LONG_TEXT)
        on_loop = time.perf_counter() - started
        assert on_loop > 0.1  # the stall the asynchronous count must avoid

        counting = asyncio.ensure_future(provider.count_tokens_async(LONG_TEXT))
        stall = await longest_stall_while(counting)
        assert await counting == exact
        assert stall < on_loop / 4, (stall, on_loop)

        short = LONG_TEXT[:INLINE_COUNT_CHARS]
        assert await provider.count_tokens_async(short) == provider.count_tokens(short) > 0
        assert await provider.count_tokens_async("") == 0
    finally:
        await provider.close()
