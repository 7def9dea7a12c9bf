"""Gatekeeper ConstraintTemplates and Constraints as API objects, driven with real kubectl.

A template and constraint take effect as soon as they are stored, without a restart; invalid Rego
is refused with its place and nothing is stored; a template cannot be pulled from under its
constraints; only those allowed to write policy kinds can; and the policies survive a restart.
"""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.certs import issue_client, load_ca
from tests.integration.cluster import Cluster, free_port

pytestmark = pytest.mark.integration

TEMPLATE = """\
apiVersion: templates.gatekeeper.sh/v1
kind: ConstraintTemplate
metadata:
  name: k8srequiredowner
spec:
  crd:
    spec:
      names:
        kind: K8sRequiredOwner
      validation:
        openAPIV3Schema:
          type: object
          properties:
            label: {type: string}
  targets:
    - target: admission.k8s.gatekeeper.sh
      rego: |
        package k8srequiredowner

        violation contains {"msg": msg} if {
          not input.review.object.metadata.labels[input.parameters.label]
          msg := sprintf("%v %v needs the label %v", [input.review.kind.kind, input.review.object.metadata.name,
                                                      input.parameters.label])
        }
"""
BROKEN_TEMPLATE = """\
apiVersion: templates.gatekeeper.sh/v1
kind: ConstraintTemplate
metadata:
  name: k8sbroken
spec:
  crd:
    spec:
      names:
        kind: K8sBroken
  targets:
    - target: admission.k8s.gatekeeper.sh
      rego: |
        package k8sbroken

        violation contains {"msg": msg} if {
          msg := sprintf("%v", [input.review.object.metadata.name]
        }
"""


def constraint(action: str = "deny", label: str = "owner") -> str:
    return f"""\
apiVersion: constraints.gatekeeper.sh/v1beta1
kind: K8sRequiredOwner
metadata:
  name: configmaps-need-owner
spec:
  enforcementAction: {action}
  match:
    kinds:
      - apiGroups: [""]
        kinds: [ConfigMap]
    namespaces: [policy-lab]
  parameters:
    label: {label}
"""


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    c = Cluster(tmp_path_factory.mktemp("policy-objects") / "data", free_port()).start()
    c.kubectl("create", "namespace", "policy-lab")
    yield c
    c.stop()


def test_a_constraint_is_enforced_as_soon_as_it_is_stored(cluster: Cluster) -> None:
    cluster.kubectl("create", "configmap", "before", "-n", "policy-lab")  # nothing enforces yet
    cluster.kubectl("apply", "-f", "-", input=TEMPLATE)
    cluster.kubectl("apply", "-f", "-", input=constraint())
    assert "configmaps-need-owner" in cluster.kubectl("get", "k8srequiredowner").stdout
    denied = cluster.kubectl("create", "configmap", "unowned", "-n", "policy-lab", check=False)
    assert denied.returncode != 0
    assert "ConfigMap unowned needs the label owner" in denied.stderr
    assert "NotFound" in cluster.kubectl("get", "configmap", "unowned", "-n", "policy-lab", check=False).stderr
    owned = cluster.kubectl("apply", "-f", "-", input="apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: owned\n"
                                                     "  namespace: policy-lab\n  labels: {owner: alice}\n")
    assert "created" in owned.stdout
    cluster.kubectl("create", "configmap", "elsewhere", "-n", "default")  # outside the constraint's match


def test_warn_and_parameter_changes_apply_without_restart(cluster: Cluster) -> None:
    cluster.kubectl("apply", "-f", "-", input=TEMPLATE)
    cluster.kubectl("apply", "-f", "-", input=constraint(action="warn", label="team"))
    warned = cluster.kubectl("create", "configmap", "warned", "-n", "policy-lab")
    assert "Warning: " in warned.stderr and "ConfigMap warned needs the label team" in warned.stderr
    cluster.kubectl("apply", "-f", "-", input=constraint())  # back to deny on owner


def test_invalid_rego_is_refused_with_its_place_and_not_stored(cluster: Cluster) -> None:
    refused = cluster.kubectl("apply", "-f", "-", input=BROKEN_TEMPLATE, check=False)
    assert refused.returncode != 0
    assert 'ConstraintTemplate "k8sbroken" is invalid' in refused.stderr
    assert "spec.targets[0].rego:5:1:" in refused.stderr and "rego_parse_error" in refused.stderr
    assert "NotFound" in cluster.kubectl("get", "constrainttemplate", "k8sbroken", check=False).stderr


def test_parameters_outside_the_schema_are_refused(cluster: Cluster) -> None:
    cluster.kubectl("apply", "-f", "-", input=TEMPLATE)
    bad = constraint().replace("label: owner", "label: [owner]")
    refused = cluster.kubectl("apply", "-f", "-", input=bad, check=False)
    assert refused.returncode != 0 and "spec.parameters.label" in refused.stderr
    stored = cluster.kubectl("get", "k8srequiredowner", "configmaps-need-owner", "-o", "jsonpath={.spec.parameters}")
    assert stored.stdout == '{"label":"owner"}'


def test_a_template_cannot_be_deleted_under_its_constraints(cluster: Cluster) -> None:
    cluster.kubectl("apply", "-f", "-", input=TEMPLATE)
    cluster.kubectl("apply", "-f", "-", input=constraint())
    refused = cluster.kubectl("delete", "constrainttemplate", "k8srequiredowner", check=False)
    assert refused.returncode != 0 and "delete them first" in refused.stderr
    assert cluster.kubectl("get", "constrainttemplate", "k8srequiredowner").returncode == 0


def test_only_policy_writers_may_change_policies(cluster: Cluster, tmp_path: Path) -> None:
    cluster.kubectl("create", "rolebinding", "dev-edit", "--clusterrole=edit", "--user=dev", "-n", "policy-lab")
    cert = issue_client(tmp_path, "dev", load_ca(cluster.pki), "dev")
    with cluster.client(cert=cert) as client:
        attempt = client.delete("/apis/constraints.gatekeeper.sh/v1beta1/k8srequiredowner/configmaps-need-owner")
    assert attempt.status_code == 403
    assert 'cannot delete resource "k8srequiredowner" in API group "constraints.gatekeeper.sh"' in \
        attempt.json()["message"]


def test_policies_survive_a_restart_and_removal_ends_them(cluster: Cluster) -> None:
    cluster.kubectl("apply", "-f", "-", input=TEMPLATE)
    cluster.kubectl("apply", "-f", "-", input=constraint())
    cluster.stop()
    cluster.start()
    assert "needs the label owner" in cluster.kubectl("create", "configmap", "after-restart", "-n", "policy-lab",
                                                      check=False).stderr
    cluster.kubectl("delete", "k8srequiredowner", "configmaps-need-owner")
    cluster.kubectl("create", "configmap", "after-removal", "-n", "policy-lab")
    cluster.kubectl("delete", "constrainttemplate", "k8srequiredowner")
    gone = cluster.kubectl("get", "k8srequiredowner", check=False)
    assert gone.returncode != 0 and "k8srequiredowner" in gone.stderr
