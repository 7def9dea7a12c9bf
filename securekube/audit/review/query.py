"""Audit queries: which requests match a set of filters (all filters must match; a filter's values are alternatives).

A `QueryFilter` gives both the exact test on a parsed event (`predicate`) and the cheap test on
raw lines the reader uses to skip most lines unparsed (`line_filter`). The second is derived from
the first so that they cannot disagree: it only uses values the predicate compares for equality
(or substring), and the reader's LineFilter never rejects a line containing such a value.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, BinaryIO

from securekube.audit.review import event_fields as ef
from securekube.audit.review.problems import ReadProblems
from securekube.audit.review.reader import LineFilter, LogLine, read_events
from securekube.audit.review.stages import requests

DECISIONS = (ef.DECISION_ALLOW, ef.DECISION_FORBID)
_RESOURCE = re.compile(r"^([a-z0-9-]+)(?:\.([a-z0-9.-]+))?(?:/([a-z0-9-]+))?$")

Predicate = Callable[[Mapping[str, Any]], bool]


class QueryError(ValueError):
    """A filter value that cannot mean anything (bad code class, bad resource form, ...)."""


@dataclass(frozen=True)
class ResourceSpec:
    """`pods`, `pods/exec`, `deployments.apps`, `deployments.apps/scale`: resource, API group, subresource.

    Without a subresource it matches the resource and its subresources (`pods` also finds pods/exec).
    """

    resource: str
    group: str | None = None
    subresource: str | None = None

    @classmethod
    def parse(cls, text: str) -> "ResourceSpec":
        match = _RESOURCE.match(text.strip().lower())
        if not match:
            raise QueryError(f"cannot read resource {text!r}: use a plural name as in RBAC rules, e.g. pods, "
                             f"pods/exec, deployments.apps")
        return cls(match.group(1), match.group(2), match.group(3))

    def matches(self, event: Mapping[str, Any]) -> bool:
        return (ef.resource(event) == self.resource
                and (self.group is None or ef.api_group(event) == self.group)
                and (self.subresource is None or ef.subresource(event) == self.subresource))


@dataclass(frozen=True)
class CodeRange:
    """An HTTP status code (`403`) or class (`4xx`), inclusive bounds."""

    low: int
    high: int

    @classmethod
    def parse(cls, text: str) -> "CodeRange":
        text = text.strip().lower()
        if re.fullmatch(r"[1-5]xx", text):
            base = int(text[0]) * 100
            return cls(base, base + 99)
        if re.fullmatch(r"[1-5]\d\d", text):
            return cls(int(text), int(text))
        raise QueryError(f"cannot read response code {text!r}: use e.g. 403, 404 or a class such as 4xx, 5xx")

    def matches(self, code: int | None) -> bool:
        return code is not None and self.low <= code <= self.high


@dataclass(frozen=True)
class QueryFilter:
    """What to look for; empty fields do not filter. Times: since inclusive, until exclusive."""

    users: tuple[str, ...] = ()  # the user or the impersonated user
    groups: tuple[str, ...] = ()
    verbs: tuple[str, ...] = ()
    resources: tuple[ResourceSpec, ...] = ()
    subresources: tuple[str, ...] = ()
    namespaces: tuple[str, ...] = ()
    names: tuple[str, ...] = ()
    since: datetime | None = None
    until: datetime | None = None
    codes: tuple[CodeRange, ...] = ()
    decisions: tuple[str, ...] = ()
    source_ips: tuple[str, ...] = ()
    user_agent: str | None = None  # a substring

    def __post_init__(self) -> None:
        for decision in self.decisions:
            if decision not in DECISIONS:
                raise QueryError(f"unknown decision {decision!r}: use allow or forbid")
        for field_name in ("users", "groups", "verbs", "subresources", "namespaces", "names", "source_ips"):
            if any(not value for value in getattr(self, field_name)):
                raise QueryError(f"empty value for {field_name.replace('_', ' ')}")
        if self.user_agent == "":
            raise QueryError("empty value for user agent")

    def predicate(self) -> Predicate:
        """The exact test on a parsed event."""
        checks: list[Predicate] = []
        if self.users:
            users = frozenset(self.users)
            checks.append(lambda e: ef.user_name(e) in users or ef.impersonated_name(e) in users)
        if self.groups:
            wanted_groups = frozenset(self.groups)
            checks.append(lambda e: not wanted_groups.isdisjoint(ef.groups(e)))
        if self.verbs:
            verbs = frozenset(self.verbs)
            checks.append(lambda e: ef.verb(e) in verbs)
        if self.resources:
            specs = self.resources
            checks.append(lambda e: any(spec.matches(e) for spec in specs))
        if self.subresources:
            subresources = frozenset(self.subresources)
            checks.append(lambda e: ef.subresource(e) in subresources)
        if self.namespaces:
            namespaces = frozenset(self.namespaces)
            checks.append(lambda e: ef.namespace(e) in namespaces)
        if self.names:
            names = frozenset(self.names)
            checks.append(lambda e: ef.name(e) in names)
        if self.codes:
            codes = self.codes
            checks.append(lambda e: any(r.matches(ef.code(e)) for r in codes))
        if self.decisions:
            decisions = frozenset(self.decisions)
            checks.append(lambda e: ef.decision(e) in decisions)
        if self.source_ips:
            ips = frozenset(self.source_ips)
            checks.append(lambda e: not ips.isdisjoint(ef.source_ips(e)))
        if self.user_agent is not None:
            agent = self.user_agent
            checks.append(lambda e: agent in ef.user_agent(e))
        if self.since is not None or self.until is not None:
            since, until = self.since, self.until
            checks.append(lambda e: _in_window(ef.received_at(e), since, until))

        def matches(event: Mapping[str, Any]) -> bool:
            for check in checks:
                if not check(event):
                    return False
            return True

        return matches

    def line_filter(self) -> LineFilter | None:
        """The cheap raw-line test that admits every line `predicate` could accept."""
        exact_groups = [self.users, self.groups, self.verbs, tuple(spec.resource for spec in self.resources),
                        self.subresources, self.namespaces, self.names, self.decisions, self.source_ips]
        exact = LineFilter.for_values(exact_groups)
        substring = LineFilter.for_values([(self.user_agent,)] if self.user_agent else [], quoted=False)
        if exact is None:
            return substring
        return exact.merged(substring)


def _in_window(moment: datetime | None, since: datetime | None, until: datetime | None) -> bool:
    if moment is None:
        return False  # an event without a readable time cannot be shown to be inside the window
    return (since is None or moment >= since) and (until is None or moment < until)


def select(paths: Sequence[str], query: QueryFilter, problems: ReadProblems, all_stages: bool = False,
           stdin: BinaryIO | None = None) -> Iterator[LogLine]:
    """The matching requests (one event each, see stages.py), or every matching event with all_stages."""
    matches = query.predicate()
    line_filter = query.line_filter()
    if all_stages:
        return (r for r in read_events(paths, problems, line_filter, stdin) if matches(r.event))
    return requests(paths, problems, line_filter, matches, stdin)
