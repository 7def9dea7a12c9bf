"""The remote OPA engine: a `PolicyEngine` whose modules, data and evaluations live in an OPA server.

It talks to OPA's REST API over HTTPS with opa-python-client (`opa_client.OpaClient`): the
server is verified against a CA file (verification cannot be turned off), the client presents a
certificate when given one (for `opa run --authentication=tls`) and a bearer token when given
one (`--authentication=token`). `load` puts each module with `PUT /v1/policies/<id>` and deletes
the modules it put before that are no longer wanted; `set_data` replaces the data document with
`PUT /v1/data`; `evaluate` asks `POST /v1/query`, or, for a query that binds one data
reference (`result := data.a.b`), `POST /v1/data/a/b?strict-builtin-errors=true` (see
`data_refs.py`: OPA's Query API turns a failing built-in into undefined, a silent allow).

Where opa-python-client 3.0.0 falls short, this module uses the client's own `requests` session
(so the same TLS, token and connection pool) rather than a second HTTP stack:

- it verifies against the system CAs only (`ssl=True`): the session is pointed at the CA file,
  and told not to read the environment, where `REQUESTS_CA_BUNDLE` would replace that CA file
  and `HTTPS_PROXY` would send policy inputs through a proxy;
- `ad_hoc_query` has no per-call timeout, drops an input that is falsy (`{}`, `0`, `false`) and
  discards OPA's error body, so evaluations post to `/v1/query` on the session;
- `delete_policy` drops the `errors` of a refused deletion, and `get_policies_list` returns
  ids only, asking `/v1/policies/` (OPA 1.x's router may take that for the policy with the
  empty id): both are done on the session as well.

Fail closed: a timeout is `PolicyTimeout`; an unreachable or unverifiable server, a refusal, a
non-2xx answer or an answer that is not a query result is `PolicyError`. A module OPA refuses is
`PolicyCompileError` with OPA's errors printed as the embedded engine prints them (`file:row:
code: message`, source line and caret), so callers read the same file, line and column either
way. Undefined (an answer without `result`) is the empty tuple, as the protocol says. One
difference remains: for other queries (the OPA authorizer's comprehension, the loader's
`rego.parse_module`) a real OPA server makes a failing built-in undefined where the embedded
engine raises.

Each evaluation runs on a worker thread and the caller waits at most its timeout: a socket
timeout alone bounds each read, not the whole exchange. OPA has no multi-module transaction
outside bundles, so `load` is all or nothing by undoing what it did when a step fails; while it
runs, concurrent evaluations may see some new modules beside old ones (the admission stage's
generation check copes with that). If the undo fails too, every evaluation fails until a `load`
succeeds. Modules are put under `policy_id_prefix` + their name; on its first `load` the engine
takes over the server's policies under that prefix (left by an earlier run) and deletes those
no longer wanted. The bearer token appears in no message, log line or repr.
"""
from __future__ import annotations

import concurrent.futures
import json
import math
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import requests
from opa_client import OpaClient
from opa_client.errors import RegoParseError
from requests.adapters import HTTPAdapter
from urllib3.exceptions import MaxRetryError, NewConnectionError
from urllib3.exceptions import TimeoutError as Urllib3Timeout

from securekube.policy.data_refs import DataRef, data_ref_of
from securekube.policy.embedded import EmbeddedOpaEngine
from securekube.policy.interfaces import PolicyCompileError, PolicyError, PolicyTimeout, QueryResult
from securekube.policy.opa_errors import RegoError, errors_from_json, render_all, with_source_lines

__all__ = ["RemoteEngine", "RemoteEngineConfig"]

_JSON = "application/json"
# OPA's code for a request it refused as malformed: for a module, a parse or compile error.
_INVALID_PARAMETER = "invalid_parameter"
_NOT_FOUND = "resource_not_found"
_REDACTED = "<redacted>"


