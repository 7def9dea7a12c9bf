"""coordination.k8s.io/v1 Lease: a holder and when it last renewed (node heartbeats in kube-node-lease).

Validation is upstream's (pkg/apis/coordination/validation): durations and transition counts are
not negative, times are MicroTime (RFC 3339 with microseconds), a preferred holder needs a strategy.
"""
from __future__ import annotations

import re
from typing import Any

from securekube.api import validation as v
from securekube.api.errors import Cause
from securekube.api.fieldcheck import field_paths
from securekube.api.schemas.coordination import LEASE
from securekube.registry.resource import AGE_COLUMN, NAME_COLUMN, Column, ResourceType, Strategy

GROUP = "coordination.k8s.io"
# metav1.MicroTime as JSON: RFC 3339 with exactly six fractional digits (any offset is read).
_MICRO_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}(Z|[+-]\d{2}:\d{2})")
_TIME_FIELDS = ("acquireTime", "renewTime")


def _spec(obj: dict) -> dict:
    return obj.get("spec") if isinstance(obj.get("spec"), dict) else {}


def _non_negative(field: str, value: Any, positive: bool = False) -> list[Cause]:
    if value is None:
        return []
    if isinstance(value, bool) or not isinstance(value, int):
        return [v.type_error(field, value, "an integer")]
    if positive and value <= 0:
        return [v.invalid(field, value, "must be greater than 0")]
    if value < 0:
        return [v.invalid(field, value, "must be greater than or equal to 0")]
    return []


class LeaseStrategy(Strategy):
    type = ResourceType(GROUP, "v1", "Lease", "leases", "lease", True)
    schema = field_paths(LEASE)
    columns = (NAME_COLUMN, Column("Holder", "string", lambda o, now: _spec(o).get("holderIdentity", "")), AGE_COLUMN)

    def validate(self, obj: dict) -> list[Cause]:
        spec = obj.get("spec")
        if spec is None:
            return []
        if not isinstance(spec, dict):
            return [v.type_error("spec", spec, "an object")]
        causes = _non_negative("spec.leaseDurationSeconds", spec.get("leaseDurationSeconds"), positive=True)
        causes += _non_negative("spec.leaseTransitions", spec.get("leaseTransitions"))
        causes += v.typed("spec.holderIdentity", spec.get("holderIdentity"), str, "a string")
        for name in _TIME_FIELDS:
            value = spec.get(name)
            if value is not None and not (isinstance(value, str) and _MICRO_TIME.fullmatch(value)):
                causes.append(v.invalid(f"spec.{name}", value, "must be an RFC 3339 time with microseconds, "
                                                               "e.g. 2006-01-02T15:04:05.000000Z"))
        if spec.get("preferredHolder") and not spec.get("strategy"):
            causes.append(v.forbidden("spec.preferredHolder", "may only be specified if `strategy` is defined"))
        return causes
