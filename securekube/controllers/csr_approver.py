"""The CSR approver: approves only well-formed kubelet client CSRs from the identities allowed to ask.

Two cases, as upstream's csrapproving controller (sarapprove) and kubeadm's bindings have them:
- a new node: requested by a bootstrap token (user `system:bootstrap:<id>` in group
  `system:bootstrappers`) who may create `certificatesigningrequests/nodeclient`;
- a renewal: requested by the node itself (user `system:node:<name>` in `system:nodes`, the same
  name as in the CSR) who may create `certificatesigningrequests/selfnodeclient`.
The request must be a kubelet client CSR (subject `CN=system:node:<name>, O=system:nodes`, no
SANs, usages digital signature + client auth, key encipherment tolerated, an ECDSA P-256 key).

Stricter than upstream: a bootstrap token cannot take over a name a live node holds (its Node
exists and its Lease in kube-node-lease is current), so a leaked token cannot mint credentials for
a running node. Anything else is left pending for a human (`kubectl certificate approve|deny`).
"""
from __future__ import annotations

import base64
import binascii
import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass

from securekube.api.errors import ApiError
from securekube.authn.interfaces import UserInfo
from securekube.authz.interfaces import Attributes, Authorizer, Verdict
from securekube.controllers.keyqueue import WatchedNames
from securekube.pki.csr import (KUBELET_CLIENT_SIGNER, NODE_USER_PREFIX, NODES_GROUP, CsrError, node_client_problems,
                                node_name_of_csr, parse_csr_pem)
from securekube.registry.kinds.certificatesigningrequests import APPROVED, DENIED, FAILED, has_condition
from securekube.registry.registry import Registry

log = logging.getLogger("securekube.controllers.csr_approver")
BOOTSTRAP_USER_PREFIX = "system:bootstrap:"
BOOTSTRAPPERS_GROUP = "system:bootstrappers"
NODE_LEASE_NAMESPACE = "kube-node-lease"
APPROVAL_REASON = "AutoApproved"
NEW_NODE_MESSAGE = "Auto approving kubelet client certificate after SubjectAccessReview."
RENEWAL_MESSAGE = "Auto approving self kubelet client certificate after SubjectAccessReview."

Clock = Callable[[], dt.datetime]


@dataclass(frozen=True)
class ApprovalDecision:
    """The approver's answer for one CSR: approve (with the message to record) or leave it, and why."""

    approve: bool
    why: str


def _requester(spec: dict) -> UserInfo:
    extra = spec.get("extra") if isinstance(spec.get("extra"), dict) else {}
    return UserInfo(str(spec.get("username") or ""), str(spec.get("uid") or ""),
                    tuple(str(g) for g in spec.get("groups") or ()),
                    {str(k): tuple(str(x) for x in v) for k, v in extra.items() if isinstance(v, list)})


def _may_create(authorizer: Authorizer, user: UserInfo, subresource: str) -> bool:
    attrs = Attributes(user=user, verb="create", resource_request=True, api_group="certificates.k8s.io",
                       api_version="v1", resource="certificatesigningrequests", subresource=subresource)
    return authorizer.authorize(attrs).verdict is Verdict.ALLOW


