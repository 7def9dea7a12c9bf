"""What a kind is (`ResourceType`) and how it behaves (`Strategy`).

Adding a kind to the API is one module in `registry/kinds/` that defines a `Strategy`
subclass (validation, defaulting, table columns, field selectors) and one line in
`registry/catalog.py`. The generic `Store` does everything else.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Callable

from securekube.api import validation as v
from securekube.api.errors import Cause


@dataclass(frozen=True)
class ResourceType:
    group: str
    version: str
    kind: str
    plural: str
    singular: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    subresources: tuple[str, ...] = ()  # the subresources served (and listed in discovery)
    categories: tuple[str, ...] = ()
    verbs: tuple[str, ...] = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")
    # Served like a custom resource (a CRD's): stored under /registry/<group>/<resource>/.
    custom: bool = False

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def list_kind(self) -> str:
        return f"{self.kind}List"

    @property
    def group_resource(self) -> str:
        """`resource.group`, the name upstream messages and EncryptionConfiguration use."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    def storage_prefix(self, namespace: str = "") -> str:
        """Key prefix in the upstream layout: /registry/<resource>/[<namespace>/]."""
        # Built-in kinds live under /registry/<resource>/ whatever their group, custom resources
        # under /registry/<group>/<resource>/, as upstream.
        base = f"/registry/{self.group}/{self.plural}/" if self.custom else f"/registry/{self.plural}/"
        return f"{base}{namespace}/" if self.namespaced and namespace else base

    def storage_key(self, namespace: str, name: str) -> str:
        return f"{self.storage_prefix(namespace if self.namespaced else '')}{name}"


@dataclass(frozen=True)
class Column:
    """A Table column: header, type and the function that renders one object's cell."""

    name: str
    type: str
    render: Callable[[dict, dt.datetime], Any]
    format: str = ""
    priority: int = 0  # 1 = only with `-o wide`
    description: str = ""


def _meta(obj: dict) -> dict:
    return obj.get("metadata") or {}


def human_duration(delta: dt.timedelta) -> str:
    """Upstream's short duration form used in the AGE column (e.g. 45s, 3m20s, 5h, 12d)."""
    seconds = int(delta.total_seconds())
    if seconds < 0:
        seconds = 0
    minutes, hours, days = seconds // 60, seconds // 3600, seconds // 86400
    if seconds < 120:
        return f"{seconds}s"
    if minutes < 10:
        return f"{minutes}m{seconds % 60}s" if seconds % 60 else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    if hours < 8:
        return f"{hours}h{minutes % 60}m" if minutes % 60 else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        return f"{days}d{hours % 24}h" if hours % 24 else f"{days}d"
    if days < 365 * 2:
        return f"{days}d"
    years = days // 365
    if years < 8:
        return f"{years}y{days % 365}d"
    return f"{years}y"


def parse_time(value: str | None) -> dt.datetime | None:
    if not value:
        return None
    return dt.datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.timezone.utc)


def age(obj: dict, now: dt.datetime) -> str:
    created = parse_time(_meta(obj).get("creationTimestamp"))
    return human_duration(now - created) if created else "<unknown>"


NAME_COLUMN = Column("Name", "string", lambda o, now: _meta(o).get("name", ""), format="name",
                     description="Name must be unique within a namespace.")
AGE_COLUMN = Column("Age", "string", age,
                    description="CreationTimestamp is a timestamp representing the server time when this object was created.")


