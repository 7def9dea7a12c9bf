"""Audit summary: who did what — top identities, denials, sensitive actions, failed authentication, sources.

Counts requests, not log lines (one event per request, see stages.py). "Denied" means refused by
authorization: a 403 response or a `forbid` decision annotation. The sensitive actions are the ones
a security review asks about first:
- secret reads: get, list, watch on secrets (any outcome; denials counted apart);
- exec/attach: pods/exec, pods/attach and pods/portforward (a shell or a tunnel into a workload);
- RBAC and policy changes: writes to RBAC objects, admission webhooks and policies, NetworkPolicies,
  and namespaces (which carry the Pod Security labels);
- failed authentication: 401 responses (not counted among the actions above: nothing was done).
"""
from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any

from securekube.audit.review import event_fields as ef

TOP = 10
LISTED = 100  # sensitive requests listed one by one; their totals are always complete
SECRET_READ_VERBS = frozenset({"get", "list", "watch"})
SESSION_SUBRESOURCES = frozenset({"exec", "attach", "portforward"})
CHANGE_VERBS = frozenset({"create", "update", "patch", "delete", "deletecollection"})
RBAC_GROUP = "rbac.authorization.k8s.io"
POLICY_GROUPS = frozenset({"admissionregistration.k8s.io"})
POLICY_RESOURCES = frozenset({("networking.k8s.io", "networkpolicies"), ("", "namespaces")})


@dataclass(frozen=True)
class IdentityCount:
    name: str
    requests: int
    denied: int


@dataclass(frozen=True)
class DenialCount:
    user: str
    verb: str
    resource: str
    namespace: str
    count: int


@dataclass(frozen=True)
class SecretReadCount:
    user: str
    namespace: str
    verbs: tuple[str, ...]
    requests: int
    denied: int


@dataclass(frozen=True)
class RequestRow:
    """One request as a review table shows it."""

    time: str
    user: str
    verb: str
    resource: str
    namespace: str
    name: str
    code: int | None
    decision: str
    source_ip: str

    @classmethod
    def of(cls, event: Mapping[str, Any]) -> "RequestRow":
        return cls(ef.timestamp_text(event), ef.user_label(event), ef.verb(event), ef.resource_label(event),
                   ef.namespace(event), ef.name(event), ef.code(event), ef.decision(event), ef.source_ip(event))


@dataclass(frozen=True)
class SourceCount:
    ip: str
    requests: int
    users: int
    failed_authentication: int


@dataclass(frozen=True)
class FailedAuthenticationCount:
    ip: str
    count: int
    user_agents: tuple[str, ...]


@dataclass(frozen=True)
class ActivityBucket:
    """Requests that started in one minute (UTC), by outcome."""

    start: datetime
    allowed: int
    denied: int
    failed_authentication: int
    errors: int  # 5xx

    @property
    def total(self) -> int:
        return self.allowed + self.denied + self.failed_authentication + self.errors


@dataclass(frozen=True)
class Summary:
    requests: int
    first: str
    last: str
    identities: int
    users: tuple[IdentityCount, ...]
    service_accounts: tuple[IdentityCount, ...]
    most_denied: tuple[IdentityCount, ...]
    denials_total: int
    denials: tuple[DenialCount, ...]
    secret_reads_total: int
    secret_reads: tuple[SecretReadCount, ...]
    exec_attach_total: int
    exec_attach: tuple[RequestRow, ...]
    policy_changes_total: int
    policy_changes: tuple[RequestRow, ...]
    failed_authentication_total: int
    failed_authentication: tuple[FailedAuthenticationCount, ...]
    source_ips: tuple[SourceCount, ...]
    activity: tuple[ActivityBucket, ...] = field(default=(), repr=False)

    def as_dict(self) -> dict[str, Any]:
        """For -o json: everything but the per-minute activity (which only the HTML report draws)."""
        data = asdict(self)
        data.pop("activity")
        return data


def is_secret_read(event: Mapping[str, Any]) -> bool:
    return ef.resource(event) == "secrets" and not ef.subresource(event) and ef.verb(event) in SECRET_READ_VERBS


def is_exec_or_attach(event: Mapping[str, Any]) -> bool:
    return ef.resource(event) == "pods" and ef.subresource(event) in SESSION_SUBRESOURCES


def is_policy_change(event: Mapping[str, Any]) -> bool:
    """A write to RBAC, admission configuration, NetworkPolicies or namespaces (Pod Security labels)."""
    if ef.verb(event) not in CHANGE_VERBS or ef.subresource(event) or not ef.resource(event):
        return False
    group = ef.api_group(event)
    return group == RBAC_GROUP or group in POLICY_GROUPS or (group, ef.resource(event)) in POLICY_RESOURCES


