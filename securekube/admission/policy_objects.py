"""ConstraintTemplates and Constraints as API objects: checked before they are stored, in force once they are.

Because policies are API objects, changing one is authenticated, authorized and audited like
any write, and takes effect without a restart:

- `validate` (a validating admission stage) works out the complete set of templates and
  constraints the write would leave and asks RegoAdmission to check it with the real engine.
  Rego that does not parse or compile (refused with the place: template, line, column), a
  malformed template, parameters outside the template's schema, a constraint without its
  template, or deleting a template whose constraints still exist: refused, nothing stored.
- `sync` (after every write to these kinds, and at start) installs what is stored: the catalog
  serves the constraint kinds the templates define, and RegoAdmission evaluates the templates
  and constraints. All or nothing: if the stored set cannot be installed, the set in force stays,
  the catalog is left as it was, and PolicyNotInstalled is raised (at start the server refuses to
  start; after a write the client gets a 500 instead of a success).
- `serialized(group)` is held by the API handler around each write to these kinds, from
  admission through storage to `sync`: the check sees exactly the set the write changes, so two
  writes cannot each pass against a set the other is changing (a constraint created while its
  template is deleted, two templates claiming one Rego package).

The policies shipped in policies/ are loaded separately at start and are not touched here.
"""
from __future__ import annotations

import contextlib
import threading
from typing import ContextManager

from securekube.admission.gatekeeper import GatekeeperError
from securekube.admission.interfaces import DELETE, AdmissionError, AdmissionRequest, AdmissionResult
from securekube.admission.opa import RegoAdmission
from securekube.api import errors
from securekube.api.errors import Cause
from securekube.policy.interfaces import PolicyError
from securekube.registry.kinds.gatekeeper import (CONSTRAINT_GROUP, TEMPLATE_GROUP, ConstraintStrategy,
                                                  ConstraintTemplateStrategy, template_kind)
from securekube.registry.registry import Registry

_TEMPLATE_TYPE = ConstraintTemplateStrategy.type


def _name(obj: dict) -> str:
    return str((obj.get("metadata") or {}).get("name") or "")


def _typed(obj: dict, api_version: str, kind: str) -> dict:
    """The object with apiVersion and kind set (stored objects carry them; a request body might not)."""
    return {**obj, "apiVersion": obj.get("apiVersion") or api_version, "kind": obj.get("kind") or kind}


def _invalid(kind: str, name: str, message: str) -> AdmissionError:
    """422 Invalid with the problem as a cause on `spec`, which kubectl prints (it drops a bare message)."""
    group = TEMPLATE_GROUP if kind == "ConstraintTemplate" else CONSTRAINT_GROUP
    return AdmissionError.from_api_error(errors.invalid(kind, name, [Cause("FieldValueInvalid", message, "spec")],
                                                        group))


class PolicyNotInstalled(PolicyError):
    """The stored templates and constraints could not be installed; the previous set is in force."""


POLICY_GROUPS = (TEMPLATE_GROUP, CONSTRAINT_GROUP)