@dataclass(frozen=True)
class RemoteEngineConfig:
    """Where the OPA server is, how to trust it and prove who we are, and the limits."""

    url: str  # https://host:port of the OPA server
    ca_file: Path  # the CA that signed the server's certificate; always verified
    client_cert_file: Path | None = None  # for servers that require client certificates
    client_key_file: Path | None = None
    bearer_token: str | None = field(default=None, repr=False)  # for --authentication=token
    request_timeout: float = 10.0  # seconds for each policy and data update
    max_concurrent_evaluations: int = 8  # evaluations in flight; more wait within their timeout
    # Module ids on the server are this + the module name; the policies under it are this engine's.
    policy_id_prefix: str = "securekube/"

    def __post_init__(self) -> None:
        parts = urlsplit(self.url)
        if parts.scheme != "https":
            raise ValueError("the OPA server URL must start with https:// (policy traffic is never sent in clear)")
        if not parts.hostname or parts.path not in ("", "/") or parts.query or parts.fragment or parts.username:
            raise ValueError("the OPA server URL must be https://host[:port] and nothing more")
        _ = parts.port  # raises ValueError for a port that is not a number
        if (self.client_cert_file is None) != (self.client_key_file is None):
            raise ValueError("a client certificate needs its key file, and a key its certificate")
        if self.bearer_token is not None and not _valid_token(self.bearer_token):
            # Checked here because requests would quote an invalid header value in its error.
            raise ValueError("the bearer token must be non-empty printable ASCII without spaces")
        if not (math.isfinite(self.request_timeout) and self.request_timeout > 0):
            raise ValueError("request_timeout must be a positive number of seconds")
        if self.max_concurrent_evaluations < 1:
            raise ValueError("max_concurrent_evaluations must be at least 1")


def _valid_token(token: str) -> bool:
    return bool(token) and all(0x21 <= ord(char) <= 0x7E for char in token)


