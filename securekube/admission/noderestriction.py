"""NodeRestriction: what a kubelet may write, limited to its own node, as upstream's plugin does.

A kubelet authenticates as `system:node:<name>` in group `system:nodes`. The Node authorizer
decides which objects it may touch; this stage looks at what it writes into them:

- Node: only its own; on create, no labels in the `node-restriction.kubernetes.io/` domain
  and no other kubernetes.io / k8s.io labels beyond the ones kubelets set (hostname, os, arch,
  instance type, topology, and the kubelet.kubernetes.io / node.kubernetes.io domains); on
  update the same for every label it adds, changes or removes, and never its taints. So a
  compromised node cannot label itself into a workload's nodeSelector (say, the labels an
  administrator uses to keep sensitive pods on trusted nodes) or shed a NoSchedule taint.
- Pod: create only mirror pods (static pods) bound to itself, owned by its own Node object and
  referring to no ServiceAccount, Secret, ConfigMap, PersistentVolumeClaim or ClusterTrustBundle;
  delete only pods bound to itself; status updates only of pods bound to itself and without
  changing their labels; evictions only of pods bound to itself; no other subresource.
- PersistentVolumeClaim: only status, and only capacity, conditions and allocation fields.
- ServiceAccount tokens: only bound to a pod (with its uid) that runs on the node.
- Lease: only its own node lease in kube-node-lease. CSINode: only its own.

Events are not restricted here (upstream does not either); the Node authorizer and RBAC decide.
Requests by anyone else pass unchanged. Lookups the stage needs (the pod of an eviction or
token request, the Node's uid) go through callbacks; a missing callback denies what needs it.
Messages are upstream's, inside the usual `... is forbidden: ...` Status (403).
"""
from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from securekube.admission.interfaces import CONNECT, CREATE, DELETE, UPDATE, AdmissionError, AdmissionRequest, \
    AdmissionResult
from securekube.api.errors import forbidden, not_found
from securekube.authz.rbac_model import go_quote

__all__ = ["NodeRestriction", "NodeRestrictionLookups"]

NODE_USER_PREFIX = "system:node:"
NODES_GROUP = "system:nodes"
NODE_LEASE_NAMESPACE = "kube-node-lease"
MIRROR_POD_ANNOTATION = "kubernetes.io/config.mirror"
NODE_RESTRICTION_LABEL_DOMAIN = "node-restriction.kubernetes.io"
# Labels a kubelet sets on its own Node (k8s.io/kubelet/pkg/apis: kubeletLabels, kubeletLabelNamespaces).
KUBELET_LABELS = frozenset({
    "kubernetes.io/hostname", "kubernetes.io/os", "kubernetes.io/arch",
    "beta.kubernetes.io/os", "beta.kubernetes.io/arch", "beta.kubernetes.io/instance-type",
    "node.kubernetes.io/instance-type",
    "failure-domain.beta.kubernetes.io/region", "failure-domain.beta.kubernetes.io/zone",
    "topology.kubernetes.io/region", "topology.kubernetes.io/zone",
})
KUBELET_LABEL_DOMAINS = ("kubelet.kubernetes.io", "node.kubernetes.io")
_PVC_STATUS_FIELDS = ("capacity", "conditions", "allocatedResources", "allocatedResourceStatuses")

Obj = Mapping[str, Any]


@dataclass(frozen=True)
class NodeRestrictionLookups:
    """Reads of stored objects the stage needs; None where the server cannot provide one."""

    get_pod: Callable[[str, str], Obj | None] | None = None  # (namespace, name) -> pod or None
    get_node: Callable[[str], Obj | None] | None = None  # name -> Node or None


def _denied(request: AdmissionRequest, message: str) -> AdmissionError:
    group, resource = request.group_resource
    return AdmissionError.from_api_error(forbidden(resource, request.name, message, group))


def _map(value: Any) -> Obj:
    return value if isinstance(value, Mapping) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _label_domain(key: str) -> str:
    prefix, slash, _ = key.partition("/")
    return prefix if slash else ""


def _in_domain(domain: str, parent: str) -> bool:
    return domain == parent or domain.endswith("." + parent)


def _is_kubelet_label(key: str) -> bool:
    return key in KUBELET_LABELS or any(_in_domain(_label_domain(key), d) for d in KUBELET_LABEL_DOMAINS)