class PolicyObjects:
    """Keeps RegoAdmission's templates and constraints equal to the stored objects; a validating stage."""

    name = "PolicyObjects"

    def __init__(self, registry: Registry, rego: RegoAdmission) -> None:
        self._registry = registry
        self._rego = rego
        self._lock = threading.RLock()  # re-entered by validate and sync inside a serialized write
        self._kinds: set[str] = set()  # constraint kinds registered in the catalog

    # -- what is stored ------------------------------------------------------------------

    def _stored_templates(self) -> list[dict]:
        store = self._registry.store_for_kind(TEMPLATE_GROUP, _TEMPLATE_TYPE.kind)
        return [_typed(t, _TEMPLATE_TYPE.api_version, _TEMPLATE_TYPE.kind) for t in store.list("").items]

    def _stored_constraints(self, kinds: set[str]) -> list[dict]:
        constraints = []
        for kind in sorted(kinds):
            strategy = self._registry.catalog.by_kind(CONSTRAINT_GROUP, kind)
            if strategy is None:  # a template being created: it has no constraints yet
                continue
            store = self._registry.store_for_kind(CONSTRAINT_GROUP, kind)
            constraints += [_typed(c, strategy.type.api_version, kind) for c in store.list("").items]
        return constraints

    # -- admission -----------------------------------------------------------------------

    def serialized(self, group: str) -> ContextManager[object]:
        """What the API handler holds around a write of `group` (a no-op for other groups)."""
        return self._lock if group in POLICY_GROUPS else contextlib.nullcontext()

    def validate(self, request: AdmissionRequest) -> AdmissionResult:
        group, _ = request.group_resource
        if group not in POLICY_GROUPS or request.sub_resource:
            return AdmissionResult(request.object)
        with self._lock:
            return self._validate(request)

    def _validate(self, request: AdmissionRequest) -> AdmissionResult:
        templates = self._stored_templates()
        kinds = {template_kind(t) for t in templates}
        constraints = self._stored_constraints(kinds)
        kind = str(request.kind.get("kind", ""))
        if request.group_resource[0] == TEMPLATE_GROUP:
            templates = [t for t in templates if _name(t) != request.name]
            if request.operation == DELETE:
                defined = template_kind(request.old_object or {})
                left = sorted(_name(c) for c in constraints if c["kind"] == defined)
                if left:
                    raise AdmissionError(409, "Conflict", f'ConstraintTemplate "{request.name}" still has '
                                         f'{defined} constraints ({", ".join(left[:5])}); delete them first',
                                         {"name": request.name, "group": TEMPLATE_GROUP, "kind": kind})
                return AdmissionResult(None)
            templates.append(_typed(request.object or {}, _TEMPLATE_TYPE.api_version, _TEMPLATE_TYPE.kind))
        else:
            constraints = [c for c in constraints if (c["kind"], _name(c)) != (kind, request.name)]
            if request.operation == DELETE:
                return AdmissionResult(None)  # removing a constraint always leaves a valid set
            constraints.append(_typed(request.object or {}, f"{CONSTRAINT_GROUP}/v1beta1", kind))
        try:
            self._rego.check(templates=templates, constraints=constraints)
        except (PolicyError, GatekeeperError) as exc:
            # Fail closed: whatever the reason (Rego, shape, engine), nothing unchecked is stored.
            raise _invalid(kind, request.name, str(exc)) from None
        return AdmissionResult(request.object)

    # -- installing ----------------------------------------------------------------------

    def sync(self) -> None:
        """Serves the stored templates' kinds and installs the stored templates and constraints."""
        with self._lock:
            templates = self._stored_templates()
            kinds = {template_kind(t) for t in templates} - {""}
            added = sorted(kinds - self._kinds)
            for kind in added:  # served first: their stored constraints are listed through the catalog
                self._registry.catalog.register(ConstraintStrategy(kind))
            try:
                self._rego.replace(templates=templates, constraints=self._stored_constraints(kinds))
            except (PolicyError, GatekeeperError) as exc:
                for kind in added:
                    self._registry.catalog.unregister(CONSTRAINT_GROUP, kind)
                raise PolicyNotInstalled(f"the stored ConstraintTemplates and Constraints could not be installed "
                                         f"(the previous set stays in force): {exc}") from None
            for kind in sorted(self._kinds - kinds):
                self._registry.catalog.unregister(CONSTRAINT_GROUP, kind)
            self._kinds = kinds

    def after_write(self, group: str) -> None:
        """Called after any write; installs the stored set when the write was to a policy kind.

        Raises a 500 ApiError when it cannot: the write is stored but not in force, and the
        client must not be told it succeeded.
        """
        if group not in POLICY_GROUPS:
            return
        try:
            self.sync()
        except PolicyNotInstalled as exc:
            raise errors.internal(str(exc)) from None
