"""Sending a Status from a pure ASGI stage, before the application is reached."""
from __future__ import annotations

import json
from typing import Any, Awaitable, Callable

from securekube.api.errors import ApiError

Send = Callable[[dict[str, Any]], Awaitable[None]]


async def send_status(send: Send, error: ApiError) -> None:
    body = json.dumps(error.status(), separators=(",", ":")).encode()
    await send({"type": "http.response.start", "status": error.code,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
