"""Replay: which recorded requests the admission policies would have denied or warned about.

Input is audit.k8s.io/v1 Event JSON lines - securekube's audit log or a real cluster's - plain
or gzipped; a line may also hold an EventList (the webhook backend's batches). Only events at
stage ResponseComplete of writes and connects with a recorded body count:

- create -> CREATE with the request body (`requestObject`); exec/attach/portforward/proxy on pods
  (also as `get`, which websocket clients send) -> CONNECT with the options from the URL;
- update -> UPDATE with the request body; patch -> UPDATE with the patched result
  (`responseObject`), since a patch body is not the object;
- delete -> DELETE. The previous object of an update or delete is the last one the log
  recorded for it (a bounded memory of recent responses), else unknown.

Events logged at Metadata level carry no body and are counted as skipped, as are reads,
non-resource requests and other stages. Impersonated requests are judged as the impersonated
user, as admission saw them. Bad input never stops a replay: lines that are not JSON events (or
truncated gzip data) are reported with their file and line number.
"""
from __future__ import annotations

import gzip
import json
import zlib
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import parse_qs, urlsplit

from securekube.admission.interfaces import CONNECT, CREATE, DELETE, UPDATE, AdmissionRequest
from securekube.admission.judge import ERROR, Judgement
from securekube.admission.opa import Finding
from securekube.authn.interfaces import UserInfo
from securekube.policy.admission_input import group_version

__all__ = ["AuditLine", "ReplayProblem", "ReplayReport", "ReplayedRequest", "read_audit_lines", "replay",
           "request_from_event"]

AUDIT_API_VERSIONS = frozenset({"audit.k8s.io/v1", "audit.k8s.io/v1beta1"})
MAX_LINE_BYTES = 64 << 20  # far above any event (bodies are limited to 3 MiB); bounds a newline-free file
REMEMBERED_OBJECTS = 10_000  # previous objects kept for updates and deletes
_GZIP_MAGIC = b"\x1f\x8b"
_CONNECT_SUBRESOURCES = {"exec": "PodExecOptions", "attach": "PodAttachOptions",
                         "portforward": "PodPortForwardOptions", "proxy": "PodProxyOptions"}
_OPERATIONS = {"create": CREATE, "update": UPDATE, "patch": UPDATE, "delete": DELETE}
# Kinds of the resources a delete names (a delete event carries no object to read the kind from).
_KINDS = {"pods": "Pod", "secrets": "Secret", "configmaps": "ConfigMap", "serviceaccounts": "ServiceAccount",
          "namespaces": "Namespace", "nodes": "Node", "services": "Service", "events": "Event",
          "roles": "Role", "rolebindings": "RoleBinding", "clusterroles": "ClusterRole",
          "clusterrolebindings": "ClusterRoleBinding", "deployments": "Deployment", "leases": "Lease"}


@dataclass(frozen=True)
class ReplayProblem:
    """A line that could not be used."""

    file: str
    line: int
    reason: str


@dataclass(frozen=True)
class AuditLine:
    """One event and where it came from."""

    file: str
    line: int
    event: Mapping[str, Any]


@dataclass(frozen=True)
class ReplayedRequest:
    """A replayed request the policies have something to say about."""

    file: str
    line: int
    audit_id: str
    time: str
    user: str
    operation: str
    resource: str  # "pods", "pods/exec", "deployments.apps"
    namespace: str
    name: str
    original_code: int | None  # the response the cluster gave then
    judgement: Judgement


@dataclass
class ReplayReport:
    """Counts, the problems found in the input, and the requests with findings (in log order)."""

    events: int = 0
    replayed: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    problems: list[ReplayProblem] = field(default_factory=list)
    results: list[ReplayedRequest] = field(default_factory=list)

    def count(self, outcome: str) -> int:
        return sum(1 for r in self.results if r.judgement.outcome == outcome)


# ------------------------------------------------------------------------------------ reading


def read_audit_lines(paths: Sequence[Path], problems: list[ReplayProblem]) -> Iterator[AuditLine]:
    """Every event of `paths` in order; unusable lines are appended to `problems`."""
    for path in paths:
        try:
            stream: BinaryIO = path.open("rb")
        except OSError as exc:
            problems.append(ReplayProblem(str(path), 0, f"cannot be read: {exc.strerror or exc}"))
            continue
        with stream:
            magic = stream.read(2)
            stream.seek(0)
            source: BinaryIO = stream
            if magic == _GZIP_MAGIC:
                source = gzip.GzipFile(fileobj=stream)  # type: ignore[assignment]
            yield from _events_of(str(path), source, problems)