def forbidden_node_labels(labels: Obj, old_labels: Obj) -> list[str]:
    """The label keys a kubelet may not add, change or remove, sorted."""
    modified = {k for k, v in labels.items() if old_labels.get(k, object()) != v}
    modified |= {k for k, v in old_labels.items() if labels.get(k, object()) != v}
    bad = set()
    for key in modified:
        domain = _label_domain(str(key))
        if _in_domain(domain, NODE_RESTRICTION_LABEL_DOMAIN):
            bad.add(str(key))
        if (_in_domain(domain, "kubernetes.io") or _in_domain(domain, "k8s.io")) and not _is_kubelet_label(str(key)):
            bad.add(str(key))
    return sorted(bad)


class NodeRestriction:
    """The NodeRestriction validating stage; safe to share between threads."""

    name = "NodeRestriction"

    def __init__(self, lookups: NodeRestrictionLookups = NodeRestrictionLookups()) -> None:
        self._lookups = lookups

    def validate(self, request: AdmissionRequest) -> AdmissionResult:
        node = self._node_name(request)
        if node is None or request.operation == CONNECT:
            return AdmissionResult(request.object)
        group, resource = request.group_resource
        check = {
            ("", "pods"): self._pod,
            ("", "nodes"): self._node,
            ("", "persistentvolumeclaims"): self._pvc,
            ("", "serviceaccounts"): self._service_account,
            ("coordination.k8s.io", "leases"): self._lease,
            ("storage.k8s.io", "csinodes"): self._csinode,
        }.get((group, resource))
        if check is not None:
            check(node, request)
        return AdmissionResult(request.object)

    @staticmethod
    def _node_name(request: AdmissionRequest) -> str | None:
        user = request.user_info
        if NODES_GROUP not in user.groups or not user.username.startswith(NODE_USER_PREFIX):
            return None
        name = user.username[len(NODE_USER_PREFIX):]
        if not name:
            raise _denied(request, f"could not determine node from user {go_quote(user.username)}")
        return name

    # -- pods ----------------------------------------------------------------------------

    def _pod(self, node: str, request: AdmissionRequest) -> None:
        sub = request.sub_resource
        if sub == "":
            if request.operation == CREATE:
                self._mirror_pod_create(node, request)
            elif request.operation == DELETE:
                if _map(_map(request.old_object).get("spec")).get("nodeName") != node:
                    raise _denied(request, f"node {go_quote(node)} can only delete pods with spec.nodeName set to "
                                           "itself")
            else:
                raise _denied(request, f"unexpected operation {go_quote(request.operation)}, node {go_quote(node)} "
                                       "can only create and delete mirror pods")
        elif sub == "status":
            if request.operation != UPDATE:
                raise _denied(request, f"unexpected operation {go_quote(request.operation)}")
            old, new = _map(request.old_object), _map(request.object)
            if _map(old.get("spec")).get("nodeName") != node:
                raise _denied(request, f"node {go_quote(node)} can only update pod status for pods with spec.nodeName "
                                       "set to itself")
            if (_map(_map(old.get("metadata")).get("labels")) or {}) != (_map(_map(new.get("metadata")).get("labels"))
                                                                        or {}):
                raise _denied(request, f"node {go_quote(node)} cannot update labels through pod status")
            if _claim_statuses(old) != _claim_statuses(new):
                raise _denied(request, f"node {go_quote(node)} cannot update resource claim statues")
        elif sub == "eviction":
            if request.operation != CREATE:
                raise _denied(request, f"unexpected operation {request.operation}")
            pod_name = request.name or str(_map(_map(request.object).get("metadata")).get("name") or "")
            if not pod_name:
                raise _denied(request, "could not determine pod from request data")
            pod = self._get_pod(request, request.namespace, pod_name)
            if _map(pod.get("spec")).get("nodeName") != node:
                raise _denied(request, f"node {node} can only evict pods with spec.nodeName set to itself")
        else:
            raise _denied(request, f"unexpected pod subresource {go_quote(sub)}, only 'status' and 'eviction' are "
                                   "allowed")

    def _mirror_pod_create(self, node: str, request: AdmissionRequest) -> None:
        pod = _map(request.object)
        metadata, spec = _map(pod.get("metadata")), _map(pod.get("spec"))
        quoted = go_quote(node)
        if MIRROR_POD_ANNOTATION not in _map(metadata.get("annotations")):
            raise _denied(request, f"pod does not have {go_quote(MIRROR_POD_ANNOTATION)} annotation, node {quoted} "
                                   "can only create mirror pods")
        if spec.get("nodeName") != node:
            raise _denied(request, f"node {quoted} can only create pods with spec.nodeName set to itself")
        owners = _list(metadata.get("ownerReferences"))
        if len(owners) > 1:
            raise _denied(request, f"node {quoted} can only create pods with a single owner reference set to itself")
        if not owners:
            raise _denied(request, f"node {quoted} can only create pods with an owner reference set to itself")
        owner = _map(owners[0])
        if (owner.get("apiVersion"), owner.get("kind"), owner.get("name")) != ("v1", "Node", node):
            raise _denied(request, f"node {quoted} can only create pods with an owner reference set to itself")
        if owner.get("controller") is not True:
            raise _denied(request, f"node {quoted} can only create pods with a controller owner reference set to "
                                   "itself")
        if owner.get("blockOwnerDeletion") is True:
            raise _denied(request, f"node {quoted} must not set blockOwnerDeletion on an owner reference")
        if self._lookups.get_node is None:
            raise _denied(request, f"error looking up node {node} to verify uid: no node lookup configured")
        stored = self._lookups.get_node(node)
        if stored is None:
            raise AdmissionError.from_api_error(not_found("nodes", node))
        expected_uid = _map(stored.get("metadata")).get("uid")
        if owner.get("uid") != expected_uid:
            raise _denied(request, f"node {node} UID mismatch: expected {owner.get('uid')} got {expected_uid}")
        if spec.get("serviceAccountName"):
            raise _denied(request, f"node {quoted} can not create pods that reference a service account")
        references = _pod_references(spec)
        for kind in ("secrets", "configmaps", "clustertrustbundles", "persistentvolumeclaims"):
            if kind in references:
                raise _denied(request, f"node {quoted} can not create pods that reference {kind}")

    def _get_pod(self, request: AdmissionRequest, namespace: str, name: str) -> Obj:
        if self._lookups.get_pod is None:
            raise _denied(request, "no pod lookup configured")
        pod = self._lookups.get_pod(namespace, name)
        if pod is None:
            raise AdmissionError.from_api_error(not_found("pods", name))
        return pod

    # -- nodes and the rest --------------------------------------------------------------

    def _node(self, node: str, request: AdmissionRequest) -> None:
        requested = request.name or (str(_map(_map(request.object).get("metadata")).get("name") or "")
                                     if request.operation == CREATE else "")
        if requested != node:
            raise _denied(request, f"node {go_quote(node)} is not allowed to modify node {go_quote(requested)}")
        new = _map(request.object)
        labels = _map(_map(new.get("metadata")).get("labels"))
        if request.operation == CREATE:
            if _map(new.get("spec")).get("configSource") is not None:
                raise _denied(request, f"node {go_quote(node)} is not allowed to create pods with a non-nil "
                                       "configSource")
            bad = forbidden_node_labels(labels, {})
            if bad:
                raise _denied(request, f"node {go_quote(node)} is not allowed to set the following labels: "
                                       f"{', '.join(bad)}")
        elif request.operation == UPDATE:
            old = _map(request.old_object)
            new_spec, old_spec = _map(new.get("spec")), _map(old.get("spec"))
            config_source = new_spec.get("configSource")
            if config_source is not None and config_source != old_spec.get("configSource"):
                raise _denied(request, f"node {go_quote(node)} is not allowed to update configSource to a new non-nil "
                                       "configSource")
            if (new_spec.get("taints") or []) != (old_spec.get("taints") or []):
                raise _denied(request, f"node {go_quote(node)} is not allowed to modify taints")
            bad = forbidden_node_labels(labels, _map(_map(old.get("metadata")).get("labels")))
            if bad:
                raise _denied(request, f"is not allowed to modify labels: {', '.join(bad)}")

    def _pvc(self, node: str, request: AdmissionRequest) -> None:
        if request.sub_resource != "status":
            raise _denied(request, "may only update PVC status")
        if request.operation != UPDATE:
            raise _denied(request, f"unexpected operation {go_quote(request.operation)}")
        old, new = _without_status_fields(request.old_object), _without_status_fields(request.object)
        if old != new:
            raise _denied(request, f"node {go_quote(node)} is not allowed to update fields other than "
                                   "status.capacity and status.conditions")

    def _service_account(self, node: str, request: AdmissionRequest) -> None:
        if request.operation != CREATE or request.sub_resource != "token":
            return
        ref = _map(_map(_map(request.object).get("spec")).get("boundObjectRef"))
        if not ref or ref.get("apiVersion") != "v1" or ref.get("kind") != "Pod" or not ref.get("name"):
            raise _denied(request, "node requested token not bound to a pod")
        if not ref.get("uid"):
            raise _denied(request, "node requested token with a pod binding without a uid")
        pod = self._get_pod(request, request.namespace, str(ref["name"]))
        if ref.get("uid") != _map(pod.get("metadata")).get("uid"):
            raise _denied(request, f"the UID in the bound object reference ({ref.get('uid')}) does not match the UID "
                                   "in record. The object might have been deleted and then recreated")
        if _map(pod.get("spec")).get("nodeName") != node:
            raise _denied(request, "node requested token bound to a pod scheduled on a different node")

    def _lease(self, node: str, request: AdmissionRequest) -> None:
        if request.namespace != NODE_LEASE_NAMESPACE:
            raise _denied(request, f"can only access leases in the {go_quote(NODE_LEASE_NAMESPACE)} system namespace")
        name = str(_map(_map(request.object).get("metadata")).get("name") or "") if request.operation == CREATE \
            else request.name
        if name != node:
            raise _denied(request, "can only access node lease with the same name as the requesting node")

    def _csinode(self, node: str, request: AdmissionRequest) -> None:
        name = str(_map(_map(request.object).get("metadata")).get("name") or "") if request.operation == CREATE \
            else request.name
        if name != node:
            raise _denied(request, "can only access CSINode with the same name as the requesting node")


