"""Authentication stage: no verified identity, no further processing (401, anonymous is off)."""
from __future__ import annotations

import logging
from typing import Any, Callable

from starlette.concurrency import run_in_threadpool

from securekube.api.errors import unauthorized
from securekube.apiserver.stages.respond import send_status
from securekube.authn.interfaces import AuthenticationError, Authenticator, Credentials

log = logging.getLogger("securekube.authn")


class AuthenticationStage:
    def __init__(self, app: Any, authenticator: Authenticator,
                 on_failure: Callable[[dict, str], None] = lambda scope, reason: None) -> None:
        """`on_failure(scope, reason)` records a refusal (the audit log); if it fails, the request still gets 401."""
        self.app, self._authenticator, self._on_failure = app, authenticator, on_failure

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        tls = (scope.get("extensions") or {}).get("tls") or {}
        authorization = next((v.decode("latin-1") for k, v in scope.get("headers", []) if k == b"authorization"), None)
        creds = Credentials(tuple(tls.get("client_cert_chain") or ()), authorization)
        try:
            user = self._authenticator.authenticate(creds)
            reason = "no credentials presented"
        except AuthenticationError as exc:
            user, reason = None, str(exc)
        except Exception as exc:  # an authenticator that breaks refuses: fail closed
            user, reason = None, f"authenticator error: {type(exc).__name__}"
        if user is None:
            # The client learns nothing about which check failed; the reason stays server-side.
            scope["securekube.authn_failure"] = reason
            log.info("authentication failed: %s %s: %s", scope.get("method"), scope.get("path"), reason)
            try:
                await run_in_threadpool(self._on_failure, scope, reason)
            except Exception as exc:  # the refusal stands either way; say that it went unrecorded
                log.error("failed authentication could not be recorded: %s", type(exc).__name__)
            await send_status(send, unauthorized())
            return
        scope["securekube.user"] = user
        await self.app(scope, receive, send)
