"""The audit stage around one ASGI app: what reaches the client and the sink for reads and writes."""
from __future__ import annotations

import asyncio
import json
import logging
from concurrent.futures import Future
from typing import Any

import pytest

from securekube.apiserver.stages.audit import AuditStage
from securekube.audit.errors import AuditLogError
from securekube.audit.policy import AuditPolicy
from securekube.authn.interfaces import UserInfo

POLICY = AuditPolicy.parse({"apiVersion": "audit.k8s.io/v1", "kind": "Policy", "omitStages": ["RequestReceived"],
                            "rules": [{"level": "Metadata"}]})
CONFIG_MAP = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm", "namespace": "default",
                                                                     "uid": "u-1", "resourceVersion": "7"}}
NOT_FOUND = {"apiVersion": "v1", "kind": "Status", "status": "Failure", "reason": "NotFound", "code": 404,
             "message": 'configmaps "gone" not found', "metadata": {}}


def app_answering(status: int, body: dict[str, Any]):
    async def app(scope: dict, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": json.dumps(body).encode()})
    return app


def call(stage: AuditStage, method: str, path: str) -> list[dict]:
    """Runs one request through the stage; returns the ASGI messages the client got."""
    sent: list[dict] = []

    async def receive() -> dict:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {"type": "http", "method": method, "path": path, "query_string": b"", "headers": [],
             "client": ("127.0.0.1", 4000), "securekube.user": UserInfo("ada", groups=("system:authenticated",)),
             "securekube.audit_id": "id-1"}
    asyncio.run(stage(scope, receive, send))
    return sent


class Sink:
    def __init__(self, refuse_unsynced: bool = False) -> None:
        self.events: list[tuple[dict, bool]] = []
        self.refuse_unsynced = refuse_unsynced

    def __call__(self, events: list[dict], durable: bool) -> Future[None]:
        if self.refuse_unsynced and not durable:
            raise AuditLogError("audit log /x/audit.log is closed")
        self.events += [(e, durable) for e in events]
        done: Future[None] = Future()
        done.set_result(None)
        return done


def test_a_read_is_answered_then_recorded_without_its_body() -> None:
    sink = Sink()
    sent = call(AuditStage(app_answering(200, CONFIG_MAP), POLICY, sink), "GET",
                "/api/v1/namespaces/default/configmaps/cm")
    assert sent[0]["status"] == 200
    [(event, durable)] = sink.events
    assert not durable and event["stage"] == "ResponseComplete" and event["verb"] == "get"
    assert event["responseStatus"] == {"metadata": {}, "code": 200} and "responseObject" not in event


def test_a_failed_read_records_the_status_it_answered() -> None:
    sink = Sink()
    call(AuditStage(app_answering(404, NOT_FOUND), POLICY, sink), "GET", "/api/v1/namespaces/default/configmaps/gone")
    [(event, _)] = sink.events
    assert event["responseStatus"] == {"metadata": {}, "status": "Failure", "message": 'configmaps "gone" not found',
                                       "reason": "NotFound", "code": 404}


def test_a_create_is_recorded_durably_naming_what_it_created() -> None:
    sink = Sink()
    call(AuditStage(app_answering(201, CONFIG_MAP), POLICY, sink), "POST", "/api/v1/namespaces/default/configmaps")
    [(event, durable)] = sink.events
    assert durable and event["objectRef"]["name"] == "cm"
    assert event["objectRef"]["uid"] == "u-1" and event["objectRef"]["resourceVersion"] == "7"


def test_an_answered_read_the_log_refuses_is_logged_not_turned_into_a_panic(caplog: pytest.LogCaptureFixture) -> None:
    sink = Sink(refuse_unsynced=True)
    with caplog.at_level(logging.ERROR, logger="securekube.audit"):
        sent = call(AuditStage(app_answering(200, CONFIG_MAP), POLICY, sink), "GET",
                    "/api/v1/namespaces/default/configmaps/cm")
    assert [m["type"] for m in sent] == ["http.response.start", "http.response.body"] and sent[0]["status"] == 200
    assert sink.events == []  # no Panic event for a request that was answered
    assert "was not recorded: audit log /x/audit.log is closed" in caplog.text
