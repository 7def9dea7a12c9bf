"""core/v1 Namespace: cluster-scoped, a DNS-1123 label, phase Active until deleted."""
from __future__ import annotations

from securekube.api import validation as v
from securekube.api.fieldcheck import field_paths
from securekube.api.schemas.core import NAMESPACE
from securekube.registry.resource import AGE_COLUMN, NAME_COLUMN, Column, ResourceType, Strategy


class NamespaceStrategy(Strategy):
    type = ResourceType("", "v1", "Namespace", "namespaces", "namespace", False, ("ns",), ("status",))
    schema = field_paths(NAMESPACE)
    has_status = True
    columns = (NAME_COLUMN,
               Column("Status", "string", lambda o, now: (o.get("status") or {}).get("phase", ""),
                      description="The status of the namespace"),
               AGE_COLUMN)
    extra_field_selectors = {"status.phase": lambda o: (o.get("status") or {}).get("phase", "")}
    name_check = staticmethod(v.dns1123_label)

    def default(self, obj: dict) -> None:
        labels = obj.setdefault("metadata", {}).setdefault("labels", {})
        # Upstream sets this immutable label so selectors can match namespaces by name.
        if obj["metadata"].get("name"):
            labels["kubernetes.io/metadata.name"] = obj["metadata"]["name"]

    def prepare_create(self, obj: dict) -> None:
        super().prepare_create(obj)
        # Always, whatever the client sent: without it a deleted namespace would go before its content.
        spec = obj.get("spec") if isinstance(obj.get("spec"), dict) else {}
        given = spec.get("finalizers") if isinstance(spec.get("finalizers"), list) else []
        spec["finalizers"] = ["kubernetes"] + [f for f in given if f != "kubernetes"]
        obj["spec"] = spec

    def initial_status(self, obj: dict) -> None:
        obj["status"] = {"phase": "Active"}

    def pending_finalizers(self, obj: dict) -> bool:
        return super().pending_finalizers(obj) or bool((obj.get("spec") or {}).get("finalizers"))

    def on_delete_requested(self, obj: dict) -> None:
        obj.setdefault("status", {})["phase"] = "Terminating"

    def prepare_update(self, new: dict, old: dict, subresource: str) -> None:
        super().prepare_update(new, old, subresource)
        # Only the finalize subresource (the namespace controller) may change spec.finalizers.
        if subresource != "finalize":
            new.setdefault("spec", {})["finalizers"] = (old.get("spec") or {}).get("finalizers", [])
