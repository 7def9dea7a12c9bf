"""PolicyObjects: stored ConstraintTemplates/Constraints checked before they are stored, installed all or nothing,
and writes to them serialised so that no check runs against a set another write is changing."""
from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from securekube.admission.interfaces import CREATE, AdmissionError, AdmissionRequest
from securekube.admission.opa import RegoAdmission, RegoAdmissionConfig
from securekube.admission.policy_objects import CONSTRAINT_GROUP, TEMPLATE_GROUP, PolicyNotInstalled, PolicyObjects
from securekube.api.errors import ApiError
from securekube.authn.interfaces import UserInfo
from securekube.policy.embedded import EmbeddedOpaEngine
from securekube.registry.registry import Registry
from securekube.storage.sqlite import SqliteStorage
from securekube.storage.transform.identity import IdentityTransformer

ADMIN = UserInfo(username="admin", groups=("system:masters",))


def template(kind: str, package: str) -> dict[str, Any]:
    return {"apiVersion": "templates.gatekeeper.sh/v1", "kind": "ConstraintTemplate",
            "metadata": {"name": kind.lower()},
            "spec": {"crd": {"spec": {"names": {"kind": kind}}},
                     "targets": [{"target": "admission.k8s.gatekeeper.sh",
                                  "rego": f'package {package}\n\nviolation contains {{"msg": "no"}} if '
                                          'input.review.object.metadata.name == "bad"\n'}]}}


def constraint(kind: str, name: str) -> dict[str, Any]:
    return {"apiVersion": "constraints.gatekeeper.sh/v1beta1", "kind": kind, "metadata": {"name": name}, "spec": {}}


def create_request(obj: dict[str, Any]) -> AdmissionRequest:
    group, version = obj["apiVersion"].split("/")
    resource = "constrainttemplates" if group == TEMPLATE_GROUP else obj["kind"].lower()
    return AdmissionRequest(uid="u", kind={"group": group, "version": version, "kind": obj["kind"]},
                            resource={"group": group, "version": version, "resource": resource}, sub_resource="",
                            name=obj["metadata"]["name"], namespace="", operation=CREATE, user_info=ADMIN,
                            object=obj, old_object=None)


@pytest.fixture
def parts(tmp_path: Path) -> Iterator[tuple[Registry, RegoAdmission, PolicyObjects]]:
    registry = Registry(SqliteStorage(tmp_path / "state.db"), lambda resource, group: IdentityTransformer())
    engine = EmbeddedOpaEngine()
    rego = RegoAdmission(engine, RegoAdmissionConfig(eval_timeout=5))
    objects = PolicyObjects(registry, rego)
    objects.sync()
    yield registry, rego, objects
    engine.close()


def test_a_stored_set_that_cannot_be_installed_changes_nothing_and_says_so(parts) -> None:
    registry, rego, objects = parts
    templates = registry.store_for_kind(TEMPLATE_GROUP, "ConstraintTemplate")
    templates.create("", template("K8sA", "pkg_a"))
    objects.sync()
    # Stored past admission (as only a race or an engine change could): two templates, one Rego package.
    templates.create("", template("K8sB", "pkg_a"))
    with pytest.raises(PolicyNotInstalled, match="previous set stays in force"):
        objects.sync()
    assert [t.name for t in rego.templates] == ["k8sa"]
    assert registry.catalog.by_kind(CONSTRAINT_GROUP, "K8sB") is None  # its kind was not left half-served
    with pytest.raises(ApiError) as raised:  # after a write, the client hears of it as a 500
        objects.after_write(TEMPLATE_GROUP)
    assert raised.value.code == 500


def test_writes_to_policy_kinds_are_serialised_from_check_to_install(parts) -> None:
    """A constraint checked while its template is being deleted waits, then is refused: no orphan."""
    registry, rego, objects = parts
    templates = registry.store_for_kind(TEMPLATE_GROUP, "ConstraintTemplate")
    templates.create("", template("K8sA", "pkg_a"))
    objects.sync()
    outcome: list[object] = []

    def create_constraint() -> None:
        with objects.serialized(CONSTRAINT_GROUP):
            try:
                objects.validate(create_request(constraint("K8sA", "c1")))
                outcome.append("admitted")
            except AdmissionError as exc:
                outcome.append(exc)

    with objects.serialized(TEMPLATE_GROUP):  # the template's delete, from admission to install
        racer = threading.Thread(target=create_constraint)
        racer.start()
        racer.join(0.3)
        assert racer.is_alive() and outcome == []  # the constraint's check waits for the delete
        templates.delete("", "k8sa")
        objects.sync()
    racer.join(5)
    assert len(outcome) == 1 and isinstance(outcome[0], AdmissionError)
    assert "no ConstraintTemplate defines kind 'K8sA'" in outcome[0].message
    assert rego.templates == () and registry.catalog.by_kind(CONSTRAINT_GROUP, "K8sA") is None


def test_other_groups_are_not_serialised(parts) -> None:
    _, _, objects = parts
    assert objects.serialized(TEMPLATE_GROUP) is objects.serialized(CONSTRAINT_GROUP)
    assert objects.serialized("") is not objects.serialized(TEMPLATE_GROUP)
