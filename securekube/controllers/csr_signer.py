"""The CSR signer for `kubernetes.io/kube-apiserver-client-kubelet`: approved requests become certificates.

An approved, not denied or failed, not yet signed CSR of that signer gets a client certificate
from the cluster CA (pki/ca.crt, pki/ca.key) in `status.certificate`, through the `status`
subresource. The certificate lives `lifetime` (24 h by default) or less if the request asks
(spec.expirationSeconds, at least 10 minutes), so a stolen node credential dies quickly; the
kubelet renews it before then.

The request is checked again here, as upstream's signer does: an approval (a human's too) does not
make a malformed request signable. Such a request gets a Failed condition, reason
SignerValidationFailure, and no certificate.
"""
from __future__ import annotations

import base64
import binascii
import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from securekube.controllers.keyqueue import WatchedNames
from securekube.pki.certs import certificate_pem
from securekube.pki.csr import (KUBELET_CLIENT_SIGNER, CsrError, node_client_problems, parse_csr_pem,
                                sign_node_client_csr)
from securekube.pki.layout import PkiPaths, load_ca
from securekube.registry.kinds.certificatesigningrequests import APPROVED, DENIED, FAILED, has_condition
from securekube.registry.registry import Registry

log = logging.getLogger("securekube.controllers.csr_signer")
DEFAULT_LIFETIME = dt.timedelta(hours=24)
FAILURE_REASON = "SignerValidationFailure"

Clock = Callable[[], dt.datetime]


@dataclass(frozen=True)
class SignerConfig:
    """Where the cluster CA is, and how long the certificates it signs for kubelets live."""

    pki_dir: Path
    lifetime: dt.timedelta = DEFAULT_LIFETIME


def wants_signing(csr: dict) -> bool:
    """Whether `csr` is this signer's, approved, and still waiting for its certificate."""
    return ((csr.get("spec") or {}).get("signerName") == KUBELET_CLIENT_SIGNER
            and has_condition(csr, APPROVED) and not has_condition(csr, DENIED) and not has_condition(csr, FAILED)
            and not (csr.get("status") or {}).get("certificate"))


def lifetime_for(csr: dict, maximum: dt.timedelta) -> dt.timedelta:
    """The certificate's lifetime: the signer's, or the shorter one the request asks for."""
    seconds = (csr.get("spec") or {}).get("expirationSeconds")
    if isinstance(seconds, int) and not isinstance(seconds, bool) and seconds > 0:
        return min(maximum, dt.timedelta(seconds=seconds))
    return maximum


class CsrSigner:
    """Watches CSRs and signs those `wants_signing` picks."""

    def __init__(self, registry: Registry, config: SignerConfig,
                 clock: Clock = lambda: dt.datetime.now(dt.timezone.utc)) -> None:
        self._csrs = registry.store_for_kind("certificates.k8s.io", "CertificateSigningRequest")
        self._config = config
        self._clock = clock
        self._watch = WatchedNames(self._csrs, "csr-signer", wants_signing, self.sign_if_approved)
        self.informer = self._watch.informer

    def start(self) -> None:
        self._watch.start()

    def stop(self) -> None:
        self._watch.stop()

    def sign_if_approved(self, name: str) -> None:
        """Reads CSR `name` afresh and writes its certificate, or a Failed condition, if it is due."""
        csr = self._csrs.get("", name)
        if not wants_signing(csr):
            return
        spec = csr.get("spec") or {}
        usages = spec.get("usages") if isinstance(spec.get("usages"), list) else []
        try:
            request = parse_csr_pem(base64.b64decode(str(spec.get("request") or ""), validate=True))
            problems = node_client_problems(request, usages)
        except (CsrError, ValueError, binascii.Error) as exc:
            problems = [str(exc)]
        if problems:
            self._fail(name, "invalid kubelet client certificate request: " + "; ".join(problems))
            return
        now = self._clock()
        # Read for every signature, so a rotated CA is used at once; the key never leaves this function.
        ca = load_ca(PkiPaths(self._config.pki_dir), "ca")
        certificate = sign_node_client_csr(request, usages, ca, lifetime=lifetime_for(csr, self._config.lifetime),
                                           now=now)
        encoded = base64.b64encode(certificate_pem(certificate)).decode("ascii")

        def store_certificate(current: dict) -> dict:
            if wants_signing(current):
                current.setdefault("status", {})["certificate"] = encoded
            return current

        self._csrs.guaranteed_update("", name, store_certificate, subresource="status")
        log.info("CSR %s signed: %s until %s", name, certificate.subject.rfc4514_string(),
                 certificate.not_valid_after_utc.isoformat())

    def _fail(self, name: str, message: str) -> None:
        def add_failed(current: dict) -> dict:
            if wants_signing(current):
                current.setdefault("status", {}).setdefault("conditions", []).append(
                    {"type": FAILED, "status": "True", "reason": FAILURE_REASON, "message": message})
            return current

        self._csrs.guaranteed_update("", name, add_failed, subresource="status")
        log.warning("CSR %s not signed: %s", name, message)
