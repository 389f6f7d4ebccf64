"""A TCP relay in front of a chatgate that can drop a streamed answer's connection part-way, as a
flaky network or a restarted proxy does: the browser gets the events up to a given id, then the
connection closes with its body unfinished (a real network error in the page's fetch, not a
Playwright route: those can only answer whole)."""

from __future__ import annotations

import re
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field

STREAMED_POST = re.compile(rb"^POST /v1/sessions/[^/ ]+/messages ", re.MULTILINE)
CHUNK = 65536
CUT_DELAY = 0.3  # seconds


@dataclass
class _Relay:
    client: socket.socket
    upstream: socket.socket
    cut_after: int | None = None  # the id of the last event to let through, once armed
    passed: bytearray = field(default_factory=bytearray)

    def close(self) -> None:
        for sock in (self.client, self.upstream):
            with suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()


class CuttingProxy:
    """Relays 127.0.0.1:`port` to `target_port` (`retarget` moves it). `cut_next_stream(n)`: the
    next streamed answer's connection is closed right after its event `id: n`. `go_down()`: every
    connection is closed at once, as when chatgate cannot be reached (`then_down`: right after
    that cut)."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.down = False
        self.cuts = 0
        self._armed: int | None = None
        self._down_after_cut = False
        self._lock = threading.Lock()
        self._relays: list[_Relay] = []
        self._closed = False
        self.received = bytearray()  # everything chatgate sent, on every connection

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def cut_next_stream(self, after_event_id: int, *, then_down: bool = False) -> None:
        with self._lock:
            self._armed = after_event_id
            self._down_after_cut = then_down

    def retarget(self, url: str) -> None:
        """New connections go to the chatgate at `url` (another process on the same database)."""
        self.target_port = int(url.rsplit(":", 1)[1])

    def go_down(self) -> None:
        """chatgate cannot be reached from now on: no new connection, and none of the open."""
        self.down = True
        for relay in list(self._relays):
            relay.close()

    def serve(self) -> None:
        threading.Thread(target=self._accept, daemon=True, name="cutproxy").start()

    def close(self) -> None:
        self._closed = True
        with suppress(OSError):
            self.listener.close()
        for relay in list(self._relays):
            relay.close()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if self.down:
                client.close()
                continue
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            relay = _Relay(client, upstream)
            self._relays.append(relay)
            threading.Thread(target=self._to_server, args=(relay,), daemon=True).start()
            threading.Thread(target=self._to_client, args=(relay,), daemon=True).start()

    def _to_server(self, relay: _Relay) -> None:
        with suppress(OSError):
            while data := relay.client.recv(CHUNK):
                with self._lock:
                    if self._armed is not None and STREAMED_POST.search(data):
                        # The answer's response is the next thing this connection carries.
                        relay.cut_after, self._armed = self._armed, None
                relay.upstream.sendall(data)
        relay.close()

    def _to_client(self, relay: _Relay) -> None:
        with suppress(OSError):
            while data := relay.upstream.recv(CHUNK):
                self.received += data
                if relay.cut_after is None:
                    relay.client.sendall(data)
                    continue
                relay.passed += data
                marker = b"id: %d\nevent: " % relay.cut_after
                start = relay.passed.find(marker)
                end = relay.passed.find(b"\n\n", start) if start != -1 else -1
                if end == -1:
                    relay.client.sendall(data)
                    continue
                # Up to the end of that event, then no more: its chunk's framing never ends.
                keep = len(data) - (len(relay.passed) - (end + 2))
                relay.client.sendall(data[:keep])
                # A moment before the drop, as on a real network: a body that errors drops what
                # the page has not read yet, so an instant close would make the cut point vary.
                time.sleep(CUT_DELAY)
                self.cuts += 1
                if self._down_after_cut:
                    self.go_down()
                break
        relay.close()


@contextmanager
def cutting_proxy(target_url: str) -> Iterator[CuttingProxy]:
    proxy = CuttingProxy(int(target_url.rsplit(":", 1)[1]))
    proxy.serve()
    try:
        yield proxy
    finally:
        proxy.close()
