"""The outermost stage: gives every request an Audit-Id and returns it as a response header, as upstream."""
from __future__ import annotations

import uuid
from typing import Any


class AuditIdStage:
    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        audit_id = str(uuid.uuid4())
        scope["securekube.audit_id"] = audit_id
        header = (b"audit-id", audit_id.encode())

        async def send_with_id(message: dict) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = list(message.get("headers", [])) + [header]
            await send(message)

        await self.app(scope, receive, send_with_id)
