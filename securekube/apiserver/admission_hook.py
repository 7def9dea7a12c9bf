"""Runs admission for a write inside the handler, after the body is decoded and before it is stored.

The handlers call `Admission.admit` with the object about to be written (and the stored one on
updates); it builds the AdmissionReview-shaped request, runs the RBAC escalation checks and the
admission chain, and returns the object to store. Warnings and audit annotations are gathered in a
`Notes` the handler hands back to the client (Warning header) and the audit stage.
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Callable

from securekube.admission.chain import AdmissionChain
from securekube.admission.interfaces import AdmissionError, AdmissionRequest
from securekube.api.errors import ApiError
from securekube.authn.interfaces import UserInfo
from securekube.registry.registry import Registry
from securekube.registry.store import Store

# (store, namespace, object, stored object or None, user) -> raises to refuse (RBAC escalation checks).
Guard = Callable[[Store, str, dict, "dict | None", UserInfo], None]


@dataclass
class Notes:
    """What admission said about one request besides its verdict."""

    warnings: list[str] = field(default_factory=list)
    audit_annotations: dict[str, str] = field(default_factory=dict)

    def add(self, warnings: list[str], annotations: dict[str, str]) -> None:
        self.warnings += [w for w in warnings if w not in self.warnings]
        self.audit_annotations.update(annotations)


class Admission:
    def __init__(self, registry: Registry, chain: AdmissionChain, guard: Guard) -> None:
        self._registry, self._chain, self._guard = registry, chain, guard

    def _namespace_object(self, store: Store, namespace: str) -> dict | None:
        if not store.type.namespaced or not namespace:
            return None
        try:
            return self._registry.store_for_kind("", "Namespace").get("", namespace)
        except ApiError as exc:
            if exc.code == 404:
                return None
            raise

    def admit(self, store: Store, namespace: str, operation: str, obj: dict | None, old: dict | None, user: UserInfo,
              *, subresource: str = "", dry_run: bool = False, notes: Notes | None = None) -> dict | None:
        """The object to write (possibly mutated); raises ApiError (AdmissionError) to refuse."""
        if obj is not None and operation in ("CREATE", "UPDATE"):
            self._guard(store, namespace, obj, old, user)
        t = store.type
        name = ((obj or old or {}).get("metadata") or {}).get("name", "")
        request = AdmissionRequest(
            uid=str(uuid.uuid4()), kind={"group": t.group, "version": t.version, "kind": t.kind},
            resource={"group": t.group, "version": t.version, "resource": t.plural}, sub_resource=subresource,
            name=name, namespace=namespace, operation=operation, user_info=user, object=obj, old_object=old,
            dry_run=dry_run, namespace_object=self._namespace_object(store, namespace))
        try:
            result = self._chain.admit(request)
        except AdmissionError as exc:
            if notes is not None:
                notes.add(exc.warnings, exc.audit_annotations)
            raise
        if notes is not None:
            notes.add(result.warnings, result.audit_annotations)
        return result.object if obj is not None else None
