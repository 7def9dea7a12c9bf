"""The embedded OPA engine: the real OPA v1 Rego engine, running inside this process.

It is built on opa-golib-python-bindings (module `opa_bindings`: a ctypes wrapper around OPA's
Go `rego` package). What that binding does and does not do shapes this module:

- A binding engine runs one evaluation at a time (it serialises evaluations with a lock), but
  separate binding engines are independent and their Go code runs without holding the GIL. For
  concurrent evaluations this engine therefore keeps a pool of binding engines, at most
  `max_concurrent_evaluations` of them.
- The binding has no timeout and no way to cancel an evaluation. Each binding engine therefore
  lives on its own worker thread and the caller waits for the answer at most `timeout` seconds,
  then gives up with `PolicyTimeout`. The abandoned evaluation runs to its end on its worker,
  which then closes its binding engine and exits. Until then it keeps its pool slot, so slow
  policies can never run more evaluations at once than the pool allows; when every slot is
  held, a new evaluation waits for one within its own timeout and fails if none frees.
- Modules are parsed when added but compiled on the first evaluation, so `load` builds a
  throw-away binding engine and evaluates a trivial query to surface compile errors before the
  new modules replace the old ones.
- Rego `print()` output is dropped: it can carry input values, which must not reach a log.
- The input crosses into Go as JSON text. It is serialised once, in the caller's thread, and
  that text goes to OPA unchanged (see `_eval_json`): the binding's public `eval_query` takes
  Python objects and would serialise them a second time.
- The Go runtime inside the binding reads its settings (GOGC, GOMAXPROCS) from the environment
  the process was started with, not from `os.environ`: setting them here, even before the
  library loads, has no effect (measured). Garbage collection is about a quarter of the CPU an
  evaluation takes and makes its slow tail, so the long-running commands start themselves over
  with GOGC set (go_runtime.py).
- The binding can trace an evaluation for coverage (`evaluate_with_coverage`, for the test
  runner): the report lists, per module, the source ranges evaluated and those not evaluated.
"""
from __future__ import annotations

import importlib
import json
import math
import queue
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from securekube.policy import go_runtime
from securekube.policy.interfaces import PolicyCompileError, PolicyError, PolicyTimeout, QueryResult

__all__ = [
    "BINDING_MODULE",
    "CoverageReport",
    "EmbeddedEngineConfig",
    "EmbeddedOpaEngine",
    "embedded_engine_available",
]

# The binding's coverage report of one evaluation: {"files": {module: {"covered": [ranges],
# "not_covered": [ranges], ...}}, ...}, a range being {"start": {"row", "col"}, "end": {...}}.
CoverageReport = Mapping[str, Any]

BINDING_MODULE = "opa_bindings"
_BINDING_PACKAGE = "opa-golib-python-bindings"
# Evaluating anything makes the binding compile every module ("bundle activation").
_COMPILE_CHECK_QUERY = "true"


def embedded_engine_available() -> bool:
    """Whether the OPA binding can be imported (the embedded engine needs it)."""
    try:
        importlib.import_module(BINDING_MODULE)
    except ImportError:
        return False
    return True


def _import_binding() -> ModuleType:
    try:
        return importlib.import_module(BINDING_MODULE)
    except ImportError as exc:
        raise PolicyError(
            f"the embedded OPA engine needs the {_BINDING_PACKAGE} package (module {BINDING_MODULE}): {exc}"
        ) from None


@dataclass(frozen=True)
class EmbeddedEngineConfig:
    """Limits of the embedded engine."""

    # Binding engines evaluating at once; also the most threads a run of slow policies can occupy.
    max_concurrent_evaluations: int = 4

    def __post_init__(self) -> None:
        if self.max_concurrent_evaluations < 1:
            raise ValueError("max_concurrent_evaluations must be at least 1")


@dataclass(frozen=True)
class _Snapshot:
    """The modules and data every binding engine should hold. Replaced whole, never changed."""

    generation: int
    modules: tuple[tuple[str, str], ...]
    data_json: str  # JSON text, so no caller can change what the engines are built from


def _drop_print(message: str, location: str) -> None:
    """Rego print() output goes nowhere: it may contain input values."""


