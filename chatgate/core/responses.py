from typing import Any

import orjson
from fastapi import Response


class JSONBytes(Response):
    """JSON written with orjson, for the few handlers that build their body by hand."""

    media_type = "application/json"

    def __init__(self, content: Any, status_code: int = 200, headers: dict[str, str] | None = None):
        super().__init__(orjson.dumps(content), status_code=status_code, headers=headers)


# Server-sent events: never cached, never buffered by a proxy in front (nginx honours the second).
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
