"""JSON log lines, each with the trace id of the request that wrote it."""

from __future__ import annotations

import atexit
import logging
import logging.handlers
import queue
import sys
import threading
from typing import Any

import orjson

from chatgate.core.tracing import current_trace_id

_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "color_message",  # uvicorn's copy of the message with terminal colours
}
# uvicorn's own lines (start, stop, errors outside a request) go the same way as chatgate's.
SERVER_LOGGERS = ("uvicorn", "uvicorn.error")
ACCESS_LOGGER = "chatgate.access"


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


class _BatchWriter(threading.Thread):
    """Writes queued records in batches, waking every `every` seconds: a thread woken for each
    line would take the interpreter lock from the event loop on every request. `flush` may also
    be called from any thread."""

    def __init__(self, records: queue.SimpleQueue[logging.LogRecord], every: float) -> None:
        super().__init__(name="chatgate-log-writer", daemon=True)
        self.records = records
        self.every = every
        self.formatter = JsonFormatter()
        self.stream = sys.stderr
        self.stopping = threading.Event()
        self.writing = threading.Lock()  # one batch at a time, in order

    def run(self) -> None:
        while not self.stopping.wait(self.every):
            self.flush()
        self.flush()

    def flush(self) -> None:
        with self.writing:
            lines = []
            while True:
                try:
                    lines.append(self.formatter.format(self.records.get_nowait()))
                except queue.Empty:
                    break
            if lines:
                self.stream.write("\n".join(lines) + "\n")
                self.stream.flush()

    def stop(self) -> None:
        self.stopping.set()
        self.join()


class _QueueHandler(logging.handlers.QueueHandler):
    """Access lines wait for the writer's next batch; any other line (start-up, shutdown,
    warnings, errors: rare) is written at once, with what is queued before it, so that a
    process stopped by a signal, which skips `atexit`, loses none of them."""

    def __init__(self, writer: _BatchWriter) -> None:
        super().__init__(writer.records)
        self.writer = writer

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        return record  # formatted by the writer: same process, nothing to pickle

    def emit(self, record: logging.LogRecord) -> None:
        super().emit(record)
        if record.name != ACCESS_LOGGER:
            self.writer.flush()


# Logging is process-wide by nature: one writer thread per process, started once.
_writer: _BatchWriter | None = None
FLUSH_EVERY = 0.05  # seconds: how long a line may wait to be written


def configure_logging(level: str) -> None:
    """JSON lines on stderr: access lines in batches from a thread of their own, so a request
    never waits on them; the rare others at once (see _QueueHandler)."""
    global _writer
    root = logging.getLogger("chatgate")
    if _writer is None:
        # Fields no line shows, each gathered for every record unless turned off (the logging
        # HOWTO's "Optimization"): the caller's frame, thread, process and process name.
        logging._srcfile = None
        logging.logThreads = False
        logging.logProcesses = False
        logging.logMultiprocessing = False
        _writer = _BatchWriter(queue.SimpleQueue(), FLUSH_EVERY)
        _writer.start()
        handler = _QueueHandler(_writer)
        handler.addFilter(_TraceIdFilter())
        atexit.register(_writer.stop)
        for logger in (root, *map(logging.getLogger, SERVER_LOGGERS)):
            logger.handlers[:] = [handler]
            logger.propagate = False
    for name in ("chatgate", *SERVER_LOGGERS):
        logging.getLogger(name).setLevel(level.upper())
