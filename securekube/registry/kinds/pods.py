"""core/v1 Pod: containers, defaults as upstream, a spec that is mostly immutable after create.

Subresources: `status` (the kubelet's), `binding` (the scheduler's: sets spec.nodeName once, see
`bind_pod`) and `log` (served by the API server from the pod's kubelet, never stored).
"""
from __future__ import annotations

import datetime as dt
from typing import Any

from securekube.api import errors
from securekube.api import validation as v
from securekube.api.errors import Cause
from securekube.api.fieldcheck import field_paths
from securekube.api.schemas.pod import POD
from securekube.registry.resource import AGE_COLUMN, NAME_COLUMN, Column, ResourceType, Strategy
from securekube.registry.store import Store

RESTART_POLICIES = ["Always", "OnFailure", "Never"]
PULL_POLICIES = ["Always", "IfNotPresent", "Never"]
# The spec fields upstream lets an update change (everything else is immutable).
MUTABLE_SPEC_FIELDS = ("activeDeadlineSeconds", "tolerations", "terminationGracePeriodSeconds")


def _status(obj: dict) -> dict:
    return obj.get("status") or {}


def _ready(obj: dict, now) -> str:
    statuses = _status(obj).get("containerStatuses") or []
    total = len((obj.get("spec") or {}).get("containers") or [])
    return f"{sum(1 for s in statuses if s.get('ready'))}/{total}"


def _phase(obj: dict, now) -> str:
    """The STATUS column as upstream's printer derives it: a container's waiting or terminated reason wins."""
    if (obj.get("metadata") or {}).get("deletionTimestamp"):
        return "Terminating"
    reason = _status(obj).get("reason") or _status(obj).get("phase", "")
    running = False
    for container in reversed(_status(obj).get("containerStatuses") or []):
        if not isinstance(container, dict):
            continue
        state = container.get("state") or {}
        waiting, terminated = state.get("waiting") or {}, state.get("terminated") or {}
        if waiting.get("reason"):
            reason = waiting["reason"]
        elif terminated.get("reason"):
            reason = terminated["reason"]
        elif terminated:
            signal = terminated.get("signal")
            reason = f"Signal:{signal}" if signal else f"ExitCode:{terminated.get('exitCode', 0)}"
        elif container.get("ready") and state.get("running") is not None:
            running = True
    if reason == "Completed" and running:
        reason = "Running"
    return reason


def _restarts(obj: dict, now) -> int:
    return sum(int(s.get("restartCount", 0)) for s in _status(obj).get("containerStatuses") or [])


def _default_container(c: dict) -> None:
    image = c.get("image") if isinstance(c.get("image"), str) else ""
    tagless = ":" not in image.rsplit("/", 1)[-1] and "@" not in image
    c.setdefault("imagePullPolicy", "Always" if tagless or image.endswith(":latest") else "IfNotPresent")
    c.setdefault("terminationMessagePath", "/dev/termination-log")
    c.setdefault("terminationMessagePolicy", "File")
    c.setdefault("resources", {})
    for port in c.get("ports") if isinstance(c.get("ports"), list) else []:
        if isinstance(port, dict):
            port.setdefault("protocol", "TCP")


def _validate_container(field: str, c: object, seen: set[str]) -> list[Cause]:
    if not isinstance(c, dict):
        return [v.type_error(field, c, "an object")]
    causes: list[Cause] = []
    name = c.get("name")
    if not name:
        causes.append(v.required(f"{field}.name"))
    else:
        causes += v.dns1123_label(f"{field}.name", name)
        if name in seen:
            causes.append(Cause("FieldValueDuplicate", f'Duplicate value: "{name}"', f"{field}.name"))
        seen.add(name)
    if not c.get("image"):
        causes.append(v.required(f"{field}.image"))
    causes += v.typed(f"{field}.image", c.get("image"), str, "a string")
    for key in ("command", "args"):
        value = c.get(key)
        if value is not None and not (isinstance(value, list) and all(isinstance(x, str) for x in value)):
            causes.append(v.type_error(f"{field}.{key}", value, "a list of strings"))
    if c.get("imagePullPolicy") not in PULL_POLICIES:
        causes.append(v.unsupported(f"{field}.imagePullPolicy", c.get("imagePullPolicy"), PULL_POLICIES))
    for key in ("env", "ports", "volumeMounts", "envFrom"):
        if c.get(key) is not None and not isinstance(c.get(key), list):
            causes.append(v.type_error(f"{field}.{key}", c.get(key), "a list"))
    if causes:
        return causes
    for i, env in enumerate(c.get("env") or []):
        if not isinstance(env, dict) or not env.get("name"):
            causes.append(v.required(f"{field}.env[{i}].name"))
    for i, port in enumerate(c.get("ports") or []):
        cp = port.get("containerPort") if isinstance(port, dict) else None
        if not isinstance(cp, int) or isinstance(cp, bool) or not 1 <= cp <= 65535:
            causes.append(v.invalid(f"{field}.ports[{i}].containerPort", cp, "must be between 1 and 65535, inclusive"))
    return causes