def _events_of(name: str, stream: BinaryIO, problems: list[ReplayProblem]) -> Iterator[AuditLine]:
    number = 0
    while True:
        number += 1
        try:
            raw = stream.readline(MAX_LINE_BYTES + 1)
        except (OSError, EOFError, zlib.error) as exc:
            problems.append(ReplayProblem(name, number, f"the compressed data is damaged ({type(exc).__name__}); "
                                                        "the rest of the file is skipped"))
            return
        if not raw:
            return
        if len(raw) > MAX_LINE_BYTES:
            problems.append(ReplayProblem(name, number, f"line longer than {MAX_LINE_BYTES} bytes"))
            _skip_rest_of_line(stream)
            continue
        if not raw.strip():
            continue
        try:
            document = json.loads(raw)
        except (UnicodeDecodeError, ValueError):
            problems.append(ReplayProblem(name, number, "not JSON"))
            continue
        if not isinstance(document, dict):
            problems.append(ReplayProblem(name, number, "not a JSON object"))
            continue
        if document.get("kind") == "EventList" and isinstance(document.get("items"), list):
            events = document["items"]
        else:
            events = [document]
        for event in events:
            if not isinstance(event, dict) or event.get("kind") != "Event" or \
                    event.get("apiVersion") not in AUDIT_API_VERSIONS:
                problems.append(ReplayProblem(name, number, "not an audit.k8s.io/v1 Event"))
                continue
            yield AuditLine(name, number, event)


def _skip_rest_of_line(stream: BinaryIO) -> None:
    while True:
        chunk = stream.readline(MAX_LINE_BYTES)
        if not chunk or chunk.endswith(b"\n"):
            return


# ---------------------------------------------------------------------------------- conversion


