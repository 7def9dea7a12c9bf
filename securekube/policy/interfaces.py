"""Policy engines: where Rego modules are loaded and queries are evaluated.

A `PolicyEngine` holds one set of Rego modules and one data document, and evaluates queries
against them with an input document and an explicit timeout. The embedded OPA engine
(`embedded.py`) is the default; a remote OPA server can implement the same protocol.

Every failure is a `PolicyError`: a module that does not parse or compile, an evaluation error,
a timeout. The engine never turns a failure into an empty answer, because an empty answer is a
meaningful result (undefined, or "no denial"); callers making a security decision treat a
`PolicyError` as a deny.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

__all__ = [
    "DEFAULT_EVAL_TIMEOUT",
    "PolicyCompileError",
    "PolicyEngine",
    "PolicyError",
    "PolicyTimeout",
    "QueryResult",
]

# Seconds an authorization-path evaluation may take before it counts as a failure (a deny).
DEFAULT_EVAL_TIMEOUT = 0.1

# One entry per way the query is satisfied: the query's variables bound to JSON values.
# An empty tuple means the query is undefined (no way to satisfy it).
QueryResult = tuple[Mapping[str, Any], ...]


class PolicyError(Exception):
    """The engine could not answer: bad modules, an evaluation error, a timeout, a closed engine."""


class PolicyCompileError(PolicyError):
    """A module does not parse or compile; the message names the module (file) and the line."""


class PolicyTimeout(PolicyError):
    """The evaluation did not finish within its timeout."""


class PolicyEngine(Protocol):
    def load(self, modules: Mapping[str, str]) -> None:
        """Replace every loaded module with `modules` (module name, usually a file path -> Rego text).

        All or nothing: when one module fails to parse or compile this raises
        `PolicyCompileError` and the modules loaded before stay in force.
        """
        ...

    def set_data(self, data: Mapping[str, Any]) -> None:
        """Replace the data document (`data.*` outside the modules' packages); all or nothing."""
        ...

    def evaluate(self, query: str, input_doc: Any = None, *, timeout: float) -> QueryResult:
        """Evaluate `query` (e.g. `x := data.pkg.rule`) with `input_doc` as `input`.

        Raises `PolicyTimeout` when no answer came within `timeout` seconds and `PolicyError`
        for any other failure. Queries should be a fixed set chosen by the caller: engines may
        cache a prepared form of each distinct query.
        """
        ...