def _build_binding_engine(binding: ModuleType, snapshot: _Snapshot) -> Any:
    engine = binding.OpaEngine()
    try:
        engine.print_handler = _drop_print
        for name, source in snapshot.modules:
            engine.add_policy(name, source)
        data = json.loads(snapshot.data_json)
        if data:
            engine.add_data(data)
    except BaseException:
        engine.close()
        raise
    return engine


def _takes_json_input(engine: Any) -> bool:
    """Whether `engine` has the internals `_eval_json` uses (those of opa-golib-python-bindings 0.4.4)."""
    return (callable(getattr(engine, "_call", None)) and callable(getattr(engine, "_eval_reset", None))
            and callable(getattr(engine, "_eval_result", None)) and hasattr(engine, "_eval_lock")
            and hasattr(getattr(engine, "_lib", None), "OpaEvalQuery"))


def _eval_json(engine: Any, query: str, input_json: bytes | None, coverage: bool) -> list[Any]:
    """`engine.eval_query(query, input, coverage=...)` for an input that is already JSON text.

    The binding's own eval_query JSON-encodes its input; a worker holding the caller's JSON text
    would have to decode it just to have it encoded again. Decoding and re-encoding cost about a
    fifth of a short evaluation (measured: 70 of 320 µs for an AdmissionReview of a small pod), so
    this does what eval_query does with the text as it is: the same native call, under the same
    lock, with the same print and coverage handling. It relies on the binding's internals, which
    is why the binding is pinned and a test checks that this path is taken and agrees with
    eval_query; an engine without them gets `_eval_decoded` instead.
    """
    if "\0" in query:  # a C string ends at the first NUL: never let a query be cut short
        raise PolicyError("the query contains a NUL character")
    with engine._eval_lock:
        engine._eval_reset()
        envelope = engine._call(engine._lib.OpaEvalQuery, query.encode("utf-8"), input_json or b"",
                                int(coverage), 0)
        rows = engine._eval_result(envelope)
    return [row.get("bindings", {}) for row in rows] if rows else []


def _eval_decoded(engine: Any, query: str, input_json: bytes | None, coverage: bool) -> list[Any]:
    """`_eval_json` through the binding's public API (for a binding without the internals)."""
    input_doc = None if input_json is None else json.loads(input_json)
    return engine.eval_query(query, input_doc, coverage=coverage)


def _binding_error(binding: ModuleType, exc: Exception, error_type: type[PolicyError] = PolicyError) -> PolicyError:
    if isinstance(exc, binding.OpaError):
        return error_type(f"{exc.code}: {exc.message}")
    return error_type(f"policy engine failure: {type(exc).__name__}: {exc}")


class _Job:
    """One evaluation handed to a worker, and its answer once the worker has one."""

    def __init__(self, snapshot: _Snapshot, query: str, input_json: bytes | None, coverage: bool = False) -> None:
        self.snapshot = snapshot
        self.query = query
        self.input_json = input_json
        self.coverage = coverage
        self._lock = threading.Lock()
        # Held until the answer is in: a bare lock is the cheapest cross-thread wake-up (an
        # Event adds a Condition and costs a measurable share of a short evaluation).
        self._done = threading.Lock()
        self._done.acquire()
        self._finished = False
        self._abandoned = False
        self._result: QueryResult = ()
        self._error: PolicyError | None = None
        self._coverage_report: CoverageReport | None = None

    def finish(self, result: QueryResult, error: PolicyError | None, report: CoverageReport | None = None) -> bool:
        """Record the answer; True when the caller had already given up waiting for it."""
        with self._lock:
            self._result, self._error, self._coverage_report = result, error, report
            self._finished = True
            self._done.release()
            return self._abandoned

    def wait(self, timeout: float) -> bool:
        return self._done.acquire(timeout=timeout)

    def abandon(self) -> bool:
        """Stop waiting for the answer; False when it arrived meanwhile (then use it)."""
        with self._lock:
            if self._finished:
                return False
            self._abandoned = True
            return True

    def answer(self) -> QueryResult:
        if self._error is not None:
            raise self._error
        return self._result

    def coverage_report(self) -> CoverageReport | None:
        return self._coverage_report


