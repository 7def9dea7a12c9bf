"""One event per request: the audit log has one line per stage, a review wants one row per request.

kube-apiserver logs a request at RequestReceived, ResponseStarted (long-running requests only) and
ResponseComplete or Panic; a failed authentication gets a single ResponseStarted event with code
401. The final stage has the most information (response code, decision), so it stands for the
request; a request whose final stage is not in the input (an exec session still open, a log cut
off) is still shown, by its latest stage, at the end — hiding it could hide exactly the request a
reviewer looks for.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, BinaryIO

from securekube.audit.review.event_fields import FINAL_STAGES
from securekube.audit.review.problems import ReadProblems
from securekube.audit.review.reader import LineFilter, LogLine, PendingLine, read_deferring, read_events

Matcher = Callable[[Mapping[str, Any]], bool]


def requests(paths: Sequence[str], problems: ReadProblems, line_filter: LineFilter | None = None,
             matches: Matcher | None = None, stdin: BinaryIO | None = None) -> Iterator[LogLine]:
    """The requests of the inputs, one event each, that `matches` (all when None).

    `line_filter` must admit every line `matches` could accept (QueryFilter.line_filter does).
    """
    if line_filter is not None:
        return one_per_request(read_events(paths, problems, line_filter, stdin), problems, matches)
    return one_per_request(read_deferring(paths, problems, stdin), problems, matches)


def one_per_request(records: Iterable[LogLine | PendingLine], problems: ReadProblems,
                    matches: Matcher | None = None) -> Iterator[LogLine]:
    """The final event of each request as it comes, then the latest event of unfinished requests.

    A request is represented by one event and kept if that event `matches`. Events without an
    auditID cannot be grouped and each stands for itself. PendingLines (intermediate stages the
    reader did not parse) are parsed only if no final stage of their request turns up.
    """
    pending: dict[str, LogLine | PendingLine] = {}
    for record in records:
        if type(record) is PendingLine:
            pending[record.audit_id] = record
            continue
        event = record.event
        audit_id = event.get("auditID")
        if type(audit_id) is not str or not audit_id:
            if matches is None or matches(event):
                yield record
        elif event.get("stage") in FINAL_STAGES or _failed_authentication(event):
            if pending:
                pending.pop(audit_id, None)
            if matches is None or matches(event):
                yield record
        else:
            pending[audit_id] = record  # a later stage replaces an earlier one
    for leftover in pending.values():
        resolved = leftover.resolve(problems) if type(leftover) is PendingLine else leftover
        if resolved is not None and (matches is None or matches(resolved.event)):
            yield resolved


def _failed_authentication(event: Mapping[str, Any]) -> bool:
    """Upstream's failed-authentication event: ResponseStarted with 401, and never another stage."""
    status = event.get("responseStatus")
    return type(status) is dict and status.get("code") == 401
