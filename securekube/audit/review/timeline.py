"""Audit timeline: the ordered story of one object or one identity — when, who, what, outcome.

An object is named KIND/NAMESPACE/NAME, or KIND/NAME for a cluster-scoped object (which then
matches in any namespace: upstream records `namespaces/foo` requests with namespace foo). KIND is
a resource plural, a kind or its lower-case form (pods, Pod, pod), optionally with its API group
(deployments.apps). The object's subresources belong to its story (pods/exec, pods/log, .../status).
"""
from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, BinaryIO

from securekube.audit.review import event_fields as ef
from securekube.audit.review.problems import ReadProblems
from securekube.audit.review.query import QueryError, QueryFilter
from securekube.audit.review.reader import LineFilter
from securekube.audit.review.stages import requests

_KIND = re.compile(r"^([A-Za-z0-9-]+)(?:\.([a-z0-9.-]+))?$")
_EARLIEST = datetime.min.replace(tzinfo=timezone.utc)


def plural_candidates(kind: str) -> frozenset[str]:
    """The resource names KIND may stand for: itself lower-cased and its English plural."""
    word = kind.lower()
    if word.endswith(("s", "x", "z", "ch", "sh")):
        plural = word + "es"
    elif word.endswith("y") and word[-2:-1] not in ("a", "e", "i", "o", "u", ""):
        plural = word[:-1] + "ies"
    else:
        plural = word + "s"
    return frozenset({word, plural})


@dataclass(frozen=True)
class ObjectTarget:
    """The object whose story is told."""

    resources: frozenset[str]
    group: str | None
    namespace: str | None  # None: any namespace (KIND/NAME)
    name: str

    @classmethod
    def parse(cls, text: str) -> "ObjectTarget":
        parts = text.strip().split("/")
        if len(parts) not in (2, 3) or not all(parts):
            raise QueryError(f"cannot read object {text!r}: use KIND/NAMESPACE/NAME, or KIND/NAME for a "
                             f"cluster-scoped object (e.g. pods/team-a/web, Secret/team-a/db, nodes/node-1)")
        match = _KIND.match(parts[0])
        if not match:
            raise QueryError(f"cannot read kind {parts[0]!r}: use e.g. pods, Pod, deployments.apps")
        namespace = parts[1] if len(parts) == 3 else None
        return cls(plural_candidates(match.group(1)), match.group(2), namespace, parts[-1])

    def matches(self, event: Mapping[str, Any]) -> bool:
        return (ef.name(event) == self.name and ef.resource(event) in self.resources
                and (self.namespace is None or ef.namespace(event) == self.namespace)
                and (self.group is None or ef.api_group(event) == self.group))

    def line_filter(self) -> LineFilter | None:
        groups = [(self.name,), tuple(sorted(self.resources))]
        if self.namespace is not None:
            groups.append((self.namespace,))
        return LineFilter.for_values(groups)


@dataclass(frozen=True)
class TimelineEntry:
    time: str
    user: str
    verb: str
    object: str
    code: int | None
    decision: str
    source_ip: str
    user_agent: str

    @classmethod
    def of(cls, event: Mapping[str, Any]) -> "TimelineEntry":
        return cls(ef.timestamp_text(event), ef.user_label(event), ef.verb(event), ef.object_label(event),
                   ef.code(event), ef.decision(event), ef.source_ip(event), ef.user_agent(event))


def timeline(paths: Sequence[str], problems: ReadProblems, target: ObjectTarget | None = None,
             user: str | None = None, since: datetime | None = None, until: datetime | None = None,
             stdin: BinaryIO | None = None) -> list[TimelineEntry]:
    """The requests on `target` or by `user` (as user or impersonated user), oldest first."""
    if (target is None) == (user is None):
        raise QueryError("give exactly one of an object or a user")
    window = QueryFilter(users=(user,) if user else (), since=since, until=until)
    in_window = window.predicate()
    line_filter = window.line_filter() if target is None else target.line_filter()

    def matches(event: Mapping[str, Any]) -> bool:
        return in_window(event) and (target is None or target.matches(event))

    found: list[tuple[datetime, int, TimelineEntry]] = []
    for record in requests(paths, problems, line_filter, matches, stdin):
        found.append((ef.received_at(record.event) or _EARLIEST, len(found), TimelineEntry.of(record.event)))
    found.sort(key=lambda item: item[:2])  # by time; the log's order breaks ties
    return [entry for _, _, entry in found]