class _Worker:
    """A binding engine and the one thread that makes every call into it.

    A worker whose job was abandoned (timed out) finishes that job, closes its binding engine,
    gives back the pool slot the job held, and exits.
    """

    def __init__(self, binding: ModuleType, release_slot: Callable[[], None]) -> None:
        self._binding = binding
        self._release_slot = release_slot
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._engine: Any = None
        self._eval: Callable[[Any, str, bytes | None, bool], list[Any]] = _eval_decoded
        self._generation = -1
        threading.Thread(target=self._run, name="securekube-opa-eval", daemon=True).start()

    def submit(self, job: _Job) -> None:
        self._jobs.put(job)

    def stop(self) -> None:
        self._jobs.put(None)

    def _run(self) -> None:
        abandoned = False
        try:
            while (job := self._jobs.get()) is not None:
                result, error, report = self._evaluate(job)
                if job.finish(result, error, report):
                    abandoned = True
                    break
        finally:
            self._close_engine()
            if abandoned:
                self._release_slot()

    def _evaluate(self, job: _Job) -> tuple[QueryResult, PolicyError | None, CoverageReport | None]:
        try:
            engine = self._engine_for(job.snapshot)
            rows = self._eval(engine, job.query, job.input_json, job.coverage)
            report = engine.last_coverage if job.coverage else None
        except Exception as exc:  # whatever failed, the caller gets an error, never an answer
            return (), _binding_error(self._binding, exc), None
        return tuple(rows), None, report

    def _engine_for(self, snapshot: _Snapshot) -> Any:
        if self._engine is None or self._generation != snapshot.generation:
            self._close_engine()
            self._engine = _build_binding_engine(self._binding, snapshot)
            self._eval = _eval_json if _takes_json_input(self._engine) else _eval_decoded
            self._generation = snapshot.generation
        return self._engine

    def _close_engine(self) -> None:
        if self._engine is not None:
            self._engine.close()
            self._engine = None


def _stop_workers(idle: list[_Worker]) -> None:
    while idle:
        idle.pop().stop()


