"""core/v1 Event: a record of something that happened to an object."""
from __future__ import annotations

from securekube.api import validation as v
from securekube.api.errors import Cause
from securekube.api.fieldcheck import field_paths
from securekube.api.schemas.core import EVENT
from securekube.registry.resource import Column, ResourceType, Strategy, human_duration, parse_time


def _last_seen(obj: dict, now) -> str:
    when = parse_time(obj.get("lastTimestamp")) or parse_time((obj.get("metadata") or {}).get("creationTimestamp"))
    return human_duration(now - when) if when else "<unknown>"


def _involved(obj: dict) -> dict:
    return obj.get("involvedObject") or {}


class EventStrategy(Strategy):
    type = ResourceType("", "v1", "Event", "events", "event", True, ("ev",))
    schema = field_paths(EVENT)
    columns = (
        Column("Last Seen", "string", _last_seen),
        Column("Type", "string", lambda o, now: o.get("type", "")),
        Column("Reason", "string", lambda o, now: o.get("reason", "")),
        Column("Object", "string", lambda o, now: f"{_involved(o).get('kind', '').lower()}/{_involved(o).get('name', '')}"),
        Column("Message", "string", lambda o, now: o.get("message", "")),
    )
    extra_field_selectors = {
        "involvedObject.kind": lambda o: _involved(o).get("kind", ""),
        "involvedObject.namespace": lambda o: _involved(o).get("namespace", ""),
        "involvedObject.name": lambda o: _involved(o).get("name", ""),
        "involvedObject.uid": lambda o: _involved(o).get("uid", ""),
        "involvedObject.apiVersion": lambda o: _involved(o).get("apiVersion", ""),
        "involvedObject.resourceVersion": lambda o: _involved(o).get("resourceVersion", ""),
        "involvedObject.fieldPath": lambda o: _involved(o).get("fieldPath", ""),
        "reason": lambda o: o.get("reason", ""),
        "reportingComponent": lambda o: o.get("reportingComponent", ""),
        "source": lambda o: (o.get("source") or {}).get("component", ""),
        "type": lambda o: o.get("type", ""),
    }

    def validate(self, obj: dict) -> list[Cause]:
        causes: list[Cause] = []
        involved = obj.get("involvedObject")
        if not isinstance(involved, dict):
            return [v.required("involvedObject")]
        ns = (obj.get("metadata") or {}).get("namespace")
        if involved.get("namespace") and involved.get("namespace") != ns:
            causes.append(v.invalid("involvedObject.namespace", involved.get("namespace"), "does not match event.namespace"))
        if obj.get("type") not in (None, "", "Normal", "Warning"):
            causes.append(v.unsupported("type", obj.get("type"), ["Normal", "Warning"]))
        return causes