class Strategy:
    """How one kind is validated, defaulted and shown. Subclasses override what differs."""

    type: ResourceType
    columns: tuple[Column, ...] = (NAME_COLUMN, AGE_COLUMN)
    # Extra field selector paths beyond metadata.name / metadata.namespace.
    extra_field_selectors: dict[str, Callable[[dict], str]] = {}
    # True when the main resource's update must not change status (it has a status subresource).
    has_status: bool = False
    # Subresources that write status only (a CSR's `approval` too); everything else comes from the stored object.
    status_subresources: tuple[str, ...] = ("status",)
    # Known keys per path, for fieldValidation (see api/fieldcheck.py); {} checks nothing.
    schema: dict[str, frozenset[str]] = {}
    # How metadata.name is checked (most kinds: a DNS-1123 subdomain).
    name_check = staticmethod(v.dns1123_subdomain)

    @property
    def field_selectors(self) -> dict[str, Callable[[dict], str]]:
        base: dict[str, Callable[[dict], str]] = {
            "metadata.name": lambda o: _meta(o).get("name", ""),
            "metadata.namespace": lambda o: _meta(o).get("namespace", ""),
        }
        return {**base, **self.extra_field_selectors}

    def default(self, obj: dict) -> None:
        """Fills defaults in place, on create and update."""

    def prepare_create(self, obj: dict) -> None:
        """Resets what a client may not set on create (e.g. status of kinds with a status subresource)."""
        if self.has_status:
            obj.pop("status", None)
            self.initial_status(obj)

    def initial_status(self, obj: dict) -> None:
        """The status a new object starts with."""

    def record_requester(self, obj: dict, user: Any) -> None:
        """Records who creates the object (a `UserInfo`), for kinds that keep it (a CSR's spec.username)."""

    def prepare_update(self, new: dict, old: dict, subresource: str) -> None:
        """Keeps status on main-resource updates and everything but status on status updates."""
        if not self.has_status:
            return
        if subresource in self.status_subresources:
            for key in list(new):
                if key not in ("status", "metadata", "apiVersion", "kind"):
                    new.pop(key)
            for key, value in old.items():
                if key not in ("status", "metadata", "apiVersion", "kind"):
                    new[key] = value
        elif "status" in old:
            new["status"] = old["status"]
        else:
            new.pop("status", None)

    def pending_finalizers(self, obj: dict) -> bool:
        """True while something must still clean up before the object may go."""
        return bool((obj.get("metadata") or {}).get("finalizers"))

    def graceful(self, obj: dict) -> bool:
        """True when deletion must wait for an agent (a pod on a node waits for its kubelet)."""
        return False

    def default_grace_period(self, obj: dict) -> int:
        """Seconds an agent gets to stop a graceful object when the delete request names none."""
        return 0

    def on_delete_requested(self, obj: dict) -> None:
        """Marks the object as being deleted (e.g. a namespace becomes Terminating)."""

    def validate(self, obj: dict) -> list[Cause]:
        """Kind-specific validation of a whole object (metadata is validated generically)."""
        return []

    def validate_update(self, new: dict, old: dict) -> list[Cause]:
        """Kind-specific rules about what may change (immutable fields)."""
        return []

    def validate_subresource_update(self, new: dict, old: dict, subresource: str) -> list[Cause]:
        """The rules for an update through `subresource` (e.g. a pod's binding may set spec.nodeName once);
        by default the main resource's."""
        return self.validate_update(new, old)


def validate_metadata(obj: dict, namespaced: bool, name_check: Callable[[str, Any], list[Cause]]) -> list[Cause]:
    """The ObjectMeta rules every kind shares."""
    meta = obj.get("metadata")
    if not isinstance(meta, dict):
        return [v.required("metadata")]
    causes: list[Cause] = []
    name = meta.get("name")
    if not name:
        causes.append(v.required("metadata.name", "name or generateName is required"))
    else:
        causes += name_check("metadata.name", name)
    if namespaced and not meta.get("namespace"):
        causes.append(v.required("metadata.namespace"))
    causes += v.labels("metadata.labels", meta.get("labels"))
    causes += v.annotations("metadata.annotations", meta.get("annotations"))
    finalizers = meta.get("finalizers")
    if finalizers is not None and (not isinstance(finalizers, list) or not all(isinstance(f, str) for f in finalizers)):
        causes.append(v.type_error("metadata.finalizers", finalizers, "a list of strings"))
    return causes