class EmbeddedOpaEngine:
    """The OPA engine in this process; a `PolicyEngine`. Safe to share between threads.

    `load` and `set_data` validate the new state completely (parse and compile) before it
    replaces the old one; evaluations already running finish on the state they started with.
    """

    def __init__(self, config: EmbeddedEngineConfig = EmbeddedEngineConfig()) -> None:
        self._binding = _import_binding()
        self._config = config
        self._lock = threading.Lock()  # guards _snapshot, _idle, _closed
        self._write_lock = threading.Lock()  # one load/set_data at a time: validate, then publish
        self._snapshot = _Snapshot(generation=0, modules=(), data_json="{}")
        self._idle: list[_Worker] = []
        self._slots = threading.BoundedSemaphore(config.max_concurrent_evaluations)
        self._closed = False
        # Idle workers block on their queues forever; stop them when the engine goes away unclosed.
        self._stop_idle_workers = weakref.finalize(self, _stop_workers, self._idle)
        # Fail at start-up, not on the first request, when the shared library cannot be loaded.
        self._validate(self._snapshot)
        go_runtime.keep_from_children()  # the library's Go runtime has read its settings now

    # -- state ---------------------------------------------------------------------------

    def load(self, modules: Mapping[str, str]) -> None:
        items = tuple(modules.items())
        for name, source in items:
            if not isinstance(name, str) or not isinstance(source, str):
                raise TypeError("modules must map module names (str) to Rego source text (str)")
        with self._write_lock:
            self._replace(modules=items, data_json=self._snapshot.data_json)

    def check(self, modules: Mapping[str, str]) -> None:
        """Parse and compile `modules` with the current data as `load` would, without loading them.

        For refusing an invalid policy before it is stored; raises PolicyCompileError.
        """
        items = tuple(modules.items())
        for name, source in items:
            if not isinstance(name, str) or not isinstance(source, str):
                raise TypeError("modules must map module names (str) to Rego source text (str)")
        self._validate(_Snapshot(generation=-1, modules=items, data_json=self._snapshot.data_json))

    def set_data(self, data: Mapping[str, Any]) -> None:
        if not isinstance(data, Mapping):
            raise TypeError("the data document must be a mapping")
        data_json = _to_json(dict(data), "data document")
        with self._write_lock:
            self._replace(modules=self._snapshot.modules, data_json=data_json)

    def _replace(self, *, modules: tuple[tuple[str, str], ...], data_json: str) -> None:
        candidate = _Snapshot(generation=self._snapshot.generation + 1, modules=modules, data_json=data_json)
        self._validate(candidate)
        with self._lock:
            self._snapshot = candidate  # idle workers rebuild their engines on their next job

    def _validate(self, snapshot: _Snapshot) -> None:
        try:
            engine = _build_binding_engine(self._binding, snapshot)
        except Exception as exc:
            raise _binding_error(self._binding, exc, PolicyCompileError) from None
        try:
            engine.eval_query(_COMPILE_CHECK_QUERY)
        except Exception as exc:
            raise _binding_error(self._binding, exc, PolicyCompileError) from None
        finally:
            engine.close()

    # -- evaluation ----------------------------------------------------------------------

    def evaluate(self, query: str, input_doc: Any = None, *, timeout: float) -> QueryResult:
        return self._run(query, input_doc, timeout=timeout, coverage=False).answer()

    def evaluate_with_coverage(
        self, query: str, input_doc: Any = None, *, timeout: float
    ) -> tuple[QueryResult, CoverageReport | None]:
        """`evaluate`, traced: also the coverage report of this evaluation (None if the binding gave none).

        Tracing makes an evaluation several times slower; it is for test runs, not requests.
        """
        job = self._run(query, input_doc, timeout=timeout, coverage=True)
        return job.answer(), job.coverage_report()

    def _run(self, query: str, input_doc: Any, *, timeout: float, coverage: bool) -> _Job:
        if not (math.isfinite(timeout) and timeout > 0):
            raise ValueError("timeout must be a positive number of seconds")
        # Serialised here, in the caller's thread: the worker may outlive this call (timeout)
        # and must never read an object the caller goes on to change.
        input_json = None if input_doc is None else _input_json(input_doc)
        deadline = time.monotonic() + timeout
        if not self._slots.acquire(timeout=timeout):
            raise PolicyTimeout(f"no policy engine became free within {timeout:g}s")
        caller_holds_slot = True
        try:
            worker, snapshot = self._checkout()
            job = _Job(snapshot, query, input_json, coverage)
            worker.submit(job)
            if not job.wait(max(0.0, deadline - time.monotonic())) and job.abandon():
                caller_holds_slot = False  # the worker gives it back when the evaluation ends
                raise PolicyTimeout(f"policy evaluation did not finish within {timeout:g}s")
            self._checkin(worker)
            return job
        finally:
            if caller_holds_slot:
                self._slots.release()

    def _checkout(self) -> tuple[_Worker, _Snapshot]:
        with self._lock:
            if self._closed:
                raise PolicyError("the policy engine is closed")
            snapshot = self._snapshot
            worker = self._idle.pop() if self._idle else None
        if worker is None:
            worker = _Worker(self._binding, self._slots.release)
        return worker, snapshot

    def _checkin(self, worker: _Worker) -> None:
        with self._lock:
            if not self._closed:
                self._idle.append(worker)
                return
        worker.stop()

    # -- lifecycle -----------------------------------------------------------------------

    def close(self) -> None:
        """Stop the idle workers; evaluations still running finish, later ones raise PolicyError."""
        with self._lock:
            self._closed = True
        self._stop_idle_workers()

    def __enter__(self) -> EmbeddedOpaEngine:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _input_json(input_doc: Any) -> bytes:
    """The input document as the UTF-8 JSON text OPA reads (what the binding itself would send)."""
    try:
        # ensure_ascii=False as in the binding: a lone surrogate, which Go would silently turn
        # into U+FFFD, then fails here instead of reaching OPA as a different string.
        return json.dumps(input_doc, ensure_ascii=False, allow_nan=False).encode("utf-8")
    except UnicodeEncodeError:  # its text quotes the offending input character: leave it out
        raise PolicyError("the input document is not JSON: it contains a lone surrogate") from None
    except (TypeError, ValueError) as exc:
        raise PolicyError(f"the input document is not JSON: {exc}") from None


def _to_json(value: Any, what: str) -> str:
    try:
        return json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise PolicyError(f"the {what} is not JSON: {exc}") from None
