"""OPA's REST API - the part the remote engine uses - answered by the embedded OPA engine.

What a real `opa run --server` answers, with the same paths, request and response bodies:

    GET    /health                      {}
    GET    /v1/policies                 {"result": [{"id", "raw"}, ...]}
    GET    /v1/policies/<id>            {"result": {"id", "raw"}}, or 404 resource_not_found
    PUT    /v1/policies/<id>            text/plain Rego -> {} ; 400 with located errors
    DELETE /v1/policies/<id>            {} ; 404 if unknown; 400 if other modules need it
    PUT    /v1/data[/<path>]            JSON -> 204 (creates missing parents, like mkdir -p)
    POST   /v1/data[/<path>]            {"input"} -> {"result": document}, or {} if undefined
    POST   /v1/query                    {"query", "input"} -> {"result": [bindings, ...]}, or {} if undefined

Errors are OPA's error bodies: `{"code", "message", "errors": [{"code", "message", "location":
{"file", "row", "col"}, "details": {"line", "idx"}}]}` with OPA's codes and messages
(`invalid_parameter` + "error(s) occurred while compiling module(s)", `internal_error` +
"error(s) occurred while evaluating query", ...). The module id is the file in locations.

Where this differs from OPA, because the embedded engine is what it is:
- built-in errors are always fatal (as OPA's `strict-builtin-errors=true` on the Data API),
  also in `/v1/query`, where OPA would make the expression undefined: more failures, never
  more answers;
- the engine prints compile errors with file and line only (parse errors with a caret), so the
  column of a type or safety error is where the name its message mentions stands on that line,
  else the line's first non-blank character;
- policy listings carry no `ast`; data paths address objects only (no array indices);
- an evaluation has a time limit (an `eval_cancel_error` when it runs out).
"""
from __future__ import annotations

import json
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import unquote, urlsplit

from securekube.policy.data_refs import ref_query
from securekube.policy.embedded import EmbeddedOpaEngine
from securekube.policy.interfaces import PolicyCompileError, PolicyError, PolicyTimeout
from securekube.policy.opa_errors import RegoError, error_to_json, parse_rendered

__all__ = ["ApiResponse", "OpaApi"]

# OPA's error codes and messages (server/types).
CODE_INTERNAL = "internal_error"
CODE_INVALID_PARAMETER = "invalid_parameter"
CODE_INVALID_OPERATION = "invalid_operation"
CODE_NOT_FOUND = "resource_not_found"
CODE_CONFLICT = "resource_conflict"
MSG_COMPILE_MODULE = "error(s) occurred while compiling module(s)"
MSG_PARSE_QUERY = "error(s) occurred while parsing query"
MSG_COMPILE_QUERY = "error(s) occurred while compiling query"
MSG_EVALUATION = "error(s) occurred while evaluating query"

_POLICIES = "/v1/policies"
_DATA = "/v1/data"
_QUERY = "/v1/query"
_HEALTH = "/health"
# How the embedded engine words an evaluation error: `where: eval_code: message` (see embedded.py).
_EVAL_ERROR = re.compile(r"^(?:(?P<where>[^\n]*?): )?(?P<code>eval_[a-z_]+): (?P<message>.*)\Z", re.DOTALL)
_FILE_ROW = re.compile(r"^(?P<file>.+):(?P<row>\d+)$")
# Compile messages that name what they are about: `undefined function f`, `var x is unsafe`, ...
_NAMED = re.compile(r"(?:undefined function |var |undefined ref: |rule )(?P<name>[^\s]+)")
_EVAL_BINDING_CODE = "eval_error"
_DOCUMENT_VAR = "document"


@dataclass(frozen=True)
class ApiResponse:
    """An HTTP status and its JSON body (None: no body)."""

    status: int
    body: Any = None


class _Refused(Exception):
    """A request answered with an error body."""

    def __init__(self, status: int, code: str, message: str, errors: tuple[RegoError, ...] = ()) -> None:
        super().__init__(message)
        self.response = ApiResponse(status, _error_body(code, message, errors))


def _error_body(code: str, message: str, errors: tuple[RegoError, ...] = ()) -> dict[str, Any]:
    body: dict[str, Any] = {"code": code, "message": message}
    if errors:
        body["errors"] = [error_to_json(error) for error in errors]
    return body


