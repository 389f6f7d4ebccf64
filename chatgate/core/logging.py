"""JSON log lines, each with the trace id of the request that wrote it."""

from __future__ import annotations

import atexit
import logging
import logging.handlers
import queue
import sys
from typing import Any

import orjson

from chatgate.core.tracing import current_trace_id

_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        line.update({k: v for k, v in vars(record).items() if k not in _STANDARD})
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(line, default=str).decode()


class _TraceIdFilter(logging.Filter):
    """Stamps the trace id while still in the request's context (formatting happens later)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "trace_id") and (trace_id := current_trace_id()):
            record.trace_id = trace_id
        return True


# Logging is process-wide by nature: one listener thread per process, started once.
_listener: logging.handlers.QueueListener | None = None


def configure_logging(level: str) -> None:
    """JSON lines on stderr, written by a thread of their own so the event loop never waits."""
    global _listener
    root = logging.getLogger("chatgate")
    if _listener is None:
        output = logging.StreamHandler(sys.stderr)
        output.setFormatter(JsonFormatter())
        records: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
        handler = logging.handlers.QueueHandler(records)
        handler.addFilter(_TraceIdFilter())
        _listener = logging.handlers.QueueListener(records, output)
        _listener.start()
        atexit.register(_listener.stop)
        root.handlers[:] = [handler]
        root.propagate = False
    root.setLevel(level.upper())
