"""The Node authorizer: what a kubelet may do, decided from the pods bound to its node.

A kubelet authenticates as user `system:node:<name>` in group `system:nodes`. Following
upstream's Node authorizer (plugin/pkg/auth/authorizer/node), such a request is allowed only
when it concerns the node itself or an object related to it through a pod bound to it
(`spec.nodeName`): the pod, and the Secrets, ConfigMaps, PersistentVolumeClaims and
ServiceAccount the pod references. So a compromised node can read the secrets of the pods it
runs, and no others.

Differences from upstream, all stricter: every other resource request from a node is DENIED
here instead of falling through to RBAC (upstream returns "no opinion"); writes to a Node
object or its status are limited to the node's own name instead of being left to the
NodeRestriction admission plugin; pod status writes and pod deletes are limited to pods bound
to the node; creating pods (mirror pods) and evictions are not allowed. Non-resource requests
(discovery, /healthz) are not about relationships and are left to the other authorizers.

The pod graph is fed incrementally with `apply_pod` / `remove_pod` (e.g. from a pod watch).
Concurrency: a decision reads one immutable mapping (node -> the objects related to it),
published by a single attribute assignment; writers are serialised by a lock readers never
take, and rebuild only the entries of the nodes a change touches.
"""
from __future__ import annotations

import threading
import types
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from securekube.api.selectors import FieldRequirement
from securekube.authn.interfaces import UserInfo
from securekube.authz.interfaces import Attributes, Decision, Verdict
from securekube.authz.rbac_model import go_quote

__all__ = [
    "NODE_LEASE_NAMESPACE",
    "NODES_GROUP",
    "NODE_USER_PREFIX",
    "RULES_NOT_ENUMERABLE",
    "InvalidPod",
    "NodeAuthorizer",
    "node_name_of",
]

NODE_USER_PREFIX = "system:node:"
NODES_GROUP = "system:nodes"
NODE_LEASE_NAMESPACE = "kube-node-lease"

# Upstream's answer when a rules review is asked for a node: its permissions are not a rule list.
RULES_NOT_ENUMERABLE = "node authorizer does not support user rule resolution"

_CORE = ""
_PODS = "pods"
_SECRETS = "secrets"
_CONFIGMAPS = "configmaps"
_PVCS = "persistentvolumeclaims"
_SERVICE_ACCOUNTS = "serviceaccounts"

# (resource, namespace, name) of an object a node may reach through its pods.
_ObjectKey = tuple[str, str, str]

_NO_OPINION = Decision(Verdict.NO_OPINION)
_ALLOW = Decision(Verdict.ALLOW)


class InvalidPod(ValueError):
    """A pod object without the namespace and name the graph is keyed by; nothing is changed."""


def node_name_of(user: UserInfo) -> str | None:
    """The node a user is, as upstream identifies nodes, or None for anyone else.

    A node is a user named `system:node:<name>` who is in group `system:nodes`; both are
    required, so neither a lookalike username nor group membership alone is enough. The name may
    be "" (a node that cannot be identified), which callers must refuse.
    """
    if not user.username.startswith(NODE_USER_PREFIX) or NODES_GROUP not in user.groups:
        return None
    return user.username[len(NODE_USER_PREFIX):]


@dataclass(frozen=True, slots=True)
class _BoundPod:
    """What one pod contributes to the graph: the node it is bound to and the keys it relates."""

    node: str
    keys: frozenset[_ObjectKey]


