"""Coverage of Rego modules over a test run, merged from the engine's per-evaluation reports.

Each traced evaluation reports, per module, the source ranges it evaluated and those it did not
(as `opa test --coverage` does). A line counts as covered when any evaluation of the run covered
it, and as not covered when some evaluation reported it and none covered it.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["CoverageAccumulator", "FileCoverage"]


@dataclass(frozen=True)
class FileCoverage:
    """The coverage of one module: line numbers evaluated and not evaluated."""

    path: str
    covered: frozenset[int]
    not_covered: frozenset[int]

    @property
    def percent(self) -> float:
        total = len(self.covered) + len(self.not_covered)
        return 100.0 if total == 0 else 100.0 * len(self.covered) / total

    def uncovered_ranges(self) -> str:
        """The lines never evaluated, as compact ranges: "4-6, 9"."""
        return _ranges(sorted(self.not_covered))


class CoverageAccumulator:
    """Collects the reports of one run; not shared between threads."""

    def __init__(self) -> None:
        self._covered: dict[str, set[int]] = {}
        self._seen: dict[str, set[int]] = {}

    def add(self, report: Mapping[str, Any] | None) -> None:
        """Merge one evaluation's report; a missing or malformed report adds nothing."""
        files = report.get("files") if isinstance(report, Mapping) else None
        if not isinstance(files, Mapping):
            return
        for path, entry in files.items():
            if not isinstance(entry, Mapping):
                continue
            covered = self._covered.setdefault(str(path), set())
            seen = self._seen.setdefault(str(path), set())
            for line in _lines(entry.get("covered")):
                covered.add(line)
                seen.add(line)
            seen.update(_lines(entry.get("not_covered")))

    def file(self, path: str) -> FileCoverage | None:
        if path not in self._seen:
            return None
        covered = frozenset(self._covered.get(path, ()))
        return FileCoverage(path, covered, frozenset(self._seen[path] - covered))

    def files(self) -> tuple[FileCoverage, ...]:
        return tuple(f for path in sorted(self._seen) if (f := self.file(path)) is not None)


def _lines(ranges: Any) -> Iterable[int]:
    if not isinstance(ranges, list):
        return
    for item in ranges:
        try:
            start, end = int(item["start"]["row"]), int(item["end"]["row"])
        except (KeyError, TypeError, ValueError):
            continue
        yield from range(start, max(start, end) + 1)


def _ranges(lines: list[int]) -> str:
    parts: list[str] = []
    index = 0
    while index < len(lines):
        first = last = lines[index]
        while index + 1 < len(lines) and lines[index + 1] == last + 1:
            index += 1
            last = lines[index]
        parts.append(str(first) if first == last else f"{first}-{last}")
        index += 1
    return ", ".join(parts)