def _map(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _user(event: Mapping[str, Any]) -> UserInfo:
    # Admission judged the impersonated identity, not the one that asked for it.
    user = _map(event.get("impersonatedUser")) or _map(event.get("user"))
    extra = _map(user.get("extra"))
    return UserInfo(username=str(user.get("username", "") or ""), uid=str(user.get("uid", "") or ""),
                    groups=tuple(str(g) for g in user.get("groups") or () if isinstance(g, str)),
                    extra={str(k): tuple(str(v) for v in values or ()) for k, values in extra.items()
                           if isinstance(values, list)})


def _connect_options(kind: str, request_uri: str) -> dict[str, Any]:
    query = parse_qs(urlsplit(request_uri).query)
    options: dict[str, Any] = {"apiVersion": "v1", "kind": kind}
    if "command" in query:
        options["command"] = query["command"]
    for key in ("container", "path"):
        if key in query:
            options[key] = query[key][-1]
    for key in ("stdin", "stdout", "stderr", "tty"):
        if key in query:
            options[key] = query[key][-1].lower() in ("true", "1")
    if "ports" in query:
        options["ports"] = [int(p) for p in query["ports"] if p.isdigit()]
    return options


def request_from_event(event: Mapping[str, Any], previous: Callable[[tuple[str, ...]], dict[str, Any] | None]
                       = lambda key: None) -> AdmissionRequest | str:
    """The AdmissionRequest a ResponseComplete event records, or why it cannot be replayed."""
    if event.get("stage") != "ResponseComplete":
        return f"stage {event.get('stage') or 'missing'}"
    ref = _map(event.get("objectRef"))
    resource = str(ref.get("resource", "") or "")
    if not resource:
        return "not a resource request"
    verb = str(event.get("verb", "") or "")
    subresource = str(ref.get("subresource", "") or "")
    group, version = str(ref.get("apiGroup", "") or ""), str(ref.get("apiVersion", "") or "")
    namespace, name = str(ref.get("namespace", "") or ""), str(ref.get("name", "") or "")
    key = (group, resource, namespace, name)
    request_uri = str(event.get("requestURI", "") or "")
    dry_run = "dryRun=All" in request_uri
    common = dict(uid=str(event.get("auditID", "") or ""), sub_resource=subresource, name=name, namespace=namespace,
                  user_info=_user(event), dry_run=dry_run,
                  resource={"group": group, "version": version, "resource": resource})
    if resource == "pods" and subresource in _CONNECT_SUBRESOURCES and verb in ("create", "get"):
        kind = _CONNECT_SUBRESOURCES[subresource]
        return AdmissionRequest(kind={"group": "", "version": "v1", "kind": kind}, operation=CONNECT,
                                object=_connect_options(kind, request_uri), old_object=None, **common)
    operation = _OPERATIONS.get(verb)
    if operation is None:
        return f"verb {verb or 'missing'} is not replayed"
    request_object = event.get("requestObject")
    response_object = event.get("responseObject")
    if operation == DELETE:
        old = previous(key)
        kind = str(_map(old).get("kind") or _KINDS.get(resource, ""))
        return AdmissionRequest(kind={"group": group, "version": version, "kind": kind}, operation=DELETE,
                                object=None, old_object=old, **common)
    if verb == "patch":
        obj = response_object if isinstance(response_object, dict) and response_object.get("kind") != "Status" \
            else None
        if obj is None:
            return "patch without the resulting object (RequestResponse level needed)"
    else:
        obj = request_object if isinstance(request_object, dict) else None
        if obj is None:
            return "no request body recorded (Metadata level)"
    obj_group, obj_version = group_version(str(obj.get("apiVersion", "") or ""))
    kind = {"group": obj_group if obj.get("apiVersion") else group, "version": obj_version or version,
            "kind": str(obj.get("kind", "") or _KINDS.get(resource, ""))}
    if operation == CREATE and not name:
        common["name"] = str(_map(obj.get("metadata")).get("name", "") or "")
    old = previous(key) if operation == UPDATE else None
    return AdmissionRequest(kind=kind, operation=operation, object=obj, old_object=old, **common)


# -------------------------------------------------------------------------------------- replay


class _Memory:
    """The last recorded object of each (group, resource, namespace, name), bounded."""

    def __init__(self, size: int = REMEMBERED_OBJECTS) -> None:
        self._objects: OrderedDict[tuple[str, ...], dict[str, Any]] = OrderedDict()
        self._size = size

    def get(self, key: tuple[str, ...]) -> dict[str, Any] | None:
        return self._objects.get(key)

    def remember(self, event: Mapping[str, Any]) -> None:
        ref = _map(event.get("objectRef"))
        if ref.get("subresource") or event.get("stage") != "ResponseComplete":
            return
        response = event.get("responseObject")
        if not isinstance(response, dict) or response.get("kind") in (None, "Status") or \
                str(response.get("kind", "")).endswith("List"):
            return
        name = str(ref.get("name", "") or _map(response.get("metadata")).get("name", "") or "")
        key = (str(ref.get("apiGroup", "") or ""), str(ref.get("resource", "") or ""),
               str(ref.get("namespace", "") or ""), name)
        self._objects[key] = response
        self._objects.move_to_end(key)
        while len(self._objects) > self._size:
            self._objects.popitem(last=False)


def _describe(line: AuditLine, request: AdmissionRequest, judgement: Judgement) -> ReplayedRequest:
    group, resource = request.group_resource
    shown = f"{resource}.{group}" if group else resource
    if request.sub_resource:
        shown += f"/{request.sub_resource}"
    status = _map(line.event.get("responseStatus")).get("code")
    return ReplayedRequest(
        file=line.file, line=line.line, audit_id=request.uid,
        time=str(line.event.get("requestReceivedTimestamp", "") or ""),
        user=request.user_info.username, operation=request.operation, resource=shown,
        namespace=request.namespace, name=request.name,
        original_code=status if isinstance(status, int) else None, judgement=judgement)


def replay(lines: Iterable[AuditLine], judge: Callable[[AdmissionRequest], Judgement], report: ReplayReport,
           *, workers: int = 4, batch: int = 256) -> ReplayReport:
    """Judge every replayable event of `lines`, `workers` at a time (the engine runs outside the GIL).

    Results keep log order. Findings-free requests are counted, not listed.
    """
    memory = _Memory()

    def judged(request: AdmissionRequest) -> Judgement:
        try:
            return judge(request)
        except Exception as exc:  # one odd recorded object must not end the replay of the rest
            return Judgement((Finding("replay", "replay", ERROR, f"could not be judged ({type(exc).__name__})"),))

    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="securekube-replay") as pool:
        pending: list[tuple[AuditLine, AdmissionRequest]] = []

        def flush() -> None:
            for (line, request), judgement in zip(pending, pool.map(judged, [r for _, r in pending])):
                report.replayed += 1
                if judgement.findings:
                    report.results.append(_describe(line, request, judgement))
            pending.clear()

        for line in lines:
            report.events += 1
            converted = request_from_event(line.event, memory.get)
            memory.remember(line.event)
            if isinstance(converted, str):
                report.skipped[converted] += 1
                continue
            pending.append((line, converted))
            if len(pending) >= batch:
                flush()
        flush()
    return report