class NodeAuthorizer:
    """Authorizes requests from kubelets (`system:node:<name>` in `system:nodes`); NO_OPINION for others.

    Implements `securekube.authz.interfaces.Authorizer`.
    """

    def __init__(self) -> None:
        self._write_lock = threading.Lock()
        # Read side: node -> every object related to it. Replaced whole, never mutated.
        self._related: Mapping[str, frozenset[_ObjectKey]] = types.MappingProxyType({})
        # Writer side, only touched under the lock.
        self._pods: dict[tuple[str, str], _BoundPod] = {}
        self._counts: dict[str, Counter[_ObjectKey]] = {}  # node -> how many of its pods relate each key

    # ------------------------------------------------------------------ graph updates

    def apply_pod(self, pod: Mapping[str, Any]) -> None:
        """Adds or replaces (by namespace and name) one pod; a pod not bound to a node relates nothing.

        Raises InvalidPod if metadata.namespace or metadata.name is missing.
        """
        namespace, name = _pod_identity(pod)
        node = _string_at(pod, "spec", "nodeName")
        bound = _BoundPod(node, frozenset(_references(pod, namespace, name))) if node else None
        with self._write_lock:
            self._replace((namespace, name), bound)

    def remove_pod(self, namespace: str, name: str) -> None:
        """Forgets one pod and the access it gave its node; an unknown pod is ignored (deletes may repeat)."""
        with self._write_lock:
            self._replace((namespace, name), None)

    def rule_resolution_error(self, user: UserInfo) -> str | None:
        """Upstream's reason a rules review for `user` is incomplete, or None if this authorizer adds nothing."""
        return RULES_NOT_ENUMERABLE if node_name_of(user) is not None else None

    def _replace(self, pod_key: tuple[str, str], new: _BoundPod | None) -> None:
        old = self._pods.pop(pod_key, None)
        if new is not None:
            self._pods[pod_key] = new
        touched: set[str] = set()
        if old is not None:
            counts = self._counts[old.node]
            counts.subtract(old.keys)
            touched.add(old.node)
        if new is not None:
            self._counts.setdefault(new.node, Counter()).update(new.keys)
            touched.add(new.node)
        if not touched:
            return
        related = dict(self._related)
        for node in touched:
            counts = self._counts[node]
            live = frozenset(key for key, count in counts.items() if count > 0)
            if live:
                self._counts[node] = Counter({key: counts[key] for key in live})
                related[node] = live
            else:
                del self._counts[node]
                related.pop(node, None)
        self._related = types.MappingProxyType(related)

    # ------------------------------------------------------------------ decisions

    def authorize(self, attrs: Attributes) -> Decision:
        node = node_name_of(attrs.user)
        if node is None:
            return _NO_OPINION
        if not node:
            return _deny(f"unknown node for user {go_quote(attrs.user.username)}")
        if not attrs.resource_request:
            return _NO_OPINION
        rule = _RULES.get((attrs.api_group, attrs.resource))
        if rule is None:
            return _deny(f"node {_q(node)} cannot {attrs.verb} resource {go_quote(attrs.resource)} "
                         f"in API group {go_quote(attrs.api_group)}")
        # One reference for the whole decision: a consistent view even while pods change.
        related = self._related.get(node, frozenset())
        return rule(node, attrs, related)


# ---------------------------------------------------------------------- per-resource rules
# Each takes (node, request, objects related to the node) and returns ALLOW or DENY. The
# DENY reasons are upstream's wording.


def _deny(reason: str) -> Decision:
    return Decision(Verdict.DENY, reason)


def _q(value: str) -> str:
    """`value` in upstream's '...' quoting, with control characters escaped for the audit log."""
    return "'" + go_quote(value)[1:-1] + "'"


def _no_relationship(node: str) -> Decision:
    return _deny(f"no relationship found between node {_q(node)} and this object")


def _related_object(resource: str, node: str, attrs: Attributes, related: frozenset[_ObjectKey]) -> Decision:
    if not attrs.name:
        return _deny("No Object name found")
    if (resource, attrs.namespace, attrs.name) in related:
        return _ALLOW
    return _no_relationship(node)


def _read_referenced(resource: str) -> Callable[[str, Attributes, frozenset[_ObjectKey]], Decision]:
    """Secrets and ConfigMaps: get, or list/watch of one named object (how kubelets watch them)."""

    def rule(node: str, attrs: Attributes, related: frozenset[_ObjectKey]) -> Decision:
        if attrs.verb not in ("get", "list", "watch"):
            return _deny("can only read resources of this type")
        if attrs.subresource:
            return _deny("cannot read subresource")
        if not attrs.namespace:
            return _deny("can only read namespaced object of this type")
        return _related_object(resource, node, attrs, related)

    return rule


def _persistent_volume_claims(node: str, attrs: Attributes, related: frozenset[_ObjectKey]) -> Decision:
    if attrs.verb != "get":
        return _deny("can only get individual resources of this type")
    if attrs.subresource:
        return _deny("cannot get subresource")
    return _related_object(_PVCS, node, attrs, related)


