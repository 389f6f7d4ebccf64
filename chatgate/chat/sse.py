"""The live stream of an answer written in this process: its events (`chat/events.py`) as they
happen, until message_end or error.

A client that goes away leaves the answer running by default (it is stored whole, and any client
may resume its events); with `stream_on_disconnect: stop` the answer ends there, text kept.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from chatgate.chat.events import END_EVENTS, format_event
from chatgate.chat.turns import Turn


async def answer_events(turn: Turn) -> AsyncIterator[bytes]:
    ended = False
    try:
        while True:
            event = await turn.events.get()
            yield format_event(event)
            if event.name in END_EVENTS:
                ended = True
                return
    finally:
        if not ended and turn.on_disconnect == "stop":
            turn.stop("client_disconnected")