class SummaryBuilder:
    """Accumulates one request at a time; `build` ranks and trims.

    `add` runs once per request of a possibly huge log, so it reads each field once.
    """

    def __init__(self) -> None:
        self.requests = 0
        self.first: tuple[str, str] | None = None  # (sortable time, as written)
        self.last: tuple[str, str] | None = None
        self.by_identity: Counter[str] = Counter()
        self.denied_by_identity: Counter[str] = Counter()
        self.denials: Counter[tuple[str, str, str, str]] = Counter()
        self.secret_reads: Counter[tuple[str, str]] = Counter()
        self.secret_denied: Counter[tuple[str, str]] = Counter()
        self.secret_verbs: defaultdict[tuple[str, str], set[str]] = defaultdict(set)
        self.exec_attach: list[RequestRow] = []
        self.exec_attach_total = 0
        self.policy_changes: list[RequestRow] = []
        self.policy_changes_total = 0
        self.failed_authn_agents: defaultdict[str, Counter[str]] = defaultdict(Counter)
        self.by_source: Counter[str] = Counter()
        self.users_by_source: defaultdict[str, set[str]] = defaultdict(set)
        self.failed_by_source: Counter[str] = Counter()
        self.activity: defaultdict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0])  # by minute (sortable text)

    def add(self, event: Mapping[str, Any]) -> None:
        self.requests += 1
        code = ef.code(event)
        ip = ef.source_ip(event) or "(none)"
        self.by_source[ip] += 1
        if code == 401:
            outcome = 2
            self.failed_by_source[ip] += 1
            self.failed_authn_agents[ip][ef.user_agent(event)] += 1
            identity = ""
        else:
            identity = ef.user_label(event)
            denied = code == 403 or ef.decision(event) == ef.DECISION_FORBID
            outcome = 1 if denied else (3 if code is not None and code >= 500 else 0)
            self.by_identity[identity] += 1
            self.users_by_source[ip].add(identity)
            if denied:
                self.denied_by_identity[identity] += 1
                self.denials[(identity, ef.verb(event), ef.resource_label(event), ef.namespace(event))] += 1
        self._add_time(ef.timestamp_text(event), outcome)
        ref = ef.object_ref(event)
        if ref and outcome != 2:  # a failed authentication did nothing; it is counted as such above
            self._add_sensitive(event, ref, identity, outcome == 1)

    def _add_sensitive(self, event: Mapping[str, Any], ref: Mapping[str, Any], identity: str, denied: bool) -> None:
        resource = ref.get("resource")
        if resource == "secrets":
            if is_secret_read(event):
                key = (identity, ef.namespace(event))
                self.secret_reads[key] += 1
                self.secret_verbs[key].add(ef.verb(event))
                self.secret_denied[key] += denied
        elif resource == "pods" and is_exec_or_attach(event):
            self.exec_attach_total += 1
            if len(self.exec_attach) < LISTED:
                self.exec_attach.append(RequestRow.of(event))
        if is_policy_change(event):
            self.policy_changes_total += 1
            if len(self.policy_changes) < LISTED:
                self.policy_changes.append(RequestRow.of(event))

    def _add_time(self, text: str, outcome: int) -> None:
        sortable = ef.sortable_time(text)
        if sortable is None:
            return
        if self.first is None or sortable < self.first[0]:
            self.first = (sortable, text)
        if self.last is None or sortable > self.last[0]:
            self.last = (sortable, text)
        self.activity[sortable[:16]][outcome] += 1

    def build(self, top: int = TOP) -> Summary:
        people = Counter({n: c for n, c in self.by_identity.items() if not ef.is_service_account(n)})
        accounts = Counter({n: c for n, c in self.by_identity.items() if ef.is_service_account(n)})

        def identities(counts: Counter[str]) -> tuple[IdentityCount, ...]:
            return tuple(IdentityCount(n, c, self.denied_by_identity[n]) for n, c in _ranked(counts, top))

        return Summary(
            requests=self.requests,
            first=self.first[1] if self.first else "",
            last=self.last[1] if self.last else "",
            identities=len(self.by_identity),
            users=identities(people),
            service_accounts=identities(accounts),
            most_denied=tuple(IdentityCount(n, self.by_identity[n], d)
                              for n, d in _ranked(self.denied_by_identity, top)),
            denials_total=sum(self.denials.values()),
            denials=tuple(DenialCount(*key, count=c) for key, c in _ranked(self.denials, top)),
            secret_reads_total=sum(self.secret_reads.values()),
            secret_reads=tuple(SecretReadCount(user, ns, tuple(sorted(self.secret_verbs[(user, ns)])), c,
                                               self.secret_denied[(user, ns)])
                               for (user, ns), c in _ranked(self.secret_reads, top)),
            exec_attach_total=self.exec_attach_total,
            exec_attach=tuple(self.exec_attach),
            policy_changes_total=self.policy_changes_total,
            policy_changes=tuple(self.policy_changes),
            failed_authentication_total=sum(self.failed_by_source.values()),
            failed_authentication=tuple(
                FailedAuthenticationCount(ip, c, tuple(a for a, _ in _ranked(self.failed_authn_agents[ip], 3)))
                for ip, c in _ranked(self.failed_by_source, top)),
            source_ips=tuple(SourceCount(ip, c, len(self.users_by_source[ip]), self.failed_by_source[ip])
                             for ip, c in _ranked(self.by_source, top)),
            activity=_activity(self.activity),
        )


def _activity(per_minute: Mapping[str, list[int]]) -> tuple[ActivityBucket, ...]:
    buckets = []
    for minute, counts in sorted(per_minute.items()):
        try:
            start = datetime.strptime(minute, "%Y-%m-%dT%H:%M").replace(tzinfo=timezone.utc)
        except ValueError:
            continue  # a timestamp shaped right but impossible (month 13): no place on a time axis
        buckets.append(ActivityBucket(start, *counts))
    return tuple(buckets)


def _ranked(counts: Mapping[Any, int], top: int) -> list[tuple[Any, int]]:
    """Highest counts first; ties in a stable, readable order (by key)."""
    return sorted(counts.items(), key=lambda kv: (-kv[1], str(kv[0])))[:top]


def summarize(events: Iterable[Mapping[str, Any]], top: int = TOP) -> Summary:
    builder = SummaryBuilder()
    for event in events:
        builder.add(event)
    return builder.build(top)