class OpaApi:
    """The REST API over one embedded engine, which it must own: it replaces all its modules.

    Safe to share between threads: writes are serialised and publish only what the engine
    accepted; queries run concurrently in the engine.
    """

    def __init__(self, engine: EmbeddedOpaEngine, eval_timeout: float) -> None:
        self._engine = engine
        self._eval_timeout = eval_timeout
        self._write_lock = threading.Lock()
        self._modules: dict[str, str] = {}  # policy id -> Rego text, as the engine holds them
        self._data: dict[str, Any] = {}

    def handle(self, method: str, target: str, body: bytes) -> ApiResponse:
        """The answer to one request (`target` is the request line's path and query string)."""
        path = urlsplit(target).path
        try:
            if path == _HEALTH:
                return self._only(method, "GET") or ApiResponse(200, {})
            if path == _POLICIES:
                return self._only(method, "GET") or self._list_policies()
            if path.startswith(_POLICIES + "/"):
                policy_id = unquote(path[len(_POLICIES) + 1:])  # OPA unescapes the id; %2F is a slash
                if method == "GET":
                    return self._get_policy(policy_id)
                if method == "PUT":
                    return self._put_policy(policy_id, body)
                return self._only(method, "DELETE") or self._delete_policy(policy_id)
            if path == _DATA or path.startswith(_DATA + "/"):
                segments = [unquote(s) for s in path[len(_DATA):].split("/") if s]
                if method == "POST":
                    return self._read_document(segments, body)
                return self._only(method, "PUT") or self._put_data(segments, body)
            if path == _QUERY:
                return self._only(method, "POST") or self._query(body)
        except _Refused as refused:
            return refused.response
        except Exception as exc:  # noqa: BLE001 - a failure is an error answer, never a dropped connection
            return ApiResponse(500, _error_body(CODE_INTERNAL, f"internal failure ({type(exc).__name__})"))
        return ApiResponse(404, _error_body(CODE_NOT_FOUND, f"{path} is not served here"))

    @staticmethod
    def _only(method: str, allowed: str) -> ApiResponse | None:
        if method == allowed:
            return None
        return ApiResponse(405, _error_body(CODE_INVALID_OPERATION, f"method {method} is not served on this path"))

    # -- policies ------------------------------------------------------------------------

    def _list_policies(self) -> ApiResponse:
        modules = self._modules
        return ApiResponse(200, {"result": [{"id": pid, "raw": raw} for pid, raw in modules.items()]})

    def _get_policy(self, policy_id: str) -> ApiResponse:
        raw = self._modules.get(policy_id)
        if raw is None:
            raise _not_found(policy_id)
        return ApiResponse(200, {"result": {"id": policy_id, "raw": raw}})

    def _put_policy(self, policy_id: str, body: bytes) -> ApiResponse:
        try:
            source = body.decode("utf-8")
        except UnicodeDecodeError:
            raise _Refused(400, CODE_INVALID_PARAMETER, "the module is not UTF-8 text") from None
        with self._write_lock:
            if self._modules.get(policy_id) == source:
                return ApiResponse(200, {})  # as OPA: an unchanged module is not compiled again
            self._install({**self._modules, policy_id: source}, CODE_INVALID_PARAMETER)
        return ApiResponse(200, {})

    def _delete_policy(self, policy_id: str) -> ApiResponse:
        with self._write_lock:
            if policy_id not in self._modules:
                raise _not_found(policy_id)
            self._install({pid: raw for pid, raw in self._modules.items() if pid != policy_id},
                          CODE_INVALID_OPERATION)
        return ApiResponse(200, {})

    def _install(self, modules: dict[str, str], refusal_code: str) -> None:
        """Load `modules` into the engine and keep them, or refuse with OPA's located errors."""
        try:
            self._engine.load(modules)
        except PolicyCompileError as exc:
            raise self._compile_refusal(str(exc), modules, refusal_code, MSG_COMPILE_MODULE, MSG_COMPILE_MODULE) \
                from None
        except PolicyError as exc:
            raise _Refused(500, CODE_INTERNAL, str(exc)) from None
        self._modules = modules

    # -- data ----------------------------------------------------------------------------

    def _put_data(self, segments: list[str], body: bytes) -> ApiResponse:
        try:
            value = json.loads(body)
        except ValueError as exc:
            raise _Refused(400, CODE_INVALID_PARAMETER, f"the document is not JSON: {exc}") from None
        with self._write_lock:
            data = _written(self._data, segments, value)
            try:
                self._engine.set_data(data)
            except PolicyCompileError as exc:
                raise self._compile_refusal(str(exc), self._modules, CODE_INVALID_PARAMETER, MSG_COMPILE_MODULE,
                                            MSG_COMPILE_MODULE) from None
            except PolicyError as exc:
                raise _Refused(400, CODE_INVALID_PARAMETER, str(exc)) from None
            self._data = data
        return ApiResponse(204)

    # -- queries -------------------------------------------------------------------------

    def _query(self, body: bytes) -> ApiResponse:
        try:
            request = json.loads(body)
        except ValueError as exc:
            raise _Refused(400, CODE_INVALID_PARAMETER, f"error(s) occurred while decoding request: {exc}") from None
        if not isinstance(request, dict) or not isinstance(request.get("query", ""), str):
            raise _Refused(400, CODE_INVALID_PARAMETER,
                           'error(s) occurred while decoding request: the body must be {"query": string, "input": any}')
        rows = self._evaluate(request.get("query", ""), request.get("input"))
        return ApiResponse(200, {"result": list(rows)} if rows else {})

    def _read_document(self, segments: list[str], body: bytes) -> ApiResponse:
        try:
            request = json.loads(body) if body.strip() else {}
        except ValueError as exc:
            raise _Refused(400, CODE_INVALID_PARAMETER, f"the body is not JSON: {exc}") from None
        if not isinstance(request, dict):
            raise _Refused(400, CODE_INVALID_PARAMETER, 'the body must be {"input": any}')
        rows = self._evaluate(ref_query(_DOCUMENT_VAR, segments), request.get("input"))
        return ApiResponse(200, {"result": rows[0][_DOCUMENT_VAR]} if rows else {})

    def _evaluate(self, query: str, input_doc: Any) -> tuple[Mapping[str, Any], ...]:
        modules = self._modules
        try:
            return self._engine.evaluate(query, input_doc, timeout=self._eval_timeout)
        except PolicyTimeout:
            cancelled = RegoError("eval_cancel_error", f"evaluation did not finish within {self._eval_timeout:g}s")
            raise _Refused(500, CODE_INTERNAL, MSG_EVALUATION, (cancelled,)) from None
        except PolicyError as exc:
            raise self._query_failure(str(exc), modules, query) from None

    def _query_failure(self, text: str, modules: Mapping[str, str], query: str) -> _Refused:
        binding_code, _, detail = text.partition(": ")
        if binding_code == _EVAL_BINDING_CODE and (match := _EVAL_ERROR.match(detail)):
            error = RegoError(match.group("code"), match.group("message"))
            where = match.group("where") or ""
            if (located := _FILE_ROW.match(where)) and located.group("file") in modules:
                file, row = located.group("file"), int(located.group("row"))
                error = replace(error, file=file, row=row, col=_first_column(_line(modules[file], row)))
            elif where and (offset := query.find(where)) >= 0:  # an expression of the query itself
                row = query.count("\n", 0, offset) + 1
                error = replace(error, row=row, col=offset - (query.rfind("\n", 0, offset) + 1) + 1)
            return _Refused(500, CODE_INTERNAL, MSG_EVALUATION, (error,))
        return self._compile_refusal(text, modules, CODE_INVALID_PARAMETER, MSG_PARSE_QUERY, MSG_COMPILE_QUERY,
                                     unplaced_status=500)

    @staticmethod
    def _compile_refusal(text: str, modules: Mapping[str, str], code: str, parse_message: str,
                         compile_message: str, unplaced_status: int = 400) -> _Refused:
        """The embedded engine's printed parse/compile errors as OPA's error body."""
        _, _, detail = text.partition(": ")  # the engine's own code (parse_error, prepare_error, ...)
        detail = detail.removeprefix("bundle activation failed: ")
        errors = tuple(_with_column(error, modules) for error in parse_rendered(detail, modules))
        if not errors:
            return _Refused(unplaced_status, code if unplaced_status == 400 else CODE_INTERNAL, text)
        parse_failed = any(error.code == "rego_parse_error" for error in errors)
        return _Refused(400, code, parse_message if parse_failed else compile_message, errors)