def _claim_statuses(pod: Obj) -> list[tuple[Any, Any]]:
    return [(_map(s).get("name"), _map(s).get("resourceClaimName"))
            for s in _list(_map(pod.get("status")).get("resourceClaimStatuses"))]


def _pod_references(spec: Obj) -> set[str]:
    """Which kinds of object a pod spec refers to (secrets, configmaps, ...)."""
    found: set[str] = set()
    if _list(spec.get("imagePullSecrets")):
        found.add("secrets")
    for volume in _list(spec.get("volumes")):
        volume = _map(volume)
        if volume.get("secret") is not None:
            found.add("secrets")
        if volume.get("configMap") is not None:
            found.add("configmaps")
        if volume.get("persistentVolumeClaim") is not None:
            found.add("persistentvolumeclaims")
        for kind in ("azureFile", "cephfs", "cinder", "flexVolume", "iscsi", "rbd", "scaleIO", "storageos", "csi"):
            source = _map(volume.get(kind))
            if source.get("secretRef") or source.get("secretName") or source.get("nodePublishSecretRef"):
                found.add("secrets")
        for source in _list(_map(volume.get("projected")).get("sources")):
            source = _map(source)
            if source.get("secret") is not None:
                found.add("secrets")
            if source.get("configMap") is not None:
                found.add("configmaps")
            if source.get("clusterTrustBundle") is not None:
                found.add("clustertrustbundles")
    for field in ("containers", "initContainers", "ephemeralContainers"):
        for container in _list(spec.get(field)):
            container = _map(container)
            for env_from in _list(container.get("envFrom")):
                env_from = _map(env_from)
                if env_from.get("secretRef") is not None:
                    found.add("secrets")
                if env_from.get("configMapRef") is not None:
                    found.add("configmaps")
            for env in _list(container.get("env")):
                value_from = _map(_map(env).get("valueFrom"))
                if value_from.get("secretKeyRef") is not None:
                    found.add("secrets")
                if value_from.get("configMapKeyRef") is not None:
                    found.add("configmaps")
    return found


def _without_status_fields(pvc: Any) -> Any:
    """The PVC with what a node may change (and resourceVersion, managedFields) removed."""
    result = copy.deepcopy(dict(pvc)) if isinstance(pvc, Mapping) else {}
    metadata = result.get("metadata")
    if isinstance(metadata, dict):
        metadata.pop("resourceVersion", None)
        metadata.pop("managedFields", None)
    status = result.get("status")
    if isinstance(status, dict):
        for field in _PVC_STATUS_FIELDS:
            status.pop(field, None)
    return result