def _service_account_tokens(node: str, attrs: Attributes, related: frozenset[_ObjectKey]) -> Decision:
    if attrs.verb != "create" or not attrs.name:
        return _deny("can only create tokens for individual service accounts")
    if attrs.subresource != "token":
        return _deny("can only create token subresource of serviceaccount")
    return _related_object(_SERVICE_ACCOUNTS, node, attrs, related)


def _nodes(node: str, attrs: Attributes, related: frozenset[_ObjectKey]) -> Decision:
    verb, name = attrs.verb, attrs.name
    if not attrs.subresource:
        if verb == "create":
            # A create names no object in the request; admission checks the body's name.
            return _ALLOW
        if verb in ("get", "list", "watch", "update", "patch"):
            # By name, not through the graph, so a kubelet can look for its Node before creating it.
            if name == node:
                return _ALLOW
            if not name:
                return _deny(f"node {_q(node)} cannot read all nodes, only its own Node object")
            return _deny(f"node {_q(node)} cannot {verb} {_q(name)}, only its own Node object")
    elif attrs.subresource == "status" and verb in ("update", "patch"):
        if name == node:
            return _ALLOW
        return _deny(f"node {_q(node)} cannot {verb} {_q(name)}, only its own Node object")
    return _deny(f"node {_q(node)} cannot {verb} nodes{_slash(attrs.subresource)}")


def _pods(node: str, attrs: Attributes, related: frozenset[_ObjectKey]) -> Decision:
    verb = attrs.verb
    if not attrs.subresource:
        if verb in ("get", "delete"):
            return _related_object(_PODS, node, attrs, related)
        if verb in ("list", "watch"):
            if _selects_node(attrs, node):
                return _ALLOW
            if attrs.name:
                return _related_object(_PODS, node, attrs, related)
            return _deny("can only list/watch pods with spec.nodeName field selector")
    elif attrs.subresource == "status" and verb in ("update", "patch"):
        return _related_object(_PODS, node, attrs, related)
    return _deny(f"node {_q(node)} cannot {verb} pods{_slash(attrs.subresource)}")


def _selects_node(attrs: Attributes, node: str) -> bool:
    """Whether the request's field selector pins spec.nodeName to this node (upstream's scoping)."""
    requirements = attrs.field_selector
    return any(
        isinstance(req, FieldRequirement) and req.path == "spec.nodeName" and req.equal and req.value == node
        for req in requirements
    )


def _leases(node: str, attrs: Attributes, related: frozenset[_ObjectKey]) -> Decision:
    verb = attrs.verb
    if verb not in ("get", "create", "update", "patch", "delete") or attrs.subresource:
        return _deny("can only get, create, update, patch, or delete a node lease")
    if attrs.namespace != NODE_LEASE_NAMESPACE:
        return _deny(f"can only access leases in the {go_quote(NODE_LEASE_NAMESPACE)} system namespace")
    # A create names no object in the request; admission checks the body's name.
    if verb != "create" and attrs.name != node:
        return _deny("can only access node lease with the same name as the requesting node")
    return _ALLOW


def _events(node: str, attrs: Attributes, related: frozenset[_ObjectKey]) -> Decision:
    # update/patch as upstream: the event recorder patches the count of a repeated event.
    if attrs.verb in ("create", "update", "patch") and not attrs.subresource:
        return _ALLOW
    return _deny(f"node {_q(node)} can only create, update or patch events")


def _certificate_signing_requests(node: str, attrs: Attributes, related: frozenset[_ObjectKey]) -> Decision:
    # get/list/watch as upstream: the kubelet waits for its request to be signed. Approval and
    # status are subresources and stay out of reach.
    if attrs.verb in ("create", "get", "list", "watch") and not attrs.subresource:
        return _ALLOW
    return _deny(f"node {_q(node)} can only create and read certificatesigningrequests")


def _access_reviews(node: str, attrs: Attributes, related: frozenset[_ObjectKey]) -> Decision:
    # Upstream's node rules: a kubelet asks the API server who may use its own API (TokenReview,
    # SubjectAccessReview). Both are computed per request and change nothing.
    if attrs.verb == "create" and not attrs.subresource and not attrs.name:
        return _ALLOW
    return _deny(f"node {_q(node)} can only create {attrs.resource}")


def _slash(subresource: str) -> str:
    return f"/{subresource}" if subresource else ""