def decide(csr: dict, authorizer: Authorizer, node_is_live: Callable[[str], bool]) -> ApprovalDecision:
    """Whether to approve `csr` (a CertificateSigningRequest object), and why (for the condition or the log)."""
    spec = csr.get("spec") if isinstance(csr.get("spec"), dict) else {}
    if spec.get("signerName") != KUBELET_CLIENT_SIGNER:
        return ApprovalDecision(False, "not for the kubelet client signer")
    if any(has_condition(csr, kind) for kind in (APPROVED, DENIED, FAILED)):
        return ApprovalDecision(False, "already decided")
    try:
        request = parse_csr_pem(base64.b64decode(str(spec.get("request") or ""), validate=True))
    except (CsrError, ValueError, binascii.Error):
        return ApprovalDecision(False, "the request does not parse")
    usages = spec.get("usages") if isinstance(spec.get("usages"), list) else []
    problems = node_client_problems(request, usages)
    if problems:
        return ApprovalDecision(False, "not a well-formed kubelet client CSR: " + "; ".join(problems))
    node = node_name_of_csr(request)
    user = _requester(spec)
    if user.username == NODE_USER_PREFIX + node and NODES_GROUP in user.groups:
        if not _may_create(authorizer, user, "selfnodeclient"):
            return ApprovalDecision(False, f"{user.username} may not create certificatesigningrequests/selfnodeclient")
        return ApprovalDecision(True, RENEWAL_MESSAGE)
    if user.username.startswith(BOOTSTRAP_USER_PREFIX) and BOOTSTRAPPERS_GROUP in user.groups:
        if node_is_live(node):
            return ApprovalDecision(False, f"node {node} is live: a bootstrap token may only join a new node")
        if not _may_create(authorizer, user, "nodeclient"):
            return ApprovalDecision(False, f"{user.username} may not create certificatesigningrequests/nodeclient")
        return ApprovalDecision(True, NEW_NODE_MESSAGE)
    return ApprovalDecision(False, f"requested by {user.username!r}, neither a bootstrap token nor node {node} itself")


def _parse_micro_time(value: object) -> dt.datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def _undecided_kubelet_client(csr: dict) -> bool:
    undecided = not (csr.get("status") or {}).get("conditions")
    return undecided and (csr.get("spec") or {}).get("signerName") == KUBELET_CLIENT_SIGNER


class CsrApprover:
    """Watches CSRs and approves, through the `approval` subresource, those `decide` accepts."""

    def __init__(self, registry: Registry, authorizer: Authorizer,
                 clock: Clock = lambda: dt.datetime.now(dt.timezone.utc)) -> None:
        self._csrs = registry.store_for_kind("certificates.k8s.io", "CertificateSigningRequest")
        self._nodes = registry.store_for_kind("", "Node")
        self._leases = registry.store_for_kind("coordination.k8s.io", "Lease")
        self._authorizer = authorizer
        self._clock = clock
        self._watch = WatchedNames(self._csrs, "csr-approver", _undecided_kubelet_client, self.approve_if_allowed)
        self.informer = self._watch.informer

    def start(self) -> None:
        self._watch.start()

    def stop(self) -> None:
        self._watch.stop()

    def node_is_live(self, name: str) -> bool:
        """Whether node `name` exists and renewed its lease within the lease's duration."""
        try:
            self._nodes.get("", name)
        except ApiError as exc:
            if exc.code == 404:
                return False
            raise
        try:
            lease = self._leases.get(NODE_LEASE_NAMESPACE, name)
        except ApiError as exc:
            if exc.code == 404:
                return False
            raise
        spec = lease.get("spec") or {}
        renewed = _parse_micro_time(spec.get("renewTime"))
        duration = spec.get("leaseDurationSeconds")
        if renewed is None or not isinstance(duration, int):
            return True  # a lease we cannot read could be live: refuse the takeover
        return self._clock() < renewed + dt.timedelta(seconds=duration)

    def approve_if_allowed(self, name: str) -> None:
        """Reads CSR `name` afresh and approves it if `decide` says so."""
        verdict = decide(self._csrs.get("", name), self._authorizer, self.node_is_live)
        if not verdict.approve:
            log.info("CSR %s left pending: %s", name, verdict.why)
            return

        def approve(csr: dict) -> dict:
            if any(has_condition(csr, kind) for kind in (APPROVED, DENIED, FAILED)):
                return csr  # someone decided meanwhile: theirs stands
            status = csr.setdefault("status", {})
            status.setdefault("conditions", []).append({
                "type": APPROVED, "status": "True", "reason": APPROVAL_REASON, "message": verdict.why})
            return csr

        self._csrs.guaranteed_update("", name, approve, subresource="approval")
        log.info("CSR %s approved: %s", name, verdict.why)