class RemoteEngine:
    """An OPA server as a `PolicyEngine`. Safe to share between threads."""

    def __init__(self, config: RemoteEngineConfig) -> None:
        for path in (config.ca_file, config.client_cert_file, config.client_key_file):
            if path is not None and not Path(path).is_file():
                raise PolicyError(f"cannot read {path}: no such file")
        self._config = config
        parts = urlsplit(config.url)
        host = parts.hostname or ""
        self._url = f"https://{_bracketed(host)}:{parts.port or 443}"
        cert = (str(config.client_cert_file), str(config.client_key_file)) if config.client_cert_file else None
        # retries=0: a failed exchange is reported at once (a decision fails closed; an update
        # can be repeated by the caller), never re-sent behind the caller's timeout.
        self._client = OpaClient(host=_bracketed(host), port=parts.port or 443, ssl=True, cert=cert,
                                 token=config.bearer_token, retries=0, timeout=config.request_timeout)
        session: requests.Session = self._client._session
        session.verify = str(config.ca_file)
        session.trust_env = False
        # One pooled connection per evaluation in flight, plus one for updates (the client's
        # adapter keeps 10, and drops, with a log line, any connection beyond).
        clients_adapter = session.get_adapter(self._url)
        session.mount("https://", HTTPAdapter(max_retries=clients_adapter.max_retries,
                                              pool_maxsize=config.max_concurrent_evaluations + 1))
        clients_adapter.close()
        self._session = session
        self._api = self._client.root_url  # https://host:port/v1
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=config.max_concurrent_evaluations, thread_name_prefix="securekube-opa-remote")
        self._write_lock = threading.Lock()  # one load/set_data at a time
        self._installed: dict[str, str] | None = None  # this engine's policies on the server: id -> source
        self._unsynchronised = False  # a failed load could not be undone: the server's state is unknown
        self._closed = False
        self._checker: EmbeddedOpaEngine | None = None  # compiles candidate policies; see check()

    def __repr__(self) -> str:
        return f"RemoteEngine(url={self._url!r})"

    @property
    def url(self) -> str:
        return self._url

    # -- modules and data ----------------------------------------------------------------

    def load(self, modules: Mapping[str, str]) -> None:
        items = tuple(modules.items())
        for name, source in items:
            if not isinstance(name, str) or not isinstance(source, str):
                raise TypeError("modules must map module names (str) to Rego source text (str)")
            if not source:  # opa-python-client refuses to send an empty module; OPA would refuse it too
                raise PolicyCompileError(f"{name}:0: rego_parse_error: empty module")
        wanted = {self._policy_id(name): source for name, source in items}
        with self._write_lock:
            self._check_open()
            installed = self._installed if self._installed is not None else self._fetch_installed()
            # Every wanted module is put, changed or not (OPA accepts an unchanged one without
            # compiling): a restarted OPA server, which has forgotten them, gets them back.
            # Then the modules no longer wanted are deleted.
            done: list[str] = []  # the policy ids changed so far
            for policy_id in [*wanted, *(p for p in installed if p not in wanted)]:
                try:
                    if policy_id in wanted:
                        self._put_policy(policy_id, wanted[policy_id], {**installed, **wanted})
                    else:
                        self._delete_policy(policy_id, wanted)
                except PolicyError as exc:
                    if not isinstance(exc, PolicyCompileError):
                        done.append(policy_id)  # not clearly refused (a timeout, say): it may have happened
                    self._undo(installed, done)
                    raise
                done.append(policy_id)
            self._installed = wanted
            self._unsynchronised = False

    def set_data(self, data: Mapping[str, Any]) -> None:
        if not isinstance(data, Mapping):
            raise TypeError("the data document must be a mapping")
        document = json.loads(_to_json(dict(data), "data document"))  # plain JSON types only
        with self._write_lock:
            self._check_open()
            try:
                self._client.update_or_create_data(document, "")
            except RegoParseError as exc:
                raise self._refusal(exc.expression, exc.message, exc.errors, {}) from None
            except Exception as exc:  # noqa: BLE001 - whatever failed, the data was not confirmed
                raise self._exchange_error("replacing the data document", exc) from None

    def _policy_id(self, name: str) -> str:
        return self._config.policy_id_prefix + name

    def _fetch_installed(self) -> dict[str, str]:
        """The server's policies under this engine's prefix (an earlier run may have left some)."""
        status, body = self._exchange("GET", f"{self._api}/policies", None, self._config.request_timeout,
                                      "listing the policies")
        if status != 200:
            raise self._answer_error(status, body, {}, module_error=False)
        entries = body.get("result") if isinstance(body, dict) else None
        if not isinstance(entries, list):
            raise PolicyError("the OPA server's policy list is not a list of policies")
        installed = {}
        for entry in entries:
            if not (isinstance(entry, dict) and isinstance(entry.get("id"), str) and isinstance(entry.get("raw"), str)):
                raise PolicyError("the OPA server's policy list is not a list of policies")
            if entry["id"].startswith(self._config.policy_id_prefix):
                installed[entry["id"]] = entry["raw"]
        return installed

    def _put_policy(self, policy_id: str, source: str, sources: Mapping[str, str]) -> None:
        try:
            self._client.update_policy_from_string(source, quote(policy_id, safe=""), rego_compat=False)
        except RegoParseError as exc:  # the client's name for any refusal of the module
            raise self._refusal(exc.expression, exc.message, exc.errors, sources, policy_id) from None
        except Exception as exc:  # noqa: BLE001 - whatever failed, the module was not confirmed
            raise self._exchange_error(f"putting module {self._module_name(policy_id)}", exc) from None

    def _delete_policy(self, policy_id: str, sources: Mapping[str, str]) -> None:
        status, body = self._exchange("DELETE", f"{self._api}/policies/{quote(policy_id, safe='')}", None,
                                      self._config.request_timeout,
                                      f"deleting module {self._module_name(policy_id)}")
        if status == 200:
            return
        if status == 404 and isinstance(body, dict) and body.get("code") == _NOT_FOUND:
            return  # already gone: the state wanted
        # Refused because a remaining module needs it: a compile error, as the embedded engine reports it.
        raise self._answer_error(status, body, sources, module_error=status == 400)

    def _undo(self, installed: Mapping[str, str], changed: list[str]) -> None:
        """Give the modules a failed load changed their sources from before, newest change first.

        Each step returns to a state the server accepted before, so the undo compiles; if it
        fails anyway (the server went away), the server's state is unknown and every evaluation
        fails until a load succeeds.
        """
        try:
            for policy_id in reversed(changed):
                if policy_id in installed:
                    self._put_policy(policy_id, installed[policy_id], installed)
                else:
                    self._delete_policy(policy_id, installed)
        except PolicyError:
            self._installed = None  # read the server's state again on the next load
            self._unsynchronised = True
            return
        self._installed = dict(installed)

    # -- evaluation ----------------------------------------------------------------------

    def evaluate(self, query: str, input_doc: Any = None, *, timeout: float) -> QueryResult:
        if not (math.isfinite(timeout) and timeout > 0):
            raise ValueError("timeout must be a positive number of seconds")
        ref = data_ref_of(query)
        request: dict[str, Any] = {} if ref is not None else {"query": query}
        if input_doc is not None:  # OPA reads a missing input and `null` alike: input undefined
            request["input"] = input_doc
        payload = _to_json(request, "input document")  # here, so the caller's object is never read later
        self._check_open()
        if self._unsynchronised:
            raise PolicyError("the OPA server may hold a partly loaded policy set (a failed load could not be "
                              "undone); load the policies again")
        try:
            if ref is not None:
                future = self._executor.submit(self._read_document, ref, payload, timeout)
            else:
                future = self._executor.submit(self._query, payload, timeout)
        except RuntimeError:  # the executor was shut down: the engine is closed
            raise PolicyError("the policy engine is closed") from None
        try:
            return future.result(timeout=timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()  # not started yet: never sent; started: its socket timeout ends it
            raise PolicyTimeout(f"policy evaluation did not finish within {timeout:g}s") from None
        except concurrent.futures.CancelledError:
            raise PolicyError("the policy engine is closed") from None

    def _query(self, payload: str, timeout: float) -> QueryResult:
        status, body = self._exchange("POST", f"{self._api}/query", payload, timeout, "evaluating a query")
        if status != 200:
            # A query that does not parse or compile is an evaluation failure, as in the embedded engine.
            raise self._answer_error(status, body, self._installed or {}, module_error=False)
        if not isinstance(body, dict):
            raise PolicyError("the OPA server's answer is not a query result")
        rows = body.get("result", [])
        # OPA leaves `result` out when the query is undefined.
        if not isinstance(rows, list) or not all(isinstance(row, dict) for row in rows):
            raise PolicyError("the OPA server's answer is not a query result")
        return tuple(rows)

    def _read_document(self, ref: DataRef, payload: str, timeout: float) -> QueryResult:
        """`var := data.<ref>` through the Data API, where a failing built-in is an error, not undefined."""
        url = f"{self._api}/data/{ref.url_path}?strict-builtin-errors=true"
        status, body = self._exchange("POST", url, payload, timeout, "evaluating a query")
        if status != 200:
            raise self._answer_error(status, body, self._installed or {}, module_error=False)
        if not isinstance(body, dict):
            raise PolicyError("the OPA server's answer is not a document")
        # OPA leaves `result` out when the document is undefined.
        return ({ref.var: body["result"]},) if "result" in body else ()

    # -- HTTP ----------------------------------------------------------------------------

    def _exchange(self, method: str, url: str, payload: str | None, timeout: float, what: str) -> tuple[int, Any]:
        """One request on the client's session: the status and the JSON body (None if not JSON)."""
        try:
            response = self._session.request(method, url, data=payload, timeout=(timeout, timeout),
                                             headers={"Content-Type": _JSON} if payload else None,
                                             allow_redirects=False)  # OPA never redirects
        except Exception as exc:  # noqa: BLE001 - whatever failed, there is no answer
            raise self._exchange_error(what, exc, timeout) from None
        try:
            body = response.json() if response.content else None
        except ValueError:
            body = None
        return response.status_code, body

    def _exchange_error(self, what: str, exc: Exception, timeout: float | None = None) -> PolicyError:
        if _timed_out(exc):
            limit = self._config.request_timeout if timeout is None else timeout
            return PolicyTimeout(f"{what}: the OPA server at {self._url} did not answer within {limit:g}s")
        if isinstance(exc, requests.exceptions.SSLError):
            reason = f"TLS failure (is the server's certificate signed by {self._config.ca_file}?)"
        elif isinstance(exc, requests.ConnectionError):
            reason = "cannot connect"
        elif isinstance(exc, (requests.RequestException, ValueError)):
            reason = "no usable answer"
        else:
            reason = "unexpected failure"
        return PolicyError(self._scrub(f"{what}: {reason} talking to the OPA server at {self._url}: "
                                       f"{type(exc).__name__}: {exc}"))

    def _answer_error(self, status: int, body: Any, sources: Mapping[str, str], *, module_error: bool) -> PolicyError:
        if not (isinstance(body, dict) and isinstance(body.get("code"), str)):
            return PolicyError(f"the OPA server at {self._url} answered HTTP {status} without an OPA error")
        return self._refusal(body["code"], body.get("message"), body.get("errors"), sources,
                             module_error=module_error)

    def _refusal(self, code: Any, message: Any, items: Any, sources: Mapping[str, str], policy_id: str = "",
                 *, module_error: bool | None = None) -> PolicyError:
        """OPA's error body as the embedded engine words the same error (`code: file:row: ...`)."""
        errors = self._named(with_source_lines(errors_from_json(items), sources))
        if errors:
            text = render_all(errors)
        else:
            text = str(message) if message else "no message"
            if policy_id:
                text = f"{self._module_name(policy_id)}: {text}"
        text = self._scrub(f"{code}: {text}")
        if module_error is None:  # a refused module or data document: OPA calls it an invalid parameter
            module_error = code == _INVALID_PARAMETER
        return PolicyCompileError(text) if module_error else PolicyError(text)

    def _named(self, errors: tuple[RegoError, ...]) -> tuple[RegoError, ...]:
        """The errors with this engine's modules named as the caller named them (no id prefix)."""
        return tuple(RegoError(e.code, e.message, self._module_name(e.file), e.row, e.col, e.source_line, e.offset)
                     for e in errors)

    def _module_name(self, policy_id: str) -> str:
        prefix = self._config.policy_id_prefix
        return policy_id[len(prefix):] if prefix and policy_id.startswith(prefix) else policy_id

    def _scrub(self, text: str) -> str:
        """Belt and braces: the token never reaches a message, whatever a library put in one."""
        token = self._config.bearer_token
        return text.replace(token, _REDACTED) if token else text

    # -- lifecycle -----------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise PolicyError("the policy engine is closed")

    def check(self, modules: Mapping[str, str]) -> None:
        """Compile `modules` as `load` would, without installing them; raises PolicyCompileError.

        OPA's REST API has no compile-only call for a set of modules, so the check runs on the
        embedded OPA v1 engine: a policy that would not compile is refused before it is stored
        (the server still compiles it again on `load`).
        """
        with self._write_lock:
            self._check_open()
            if self._checker is None:
                self._checker = EmbeddedOpaEngine()
            checker = self._checker
        checker.check(modules)

    def close(self) -> None:
        """Stop accepting evaluations and close the connections; evaluations in flight fail or finish."""
        with self._write_lock:
            if self._closed:
                return
            self._closed = True
            checker, self._checker = self._checker, None
        self._executor.shutdown(wait=False, cancel_futures=True)
        self._client.close_connection()
        if checker is not None:
            checker.close()

    def __enter__(self) -> RemoteEngine:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _timed_out(exc: Exception) -> bool:
    """Whether the exchange failed for want of time, however requests classed it.

    A read timing out during the TLS handshake reaches the caller as a ConnectionError whose
    urllib3 reason is a ReadTimeoutError. (urllib3 counts a refused connection, NewConnectionError,
    as a kind of timeout too: it is not one.)
    """
    if isinstance(exc, requests.Timeout):
        return True
    reason = exc.args[0].reason if exc.args and isinstance(exc.args[0], MaxRetryError) else None
    return isinstance(reason, Urllib3Timeout) and not isinstance(reason, NewConnectionError)


def _bracketed(host: str) -> str:
    """An IPv6 address in brackets, as a URL needs it; other hosts as they are."""
    return f"[{host}]" if ":" in host else host


def _to_json(value: Any, what: str) -> str:
    try:
        return json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise PolicyError(f"the {what} is not JSON: {exc}") from None
