"""Audit stage: every request that passed authentication leaves audit.k8s.io/v1 events.

It sits right after authentication (upstream's order), so events carry the authenticated user;
impersonation and authorization run inside it and their outcome (impersonatedUser, the
authorization decision and reason) is read back from the scope when the response starts.
Failed authentication is recorded through `record_failed_authentication`.

Durability: a mutating request's RequestReceived event is durable before the request goes
further, and its ResponseComplete event before the response is released to the client, so an
acknowledged write always has its audit record (nothing lost, also on a crash). Reads are
answered first and recorded right after, without waiting for the disk (their events become
durable with the next write's). Long-running requests (watch, and upstream's long-running
subresources such as pods/log) stream: ResponseStarted when the response begins, ResponseComplete
when it ends.
"""
from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
from concurrent.futures import Future
from typing import Any, Callable

from securekube.apiserver.requestinfo import WRITE_VERBS, request_info
from securekube.apiserver.stages.authorization import attributes_for
from securekube.audit import event as ev
from securekube.audit.policy import AuditPolicy, RuleDecision
from securekube.authn.interfaces import UserInfo
from securekube.authz.interfaces import Verdict

log = logging.getLogger("securekube.audit")
STREAMING_VERBS = frozenset({"watch"})
# Upstream's long-running subresources: their responses stream, so nothing of them is held back.
LONG_RUNNING_SUBRESOURCES = frozenset({"log", "exec", "attach", "portforward", "proxy"})
ANONYMOUS = UserInfo(username="system:anonymous", groups=("system:unauthenticated",))

# (events, durable) -> a future that completes once they are recorded, durably if asked
# (AuditBackends.submit); a failed future or an exception means "not recorded".
Sink = Callable[[list[dict], bool], "Future[None]"]


def _header(scope: dict, name: bytes) -> str:
    return next((v.decode("latin-1") for k, v in scope.get("headers", []) if k == name), "")


def _request_uri(scope: dict) -> str:
    query = scope.get("query_string", b"").decode("latin-1")
    return scope.get("path", "") + (f"?{query}" if query else "")


def _json_or_none(body: bytes) -> Any:
    try:
        return json.loads(body) if body else None
    except ValueError:
        return None  # a YAML or protobuf body is not reproduced in the event