class PodStrategy(Strategy):
    type = ResourceType("", "v1", "Pod", "pods", "pod", True, ("po",),
                        ("status", "binding", "log"), ("all",))
    has_status = True
    schema = field_paths(POD)
    columns = (
        NAME_COLUMN,
        Column("Ready", "string", _ready, description="The aggregate readiness state of this pod for accepting traffic."),
        Column("Status", "string", _phase, description="The aggregate status of the containers in this pod."),
        Column("Restarts", "string", _restarts, description="The number of times the containers in this pod have been restarted."),
        AGE_COLUMN,
        Column("IP", "string", lambda o, now: _status(o).get("podIP") or "<none>", priority=1),
        Column("Node", "string", lambda o, now: (o.get("spec") or {}).get("nodeName") or "<none>", priority=1),
    )
    extra_field_selectors = {
        "spec.nodeName": lambda o: (o.get("spec") or {}).get("nodeName", ""),
        "spec.restartPolicy": lambda o: (o.get("spec") or {}).get("restartPolicy", ""),
        "spec.schedulerName": lambda o: (o.get("spec") or {}).get("schedulerName", ""),
        "spec.serviceAccountName": lambda o: (o.get("spec") or {}).get("serviceAccountName", ""),
        "spec.hostNetwork": lambda o: str(bool((o.get("spec") or {}).get("hostNetwork"))).lower(),
        "status.phase": lambda o: _status(o).get("phase", ""),
        "status.podIP": lambda o: _status(o).get("podIP", ""),
        "status.nominatedNodeName": lambda o: _status(o).get("nominatedNodeName", ""),
    }

    def default(self, obj: dict) -> None:
        spec = obj.get("spec")
        if not isinstance(spec, dict):
            return
        spec.setdefault("restartPolicy", "Always")
        spec.setdefault("terminationGracePeriodSeconds", 30)
        spec.setdefault("dnsPolicy", "ClusterFirst")
        spec.setdefault("schedulerName", "default-scheduler")
        spec.setdefault("securityContext", {})
        spec.setdefault("serviceAccountName", spec.get("serviceAccount") or "default")
        spec.setdefault("enableServiceLinks", True)
        for key in ("containers", "initContainers"):
            for c in spec.get(key) or []:
                if isinstance(c, dict):
                    _default_container(c)

    def graceful(self, obj: dict) -> bool:
        # A pod bound to a node is gone only once its kubelet has stopped it.
        return bool((obj.get("spec") or {}).get("nodeName"))

    def default_grace_period(self, obj: dict) -> int:
        grace = (obj.get("spec") or {}).get("terminationGracePeriodSeconds")
        return grace if isinstance(grace, int) and not isinstance(grace, bool) else 30

    def initial_status(self, obj: dict) -> None:
        obj["status"] = {"phase": "Pending", "qosClass": "BestEffort"}

    def validate(self, obj: dict) -> list[Cause]:
        spec = obj.get("spec")
        if not isinstance(spec, dict):
            return [v.required("spec")]
        containers = spec.get("containers")
        if not containers:
            return [v.required("spec.containers")]
        if not isinstance(containers, list):
            return [v.type_error("spec.containers", containers, "a list")]
        seen: set[str] = set()
        causes: list[Cause] = []
        for key in ("containers", "initContainers"):
            for i, c in enumerate(spec.get(key) or []):
                causes += _validate_container(f"spec.{key}[{i}]", c, seen)
        if spec.get("restartPolicy") not in RESTART_POLICIES:
            causes.append(v.unsupported("spec.restartPolicy", spec.get("restartPolicy"), RESTART_POLICIES))
        causes += v.typed("spec.nodeName", spec.get("nodeName"), str, "a string")
        causes += v.typed("spec.terminationGracePeriodSeconds", spec.get("terminationGracePeriodSeconds"), int, "an integer")
        names = set()
        for i, vol in enumerate(spec.get("volumes") or []):
            name = vol.get("name") if isinstance(vol, dict) else None
            if not name:
                causes.append(v.required(f"spec.volumes[{i}].name"))
            elif name in names:
                causes.append(Cause("FieldValueDuplicate", f'Duplicate value: "{name}"', f"spec.volumes[{i}].name"))
            names.add(name)
        return causes

    def prepare_update(self, new: dict, old: dict, subresource: str) -> None:
        if subresource == BINDING:
            return  # server code (bind_pod) sets spec.nodeName and the PodScheduled condition, nothing else
        super().prepare_update(new, old, subresource)

    def validate_subresource_update(self, new: dict, old: dict, subresource: str) -> list[Cause]:
        if subresource != BINDING:
            return super().validate_subresource_update(new, old, subresource)
        old_spec, new_spec = old.get("spec") or {}, new.get("spec") or {}
        if old_spec.get("nodeName"):
            return [v.forbidden("spec.nodeName", "a pod is bound once")]
        if not isinstance(new_spec.get("nodeName"), str) or not new_spec.get("nodeName"):
            return [v.required("spec.nodeName")]
        if {**new_spec, "nodeName": None} != {**old_spec, "nodeName": None}:
            return [v.forbidden("spec", "a binding may set spec.nodeName only")]
        return []

    def validate_update(self, new: dict, old: dict) -> list[Cause]:
        def comparable(spec: dict) -> dict:
            spec = {k: val for k, val in (spec or {}).items() if k not in MUTABLE_SPEC_FIELDS}
            for key in ("containers", "initContainers"):
                spec[key] = [{**c, "image": None} for c in spec.get(key) or [] if isinstance(c, dict)]
            return spec

        old_spec, new_spec = old.get("spec") or {}, new.get("spec") or {}
        if comparable(new_spec) != comparable(old_spec):
            return [v.forbidden("spec", "pod updates may not change fields other than `spec.containers[*].image`,"
                                "`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` "
                                "(only additions to existing tolerations),`spec.terminationGracePeriodSeconds` "
                                "(allow it to be set to 1 if it was previously negative)")]
        return []


