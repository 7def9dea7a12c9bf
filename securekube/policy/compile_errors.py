"""OPA's compile and parse errors as `file:line:column: code: text`, one per line.

OPA's messages name the file and line; for parse errors it also prints the offending source line
with a caret under the column (both indented by a tab). Policy authors want the column on the
same line as the file, as compilers print it, and no stray source excerpts; errors without a
caret keep `file:line`.
"""
from __future__ import annotations

import re

__all__ = ["with_columns"]

_LOCATED_ERROR = re.compile(r"(?P<file>[^\s:][^\s]*?):(?P<line>\d+): (?P<code>rego_[a-z_]+): (?P<text>.*)$")


def with_columns(message: str) -> str:
    lines = message.split("\n")
    out: list[str] = []
    index = 0
    while index < len(lines):
        match = _LOCATED_ERROR.search(lines[index])
        if not match:
            if lines[index].strip() and not lines[index].startswith("\t"):
                out.append(lines[index])
            index += 1
            continue
        location = f"{match.group('file')}:{match.group('line')}"
        caret = lines[index + 2] if index + 2 < len(lines) else ""
        if caret.startswith("\t") and caret.strip() == "^":
            location += f":{caret[1:].index('^') + 1}"
            index += 3
        else:
            index += 1
        out.append(f"{location}: {match.group('code')}: {match.group('text')}")
    return "\n".join(out)