_RULES: Mapping[tuple[str, str], Callable[[str, Attributes, frozenset[_ObjectKey]], Decision]] = (
    types.MappingProxyType({
        (_CORE, _SECRETS): _read_referenced(_SECRETS),
        (_CORE, _CONFIGMAPS): _read_referenced(_CONFIGMAPS),
        (_CORE, _PVCS): _persistent_volume_claims,
        (_CORE, _SERVICE_ACCOUNTS): _service_account_tokens,
        (_CORE, "nodes"): _nodes,
        (_CORE, _PODS): _pods,
        (_CORE, "events"): _events,
        ("events.k8s.io", "events"): _events,
        ("coordination.k8s.io", "leases"): _leases,
        ("certificates.k8s.io", "certificatesigningrequests"): _certificate_signing_requests,
        ("authorization.k8s.io", "subjectaccessreviews"): _access_reviews,
        ("authentication.k8s.io", "tokenreviews"): _access_reviews,
    })
)


# ---------------------------------------------------------------------- pod references


def _pod_identity(pod: Mapping[str, Any]) -> tuple[str, str]:
    namespace = _string_at(pod, "metadata", "namespace")
    name = _string_at(pod, "metadata", "name")
    if not namespace or not name:
        raise InvalidPod("a pod needs metadata.namespace and metadata.name")
    return namespace, name


def _references(pod: Mapping[str, Any], namespace: str, name: str) -> Iterator[_ObjectKey]:
    """Every object a bound pod gives its node access to, as upstream's graph populator finds them.

    The pod itself; its ServiceAccount; Secrets from imagePullSecrets, env, envFrom, secret and
    projected volumes and volume plugins' secret references; ConfigMaps from env, envFrom,
    configMap and projected volumes; PVCs from persistentVolumeClaim volumes and the claims of
    generic ephemeral volumes (named <pod>-<volume>). Everything is in the pod's namespace.
    Malformed parts are skipped: they can only make the node's access smaller.
    """
    yield (_PODS, namespace, name)
    spec = _mapping(pod.get("spec"))
    service_account = _string(spec.get("serviceAccountName")) or _string(spec.get("serviceAccount"))
    if service_account:
        yield (_SERVICE_ACCOUNTS, namespace, service_account)
    for resource, referenced in _named_references(spec, name):
        if referenced:
            yield (resource, namespace, referenced)


def _named_references(spec: Mapping[str, Any], pod_name: str) -> Iterator[tuple[str, str]]:
    for ref in _items(spec.get("imagePullSecrets")):
        yield _SECRETS, _string(ref.get("name"))
    for field in ("initContainers", "containers", "ephemeralContainers"):
        for container in _items(spec.get(field)):
            for env in _items(container.get("env")):
                source = _mapping(env.get("valueFrom"))
                yield _SECRETS, _string_at(source, "secretKeyRef", "name")
                yield _CONFIGMAPS, _string_at(source, "configMapKeyRef", "name")
            for env_from in _items(container.get("envFrom")):
                yield _SECRETS, _string_at(env_from, "secretRef", "name")
                yield _CONFIGMAPS, _string_at(env_from, "configMapRef", "name")
    for volume in _items(spec.get("volumes")):
        yield _SECRETS, _string_at(volume, "secret", "secretName")
        yield _CONFIGMAPS, _string_at(volume, "configMap", "name")
        for source in _items(_mapping(volume.get("projected")).get("sources")):
            yield _SECRETS, _string_at(source, "secret", "name")
            yield _CONFIGMAPS, _string_at(source, "configMap", "name")
        yield _SECRETS, _string_at(volume, "azureFile", "secretName")
        yield _SECRETS, _string_at(volume, "csi", "nodePublishSecretRef", "name")
        for plugin in ("cephfs", "cinder", "flexVolume", "iscsi", "rbd", "scaleIO", "storageos"):
            yield _SECRETS, _string_at(volume, plugin, "secretRef", "name")
        yield _PVCS, _string_at(volume, "persistentVolumeClaim", "claimName")
        if isinstance(volume.get("ephemeral"), Mapping) and _string(volume.get("name")):
            yield _PVCS, f"{pod_name}-{volume['name']}"


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _items(value: Any) -> Iterator[Mapping[str, Any]]:
    if isinstance(value, list):
        yield from (item for item in value if isinstance(item, Mapping))


def _string(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _string_at(obj: Mapping[str, Any], *path: str) -> str:
    value: Any = obj
    for key in path:
        value = _mapping(value).get(key)
    return _string(value)