def _not_found(policy_id: str) -> _Refused:
    return _Refused(404, CODE_NOT_FOUND, f'storage_not_found_error: policy id "{policy_id}"')


def _written(data: Mapping[str, Any], segments: list[str], value: Any) -> dict[str, Any]:
    """A copy of `data` with `value` at `segments`, missing parent objects created."""
    if not segments:
        if not isinstance(value, dict):
            raise _Refused(400, CODE_INVALID_PARAMETER, "the data document's root must be an object")
        return value
    copy: dict[str, Any] = json.loads(json.dumps(data))
    node = copy
    for segment in segments[:-1]:
        child = node.setdefault(segment, {})
        if not isinstance(child, dict):
            raise _Refused(404, CODE_CONFLICT, f"storage_write_conflict_error: /{'/'.join(segments)}")
        node = child
    node[segments[-1]] = value
    return copy


def _line(source: str, row: int) -> str:
    lines = source.split("\n")
    return lines[row - 1] if 1 <= row <= len(lines) else ""


def _first_column(line: str) -> int:
    return len(line) - len(line.lstrip()) + 1


def _with_column(error: RegoError, modules: Mapping[str, str]) -> RegoError:
    """The error with a column: the engine prints one (a caret) for parse errors only."""
    if error.col or error.file not in modules:
        return error
    line = _line(modules[error.file], error.row)
    named = _NAMED.search(error.message)
    if named:
        found = re.search(r"(?<![\w.])" + re.escape(named.group("name")) + r"(?!\w)", line)
        if found:
            return replace(error, col=found.start() + 1)
    return replace(error, col=_first_column(line)) if line else error
