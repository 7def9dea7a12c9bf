"""The Go garbage-collector setting the embedded OPA engine runs with, and how it reaches the engine.

The embedded engine is Go code loaded into this process (see embedded.py). Go's runtime reads GOGC
once, from the environment block the process was started with: not from libc's `environ`, so
`os.environ` changes made by Python, even before the library loads, are never seen (measured).
Commands that evaluate policies for as long as they run (`up`, `policy serve`, `policy replay`)
therefore start themselves over once, with GOGC in their environment, before doing anything else.

Why GOGC=1000: an evaluation of the shipped admission policies allocates a few hundred kilobytes
that are garbage at once, so at Go's default (100) the collector runs every few requests and its
pauses and assists make the slow tail. Measured on one evaluation of the 8 shipped admission
policies for an allowed pod (2 vCPUs): p99 3.7–4.1 ms at the default, 1.3–1.4 ms at 1000, for about
36 MB more resident memory (docs/benchmarks.md has the request-level figures). GOGC is a ratio, so a large live heap (a big data.inventory)
still gets collected in proportion, which a fixed GOMEMLIMIT with GOGC=off would not guarantee.

A GOGC or GOMEMLIMIT the user set is left as it is. The setting is for this process's engine only:
once the engine's library has loaded (and its runtime has read GOGC), `keep_from_children` takes it
out of the environment that child processes inherit, so containerd, its shims and runc started by
the node run with their own defaults. A marker variable says the setting is ours, and also stops a
second restart should GOGC ever go missing on the way.
"""
from __future__ import annotations

import os
import sys

ENGINE_GOGC = "1000"
_USER_SETTINGS = ("GOGC", "GOMEMLIMIT")
_MARKER = "SECUREKUBE_ENGINE_GOGC"  # set with GOGC by the restart: the setting is securekube's


def needs_restart() -> bool:
    """Whether this process runs without any Go collector setting (so the engine's default would apply)."""
    return not any(name in os.environ for name in (*_USER_SETTINGS, _MARKER))


def keep_from_children() -> None:
    """Takes the GOGC this module set out of the environment child processes inherit.

    Call it only once the engine's Go runtime has started (it read GOGC then, from the
    environment the process began with, which this does not change). A GOGC the user set stays.
    """
    if os.environ.get(_MARKER) == ENGINE_GOGC:
        if os.environ.get("GOGC") == ENGINE_GOGC:
            del os.environ["GOGC"]
        del os.environ[_MARKER]


def restart_with_engine_gc() -> None:
    """Replaces this process (same PID and arguments) by one whose environment sets GOGC.

    Call it first thing, only in a process started for the command (never from a library call or a
    test's in-process `main`), and only when `needs_restart()`: the new process then finds GOGC
    set and goes on. When exec fails the command goes on with Go's default, a slower tail but the
    same decisions.
    """
    environment = dict(os.environ, GOGC=ENGINE_GOGC, **{_MARKER: ENGINE_GOGC})
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execve(sys.executable, sys.orig_argv, environment)
    except (OSError, ValueError):  # ValueError: an embedding host without an argv to repeat
        return