class AuditStage:
    def __init__(self, app: Any, policy: AuditPolicy, sink: Sink) -> None:
        self.app, self._policy, self._sink = app, policy, sink

    def _event(self, scope: dict, decision: RuleDecision, stage: str, user: UserInfo, *, received: dt.datetime,
               status: dict | None = None, request_object: Any = None, response_object: Any = None,
               annotations: dict[str, str] | None = None) -> dict:
        info = request_info(scope)
        attrs = attributes_for(user, info)
        impersonated = scope.get("securekube.user") if scope.get("securekube.impersonated_by") else None
        client = scope.get("client") or ("", 0)
        return ev.new_event(
            audit_id=scope.get("securekube.audit_id", ""), stage=stage, level=decision.level,
            request_uri=_request_uri(scope), verb=info.verb, user=user,
            impersonated_user=impersonated, request_received=received,
            source_ips=[client[0]] if client[0] else [], user_agent=_header(scope, b"user-agent"),
            object_ref=ev.object_reference(attrs) if info.is_resource_request else None, status=status,
            request_object=request_object, response_object=response_object,
            omit_managed_fields=decision.omit_managed_fields, annotations=annotations)

    def record_failed_authentication(self, scope: dict, reason: str) -> None:
        """A refused credential: one ResponseComplete event, 401, the reason for reviewers only."""
        received = dt.datetime.now(dt.timezone.utc)
        decision = self._policy.evaluate(attributes_for(ANONYMOUS, request_info(scope)))
        if decision.records(ev.STAGE_RESPONSE_COMPLETE):
            self._sink([self._event(scope, decision, ev.STAGE_RESPONSE_COMPLETE, ANONYMOUS, received=received,
                                    status=ev.response_status(401, status="Failure", message="Unauthorized",
                                                              reason="Unauthorized"),
                                    annotations={"authentication.securekube.io/failure": reason})], True).result()

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        received = dt.datetime.now(dt.timezone.utc)
        user: UserInfo = scope["securekube.user"]
        info = request_info(scope)
        decision = self._policy.evaluate(attributes_for(user, info))
        if decision.level == ev.LEVEL_NONE:
            await self.app(scope, receive, send)
            return
        mutating = info.verb in WRITE_VERBS
        streaming = info.verb in STREAMING_VERBS or info.subresource in LONG_RUNNING_SUBRESOURCES
        if decision.records(ev.STAGE_REQUEST_RECEIVED):
            first = self._event(scope, decision, ev.STAGE_REQUEST_RECEIVED, user, received=received)
            # Nothing goes further until the attempt is on record.
            await self._write([first])

        keep_request = decision.level in (ev.LEVEL_REQUEST, ev.LEVEL_REQUEST_RESPONSE) and not streaming
        keep_response = decision.level == ev.LEVEL_REQUEST_RESPONSE and not streaming
        request_chunks: list[bytes] = []

        async def recording_receive() -> dict:
            message = await receive()
            if keep_request and message["type"] == "http.request":
                request_chunks.append(message.get("body", b""))
            return message

        held: list[dict] = []
        response_chunks: list[bytes] = []
        status_code = 0

        def complete_event() -> dict:
            annotations: dict[str, str] = dict(scope.get("securekube.audit_annotations") or {})
            authz = scope.get("securekube.authz_decision")
            if authz is not None:
                annotations["authorization.k8s.io/decision"] = "allow" if authz.verdict is Verdict.ALLOW else "forbid"
                annotations["authorization.k8s.io/reason"] = authz.reason
            raw = b"".join(response_chunks)
            # Decoded only when something is taken from it: the body itself, a create's metadata, or a
            # Status (whose kind must spell "Status" out). Most reads need none of them, and
            # decoding every response costs more than the rest of their event.
            wanted = keep_response or info.verb == "create" or b"Status" in raw
            body = _json_or_none(raw) if wanted else None
            status = ev.response_status(status_code)
            if isinstance(body, dict) and body.get("kind") == "Status":
                status = ev.response_status(status_code, status=body.get("status", ""), message=body.get("message", ""),
                                            reason=body.get("reason", ""))
            event = self._event(scope, decision, ev.STAGE_RESPONSE_COMPLETE, user, received=received, status=status,
                                request_object=_json_or_none(b"".join(request_chunks)) if keep_request else None,
                                response_object=body if keep_response else None, annotations=annotations)
            created = body.get("metadata") if isinstance(body, dict) and body.get("kind") != "Status" else None
            if info.verb == "create" and isinstance(created, dict) and "objectRef" in event:
                # As upstream: the object reference of a create names what was created.
                ref = event["objectRef"]
                ref.setdefault("name", created.get("name", ""))
                for field in ("uid", "resourceVersion"):
                    if created.get(field):
                        ref[field] = created[field]
            return event

        async def recording_send(message: dict) -> None:
            nonlocal status_code
            if message["type"] == "http.response.start":
                status_code = message["status"]
                if streaming:
                    if decision.records(ev.STAGE_RESPONSE_STARTED):
                        started = self._event(scope, decision, ev.STAGE_RESPONSE_STARTED, user, received=received,
                                              status=ev.response_status(status_code))
                        await self._write([started], durable=False)
                    await send(message)
                else:
                    held.append(message)  # released with the body, after the event is durable
                return
            if message["type"] == "http.response.body" and not streaming:
                response_chunks.append(message.get("body", b""))
                if message.get("more_body", False):
                    return
                if mutating:  # the client hears of the write only once it is on record
                    await self._write([self._event_or_none(decision, complete_event)])
                for m in held:
                    await send(m)
                await send({"type": "http.response.body", "body": b"".join(response_chunks)})
                if not mutating:  # already answered: the event is built and written off the client's clock
                    self._record([self._event_or_none(decision, complete_event)])
                return
            await send(message)

        try:
            await self.app(scope, recording_receive, recording_send)
        except BaseException:
            if decision.records(ev.STAGE_PANIC):
                panic = self._event(scope, decision, ev.STAGE_PANIC, user, received=received,
                                    status=ev.response_status(500, status="Failure", reason="InternalError"))
                await self._write([panic])
            raise
        if streaming:  # a mutating stream (exec, attach) is recorded durably, like any write
            await self._write([self._event_or_none(decision, complete_event)], durable=mutating)

    @staticmethod
    def _event_or_none(decision: RuleDecision, build: Callable[[], dict]) -> dict | None:
        return build() if decision.records(ev.STAGE_RESPONSE_COMPLETE) else None

    async def _write(self, events: list[dict | None], durable: bool = True) -> None:
        events = [e for e in events if e is not None]
        if events:
            await asyncio.wrap_future(self._sink(events, durable))

    def _record(self, events: list[dict | None]) -> None:
        """Hands events to the sink without waiting, for requests already answered.

        Nothing waits on them, so the event loop is not woken again when the writer has them. A
        failure is counted by the backends; one the sink raises at once (a closed or broken log) is
        logged here, because the client already has its answer and must not see a second one.
        """
        events = [e for e in events if e is not None]
        if events:
            try:
                self._sink(events, False)
            except Exception as exc:
                log.error("audit: the event of an answered request was not recorded: %s", exc)
