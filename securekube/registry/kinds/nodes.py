"""core/v1 Node: cluster-scoped, with a status the node itself reports."""
from __future__ import annotations

from securekube.api.fieldcheck import field_paths
from securekube.api.schemas.core import NODE
from securekube.registry.resource import AGE_COLUMN, NAME_COLUMN, Column, ResourceType, Strategy


def _ready(obj: dict, now) -> str:
    conditions = (obj.get("status") or {}).get("conditions") or []
    ready = next((c for c in conditions if c.get("type") == "Ready"), None)
    state = "Ready" if ready and ready.get("status") == "True" else "NotReady" if ready else "Unknown"
    return state + (",SchedulingDisabled" if (obj.get("spec") or {}).get("unschedulable") else "")


def _roles(obj: dict, now) -> str:
    prefix = "node-role.kubernetes.io/"
    roles = sorted(k[len(prefix):] for k in ((obj.get("metadata") or {}).get("labels") or {}) if k.startswith(prefix))
    return ",".join(roles) or "<none>"


class NodeStrategy(Strategy):
    type = ResourceType("", "v1", "Node", "nodes", "node", False, ("no",), ("status",))
    schema = field_paths(NODE)
    has_status = True
    columns = (NAME_COLUMN, Column("Status", "string", _ready), Column("Roles", "string", _roles), AGE_COLUMN,
               Column("Version", "string", lambda o, now: ((o.get("status") or {}).get("nodeInfo") or {}).get("kubeletVersion", "")))
    extra_field_selectors = {"spec.unschedulable": lambda o: str(bool((o.get("spec") or {}).get("unschedulable"))).lower()}
