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
  and constraints. All or nothing: if the stored set cannot be installed, the set in force stays
  and the failure is logged (only an engine failure can get there, since every write was checked).

The policies shipped in policies/ are loaded separately at start and are not touched here.
"""
from __future__ import annotations

import logging
import threading

from securekube.admission.gatekeeper import GatekeeperError
from securekube.admission.interfaces import DELETE, AdmissionError, AdmissionRequest, AdmissionResult
from securekube.admission.opa import RegoAdmission
from securekube.api import errors
from securekube.api.errors import Cause
from securekube.policy.interfaces import PolicyError
from securekube.registry.kinds.gatekeeper import (CONSTRAINT_GROUP, TEMPLATE_GROUP, ConstraintStrategy,
                                                  ConstraintTemplateStrategy, template_kind)
from securekube.registry.registry import Registry

log = logging.getLogger("securekube.admission")
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


class PolicyObjects:
    """Keeps RegoAdmission's templates and constraints equal to the stored objects; a validating stage."""

    name = "PolicyObjects"

    def __init__(self, registry: Registry, rego: RegoAdmission) -> None:
        self._registry = registry
        self._rego = rego
        self._lock = threading.Lock()
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

    def validate(self, request: AdmissionRequest) -> AdmissionResult:
        group, _ = request.group_resource
        if group not in (TEMPLATE_GROUP, CONSTRAINT_GROUP) or request.sub_resource:
            return AdmissionResult(request.object)
        with self._lock:  # the stored set cannot change under the check through another sync
            templates = self._stored_templates()
            kinds = {template_kind(t) for t in templates}
            constraints = self._stored_constraints(kinds)
        kind = str(request.kind.get("kind", ""))
        if group == TEMPLATE_GROUP:
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
            for kind in sorted(kinds - self._kinds):
                self._registry.catalog.register(ConstraintStrategy(kind))
            self._kinds |= kinds
            try:
                self._rego.replace(templates=templates, constraints=self._stored_constraints(kinds))
            except (PolicyError, GatekeeperError) as exc:
                log.error("stored policies not installed, the previous set stays in force: %s", exc)
                return
            for kind in sorted(self._kinds - kinds):
                self._registry.catalog.unregister(CONSTRAINT_GROUP, kind)
            self._kinds = kinds

    def after_write(self, group: str) -> None:
        """Called after any write; installs the stored set when the write was to a policy kind."""
        if group in (TEMPLATE_GROUP, CONSTRAINT_GROUP):
            self.sync()
