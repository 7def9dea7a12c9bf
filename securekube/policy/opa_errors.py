"""OPA's located errors, as its REST API sends them (JSON) and as its Go code prints them (text).

OPA's REST API reports a failure as `{"code", "message", "errors": [...]}`; each entry of
`errors` has its own `code` (`rego_parse_error`, `rego_type_error`, `eval_conflict_error`, ...),
`message` and `location` (`file`, `row`, `col`), and parse errors add `details` (`line`: the
source line, `idx`: the byte offset in it). The embedded engine reports the same errors as the
text OPA's Go code prints for them: `file:row: code: message`, for parse errors followed by the
source line and a caret under the column, several compile errors under `N errors occurred:`.

The remote engine renders the JSON as that text, so both engines raise the same shape of error
(and `compile_errors.with_columns` finds the column in either); the OPA server shim reads the
embedded engine's text back into entries and sends them as JSON.
"""
from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

__all__ = [
    "RegoError",
    "error_to_json",
    "errors_from_json",
    "parse_rendered",
    "render",
    "render_all",
    "with_source_lines",
]

# One printed error: `where:number: code: message`. `where` is a file (then `number` is the row)
# or, for errors in a query (which has no file), the row (then `number` is the column).
_PRINTED_ERROR = re.compile(r"^(?P<where>.+?):(?P<number>\d+): (?P<code>(?:rego|eval)_[a-z_]+): (?P<message>.*)$")
# The head of a list of compile errors: `1 error occurred: <error>` or `N errors occurred:`.
_ERRORS_HEADER = re.compile(r"^(?:1 error occurred: |\d+ errors occurred:$)")
_CARET_LINE = re.compile(r"^\t( *)\^$")
_COMPILE_CODE_PREFIX = "rego_"


@dataclass(frozen=True)
class RegoError:
    """One located error of OPA's: parse, compile or evaluation."""

    code: str
    message: str
    file: str = ""  # the module (its policy id); empty for errors in a query
    row: int = 0  # 1-based; 0 when OPA gave no location
    col: int = 0  # 1-based byte column; 0 when unknown
    source_line: str | None = None  # parse errors: the whole source line (OPA's details.line)
    offset: int = 0  # where in source_line the error is (OPA's details.idx)

    @property
    def is_compile_error(self) -> bool:
        """Parse and compile errors (`rego_*`), as opposed to evaluation errors (`eval_*`)."""
        return self.code.startswith(_COMPILE_CODE_PREFIX)


def errors_from_json(items: Any) -> tuple[RegoError, ...]:
    """The entries of an OPA error body's `errors`; anything that is not an entry is skipped."""
    if not isinstance(items, list):
        return ()
    return tuple(error for item in items if (error := _error_from_json(item)) is not None)


def _error_from_json(item: Any) -> RegoError | None:
    if not isinstance(item, Mapping) or not isinstance(item.get("code"), str):
        return None
    message = item.get("message")
    location = item.get("location") if isinstance(item.get("location"), Mapping) else {}
    details = item.get("details") if isinstance(item.get("details"), Mapping) else {}
    line, idx = details.get("line"), details.get("idx")
    parser_details = isinstance(line, str) and isinstance(idx, int) and not isinstance(idx, bool)
    return RegoError(
        code=item["code"],
        message=message if isinstance(message, str) else "",
        file=location.get("file") if isinstance(location.get("file"), str) else "",
        row=_non_negative(location.get("row")),
        col=_non_negative(location.get("col")),
        source_line=line if parser_details else None,
        offset=max(idx, 0) if parser_details else 0,
    )


