"""ReadProblems: what the reader could not use, or used with a caveat, counted per kind with places.

A review must say what it did not see: a truncated gzip or a garbled line is reported with its file
and line number, never dropped silently and never fatal. Details never quote the line itself (an
audit line can carry a secret's metadata or a request body).
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

# Kinds of problem. SKIPPED kinds lose the line; NOTICE kinds were still read.
MALFORMED_JSON = "malformed JSON"
NOT_AN_OBJECT = "not a JSON object"
NOT_AN_EVENT = "not an audit Event"
UNSUPPORTED_VERSION = "unsupported audit API version"
OLDER_VERSION = "older audit API version, read as audit.k8s.io/v1"
MISSING_VERSION = "no apiVersion or kind, read as an audit.k8s.io/v1 Event"
LINE_TOO_LONG = "line too long"
TRUNCATED_GZIP = "gzip data ends early (truncated file)"
CORRUPT_GZIP = "corrupt gzip data"
UNREADABLE = "read error"
NOTICE_KINDS = frozenset({OLDER_VERSION, MISSING_VERSION})

EXAMPLES_KEPT = 20  # enough to find the first bad places; a million bad lines must not fill memory


@dataclass(frozen=True)
class Problem:
    """One place the reader stumbled: file, 1-based line (0 = the file as a whole), kind, detail."""

    source: str
    line: int
    kind: str
    detail: str = ""

    def __str__(self) -> str:
        where = f"{self.source}:{self.line}" if self.line else self.source
        return f"{where}: {self.kind}" + (f" ({self.detail})" if self.detail else "")


class ReadProblems:
    """Counts of problems per kind, and the first few of them with their places."""

    def __init__(self, examples_kept: int = EXAMPLES_KEPT) -> None:
        self.counts: Counter[str] = Counter()
        self.examples: list[Problem] = []
        self._examples_kept = examples_kept

    def add(self, source: str, line: int, kind: str, detail: str = "") -> None:
        self.counts[kind] += 1
        if len(self.examples) < self._examples_kept:
            self.examples.append(Problem(source, line, kind, detail))

    @property
    def skipped(self) -> int:
        """Lines (or files) whose content could not be used."""
        return sum(n for kind, n in self.counts.items() if kind not in NOTICE_KINDS)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def __bool__(self) -> bool:
        return self.total > 0

    def report_lines(self) -> list[str]:
        """Human-readable: one line per kind with its count, then the first places."""
        if not self:
            return []
        lines = [f"{count} × {kind}" for kind, count in sorted(self.counts.items(), key=lambda kv: (-kv[1], kv[0]))]
        lines += [f"  {problem}" for problem in self.examples]
        if self.total > len(self.examples):
            lines.append(f"  ... and {self.total - len(self.examples)} more")
        return lines

    def as_dict(self) -> dict[str, object]:
        return {
            "total": self.total,
            "skipped": self.skipped,
            "counts": dict(sorted(self.counts.items())),
            "examples": [{"source": p.source, "line": p.line, "kind": p.kind, "detail": p.detail}
                         for p in self.examples],
        }