BINDING = "binding"


def _binding_invalid(name: str, causes: list[Cause]) -> errors.ApiError:
    return errors.invalid("Binding", name, causes)


def bind_pod(store: Store, namespace: str, name: str, binding: Any) -> dict:
    """POST pods/NAME/binding: assigns the pod to `binding.target.name` once, as upstream's BindingREST.

    The target must be a Node; a pod that is already bound or being deleted is a 409. Annotations of
    the Binding are copied to the pod and the PodScheduled condition becomes True. Returns the pod.
    """
    if not isinstance(binding, dict):
        raise errors.bad_request("a Binding must be an object")
    if binding.get("kind") not in (None, "Binding"):
        raise errors.bad_request(f"the kind in the data ({binding.get('kind')}) does not match the expected kind "
                                 "(Binding)")
    meta = binding.get("metadata") if isinstance(binding.get("metadata"), dict) else {}
    if meta.get("name") and meta["name"] != name:
        raise errors.bad_request("name in URL does not match name in Binding object")
    target = binding.get("target") if isinstance(binding.get("target"), dict) else {}
    causes = []
    if target.get("kind") not in (None, "", "Node"):
        causes.append(v.unsupported("target.kind", target.get("kind"), ["Node", "<empty>"]))
    if not isinstance(target.get("name"), str) or not target.get("name"):
        causes.append(v.required("target.name"))
    annotations = meta.get("annotations") or {}
    causes += v.annotations("metadata.annotations", annotations)
    if causes:
        raise _binding_invalid(name, causes)

    def assign(pod: dict) -> dict:
        pod_meta, spec = pod["metadata"], pod.setdefault("spec", {})
        if meta.get("uid") and meta["uid"] != pod_meta.get("uid"):
            raise errors.conflict("pods", name, f"Precondition failed: UID in precondition: {meta['uid']}, "
                                                f"UID in object meta: {pod_meta.get('uid')}")
        if pod_meta.get("deletionTimestamp"):
            raise errors.conflict("pods", name, f"pod {name} is being deleted, cannot be assigned to a host")
        if spec.get("nodeName"):
            raise errors.conflict("pods", name, f'pod {name} is already assigned to node "{spec["nodeName"]}"')
        spec["nodeName"] = target["name"]
        if annotations:
            pod_meta["annotations"] = {**(pod_meta.get("annotations") or {}), **annotations}
        set_condition(pod, {"type": "PodScheduled", "status": "True"})
        return pod

    return store.guaranteed_update(namespace, name, assign, subresource=BINDING)


def set_condition(pod: dict, condition: dict) -> bool:
    """Sets a pod condition by type, stamping lastTransitionTime when its status changes; True if it changed."""
    status = pod.setdefault("status", {})
    found = status.setdefault("conditions", [])
    previous = next((c for c in found if c.get("type") == condition["type"]), None)
    if previous is not None and all(previous.get(k) == val for k, val in condition.items()):
        return False
    changed_status = previous is None or previous.get("status") != condition.get("status")
    now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    entry = {"lastProbeTime": None, **condition,
             "lastTransitionTime": now if changed_status else previous.get("lastTransitionTime", now)}
    status["conditions"] = [entry if c is previous else c for c in found] if previous is not None else [*found, entry]
    return True


def binding_status() -> dict:
    """Upstream's answer to a successful binding: a Status with code 201."""
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}