def _non_negative(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def error_to_json(error: RegoError) -> dict[str, Any]:
    """One entry of an OPA error body's `errors`."""
    entry: dict[str, Any] = {"code": error.code, "message": error.message}
    if error.file or error.row:
        entry["location"] = {"file": error.file, "row": error.row, "col": error.col}
    if error.source_line is not None:
        entry["details"] = {"line": error.source_line, "idx": error.offset}
    return entry


def render(error: RegoError) -> str:
    """The error as OPA's Go code prints it (`file:row: code: message` and any source lines)."""
    text = f"{error.code}: {error.message}"
    if error.file:
        text = f"{error.file}:{error.row}: {text}"
    elif error.row:
        text = f"{error.row}:{error.col}: {text}"
    if error.source_line is not None:
        # As OPA prints parser details: the line without its leading tabs, a caret under the spot.
        shown = error.source_line.lstrip("\t")
        indent = max(error.offset - (len(error.source_line) - len(shown)), 0)
        text += f"\n\t{shown}\n\t{' ' * indent}^"
    return text


def render_all(errors: Iterable[RegoError]) -> str:
    """Several errors as OPA prints them: compile errors under `N errors occurred:`, others one a line."""
    errors = tuple(errors)
    if not errors:
        return "no error(s)"
    if not all(error.is_compile_error for error in errors):
        return "\n".join(render(error) for error in errors)
    if len(errors) == 1:
        return f"1 error occurred: {render(errors[0])}"
    return f"{len(errors)} errors occurred:\n" + "\n".join(render(error) for error in errors)


def with_source_lines(errors: Iterable[RegoError], sources: Mapping[str, str]) -> tuple[RegoError, ...]:
    """The errors, each compile error with a column but no source line given the line from `sources`.

    OPA sends the source line only for parse errors; with it, a type or safety error is printed
    with a caret as well, so its column is not lost on the way to the policy author.
    """
    completed = []
    for error in errors:
        if error.source_line is None and error.is_compile_error and error.col and error.file in sources:
            lines = sources[error.file].split("\n")
            if 1 <= error.row <= len(lines):
                error = replace(error, source_line=lines[error.row - 1], offset=error.col - 1)
        completed.append(error)
    return tuple(completed)


def parse_rendered(text: str, sources: Mapping[str, str], files: Collection[str] = ()) -> tuple[RegoError, ...]:
    """The compile errors in `text` as OPA's Go code prints them (what `render_all` writes).

    `sources` (module name -> Rego text) gives back the leading tabs OPA leaves out of printed
    source lines, so a caret's position becomes the exact column. A `where` that is a number
    and no known file (`files` and the keys of `sources`) is a query's row. Lines that are no
    error are kept with the message of the error above them.
    """
    known_files = set(files) | set(sources)
    errors: list[RegoError] = []
    lines = text.split("\n")
    if lines and _ERRORS_HEADER.match(lines[0]):
        lines[0] = _ERRORS_HEADER.sub("", lines[0])
    index = 0
    while index < len(lines):
        line = lines[index]
        match = _PRINTED_ERROR.match(line)
        if match is None:
            if errors and line:
                last = errors[-1]
                errors[-1] = replace(last, message=f"{last.message}\n{line}")
            index += 1
            continue
        where, number = match.group("where"), int(match.group("number"))
        if where.isdigit() and where not in known_files:
            error = RegoError(match.group("code"), match.group("message"), row=int(where), col=number)
        else:
            error = RegoError(match.group("code"), match.group("message"), file=where, row=number)
        caret = _CARET_LINE.match(lines[index + 2]) if index + 2 < len(lines) else None
        if caret is not None and lines[index + 1].startswith("\t"):
            error = _with_caret(error, lines[index + 1][1:], len(caret.group(1)), sources)
            index += 3
        else:
            index += 1
        errors.append(error)
    return tuple(errors)


def _with_caret(error: RegoError, shown: str, indent: int, sources: Mapping[str, str]) -> RegoError:
    source_line = shown
    if error.file in sources:
        lines = sources[error.file].split("\n")
        if 1 <= error.row <= len(lines) and lines[error.row - 1].lstrip("\t") == shown:
            source_line = lines[error.row - 1]
    offset = indent + len(source_line) - len(source_line.lstrip("\t"))
    col = offset + 1 if error.file else error.col
    return replace(error, col=col, source_line=source_line, offset=offset)
