"""Queries that bind one data reference (`result := data.a["b"].c`), and the Data API path they read.

OPA's Query API (`POST /v1/query`) has no strict-builtin-errors: a built-in that fails (a
division by zero, a bad regular expression, a timestamp that does not parse) makes its
expression undefined, so a `deny` rule that trips on a crafted input simply produces no
message - a silent allow. The Data API (`POST /v1/data/<path>?strict-builtin-errors=true`)
can make such a failure an error, as the embedded engine always does. So a query that only
binds a variable to one data reference - the admission stage's and the test runner's queries
are of that kind - is asked of the Data API instead; `result := data.a.b` and the document at
`/v1/data/a/b` are the same value.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from urllib.parse import quote

__all__ = ["DataRef", "data_ref_of", "ref_query"]

_IDENTIFIER = r"[A-Za-z_][A-Za-z0-9_]*"
_STRING = r'"(?:[^"\\]|\\.)*"'
_REF_QUERY = re.compile(rf"\s*(?P<var>{_IDENTIFIER})\s*:=\s*data(?P<ref>(?:\.{_IDENTIFIER}|\[{_STRING}\])+)\s*")
_SEGMENT = re.compile(rf"\.(?P<name>{_IDENTIFIER})|\[(?P<quoted>{_STRING})\]")
_WILDCARD = "_"


@dataclass(frozen=True)
class DataRef:
    """The variable a query binds and the data path (segments below `data`) it binds it to."""

    var: str
    segments: tuple[str, ...]

    @property
    def url_path(self) -> str:
        """The path below /v1/data, each segment escaped (OPA unescapes them one by one)."""
        return "/".join(quote(segment, safe="") for segment in self.segments)


def data_ref_of(query: str) -> DataRef | None:
    """The data reference `query` binds, or None if it is any other query."""
    match = _REF_QUERY.fullmatch(query)
    if match is None or match.group("var") == _WILDCARD:
        return None
    segments = []
    for part in _SEGMENT.finditer(match.group("ref")):
        name = part.group("name")
        segment = name if name is not None else json.loads(part.group("quoted"))  # Rego strings are JSON strings
        # OPA reads a path segment that is an integer as an array index, and skips an empty one.
        if not segment or segment.lstrip("+-").isdigit():
            return None
        segments.append(segment)
    return DataRef(match.group("var"), tuple(segments))


def ref_query(var: str, segments: tuple[str, ...] | list[str]) -> str:
    """The query binding `var` to the document at `segments` (every segment quoted, so any is valid)."""
    return f"{var} := data" + "".join(f"[{json.dumps(segment)}]" for segment in segments)
