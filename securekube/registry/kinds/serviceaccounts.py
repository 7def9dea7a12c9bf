"""core/v1 ServiceAccount."""
from __future__ import annotations

from securekube.registry.resource import AGE_COLUMN, NAME_COLUMN, Column, ResourceType, Strategy, object_schema


class ServiceAccountStrategy(Strategy):
    type = ResourceType("", "v1", "ServiceAccount", "serviceaccounts", "serviceaccount", True, ("sa",), ("token",))
    schema = object_schema("secrets", "imagePullSecrets", "automountServiceAccountToken")
    columns = (NAME_COLUMN, Column("Secrets", "integer", lambda o, now: len(o.get("secrets") or [])), AGE_COLUMN)
