"""core/v1 ServiceAccount."""
from __future__ import annotations

from securekube.api.fieldcheck import field_paths
from securekube.api.schemas.core import SERVICE_ACCOUNT
from securekube.registry.resource import AGE_COLUMN, NAME_COLUMN, Column, ResourceType, Strategy


class ServiceAccountStrategy(Strategy):
    type = ResourceType("", "v1", "ServiceAccount", "serviceaccounts", "serviceaccount", True, ("sa",), ("token",))
    schema = field_paths(SERVICE_ACCOUNT)
    columns = (NAME_COLUMN, Column("Secrets", "integer", lambda o, now: len(o.get("secrets") or [])), AGE_COLUMN)
