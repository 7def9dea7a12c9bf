"""fieldValidation against the kinds' derived field maps: Strict refuses, Warn warns and drops, Ignore drops."""
from __future__ import annotations

import copy

import pytest

from securekube.api.errors import ApiError
from securekube.api.fieldcheck import OBJECT_META_FIELDS, check, field_paths
from securekube.api.schemas import BUILT_IN_KINDS, kind_schema
from securekube.kubelet.cri import runtime_v1_pb2 as pb
from securekube.kubelet.node_status import NodeIdentity, node_object, node_status
from securekube.kubelet.pod_status import running_status
from securekube.kubelet.runtime import ContainerStatusView, PodStatusView
from securekube.registry.catalog import Catalog
from securekube.registry.kinds.certificatesigningrequests import CertificateSigningRequestStrategy
from securekube.registry.kinds.gatekeeper import ConstraintStrategy, ConstraintTemplateStrategy
from securekube.registry.kinds.nodes import NodeStrategy
from securekube.registry.kinds.pods import PodStrategy
from securekube.registry.kinds.rbac import ClusterRoleStrategy, RoleStrategy

POD = {
    "apiVersion": "v1", "kind": "Pod",
    "metadata": {"name": "web", "namespace": "team-a", "labels": {"app.kubernetes.io/name": "web"},
                 "annotations": {"anything": "goes"}},
    "spec": {
        "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [
            {"name": "app", "image": "localhost/web:1",
             "resources": {"limits": {"cpu": "100m", "memory": "64Mi"}},
             "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
             "livenessProbe": {"httpGet": {"port": 8080, "path": "/healthz"}},
             "env": [{"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]},
        ],
        "volumes": [{"name": "cache", "emptyDir": {}}, {"name": "legacy", "nfs": {"server": "x", "path": "/"}}],
        "tolerations": [{"key": "k", "operator": "Exists", "effect": "NoSchedule"}],
    },
}


def with_extra(obj: dict, *path: str | int, key: str = "foo") -> dict:
    changed = copy.deepcopy(obj)
    target = changed
    for step in path:
        target = target[step]
    target[key] = "bar"
    return changed


def strict_message(obj: dict, schema: dict) -> str:
    with pytest.raises(ApiError) as raised:
        check(obj, schema, "Strict")
    assert raised.value.code == 400
    return raised.value.message


def test_a_valid_pod_passes_strict_unchanged():
    assert check(POD, PodStrategy.schema, "Strict") == (POD, [])


@pytest.mark.parametrize("path, shown", [
    (("spec", "containers", 0), "spec.containers[0].foo"),
    (("spec", "containers", 0, "securityContext", "capabilities"),
     "spec.containers[0].securityContext.capabilities.foo"),
    (("spec", "securityContext", "seccompProfile"), "spec.securityContext.seccompProfile.foo"),
    (("spec", "containers", 0, "env", 0, "valueFrom", "fieldRef"), "spec.containers[0].env[0].valueFrom.fieldRef.foo"),
    (("spec", "volumes", 0, "emptyDir"), "spec.volumes[0].emptyDir.foo"),
    (("metadata",), "metadata.foo"),
])
def test_strict_names_an_unknown_field_at_any_depth_as_upstream(path, shown):
    message = strict_message(with_extra(POD, *path), PodStrategy.schema)
    assert message == f'strict decoding error: unknown field "{shown}"'


def test_warn_drops_unknown_fields_and_says_which_ignore_drops_them_silently():
    sent = with_extra(with_extra(POD, "spec", "containers", 0), "spec", "securityContext", key="bogus")
    kept, warnings = check(sent, PodStrategy.schema, "Warn")
    assert warnings == ['unknown field "spec.securityContext.bogus"', 'unknown field "spec.containers[0].foo"']
    assert kept == POD
    assert check(sent, PodStrategy.schema, "Ignore") == (POD, [])


def test_free_keys_and_undescribed_volume_sources_are_never_unknown():
    # Labels, annotations, resource lists and legacy storage plugins (described free-form) hold any keys.
    sent = copy.deepcopy(POD)
    sent["spec"]["containers"][0]["resources"]["limits"]["example.com/gpu"] = "1"
    sent["spec"]["volumes"][1]["nfs"]["readOnly"] = True
    assert check(sent, PodStrategy.schema, "Strict") == (sent, [])


def test_gatekeeper_parameters_and_a_csr_extra_are_free_but_their_neighbours_are_checked():
    constraint = {"apiVersion": "constraints.gatekeeper.sh/v1beta1", "kind": "K8sRequiredLabels",
                  "metadata": {"name": "must-have-owner"},
                  "spec": {"match": {"kinds": [{"apiGroups": [""], "kinds": ["Namespace"]}]},
                           "parameters": {"labels": ["owner"], "anything": {"nested": True}}}}
    assert check(constraint, ConstraintStrategy.schema, "Strict") == (constraint, [])
    assert strict_message(with_extra(constraint, "spec", "match", "kinds", 0), ConstraintStrategy.schema) == \
        'strict decoding error: unknown field "spec.match.kinds[0].foo"'

    csr = {"apiVersion": "certificates.k8s.io/v1", "kind": "CertificateSigningRequest", "metadata": {"name": "c"},
           "spec": {"request": "LS0t", "signerName": "kubernetes.io/kube-apiserver-client",
                    "extra": {"scopes.example.com": ["a", "b"]}}}
    assert check(csr, CertificateSigningRequestStrategy.schema, "Strict") == (csr, [])
    assert strict_message(with_extra(csr, "spec"), CertificateSigningRequestStrategy.schema) == \
        'strict decoding error: unknown field "spec.foo"'


def test_constraint_template_source_and_schema_are_free_but_targets_are_checked():
    template = {"apiVersion": "templates.gatekeeper.sh/v1", "kind": "ConstraintTemplate",
                "metadata": {"name": "k8srequiredlabels"},
                "spec": {"crd": {"spec": {"names": {"kind": "K8sRequiredLabels"},
                                          "validation": {"openAPIV3Schema": {"type": "object", "properties": {}}}}},
                         "targets": [{"target": "admission.k8s.gatekeeper.sh",
                                      "code": [{"engine": "Rego", "source": {"rego": "package x", "libs": []}}]}]}}
    assert check(template, ConstraintTemplateStrategy.schema, "Strict") == (template, [])
    assert strict_message(with_extra(template, "spec", "targets", 0), ConstraintTemplateStrategy.schema) == \
        'strict decoding error: unknown field "spec.targets[0].foo"'


def test_only_a_cluster_role_may_carry_an_aggregation_rule():
    aggregation = {"clusterRoleSelectors": [{"matchLabels": {"aggregate": "true"}}]}
    role = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": "r"},
            "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}], "aggregationRule": aggregation}
    assert strict_message(role, RoleStrategy.schema) == 'strict decoding error: unknown field "aggregationRule"'
    cluster_role = {**role, "kind": "ClusterRole"}
    assert check(cluster_role, ClusterRoleStrategy.schema, "Strict") == (cluster_role, [])
    assert strict_message(with_extra(cluster_role, "rules", 0), ClusterRoleStrategy.schema) == \
        'strict decoding error: unknown field "rules[0].foo"'


def test_what_the_kubelet_reports_about_its_node_and_pods_is_kept_whole():
    # The kubelet writes status with the default fieldValidation (Warn): a field missing from a
    # description would be dropped from every report, so its real output must check clean.
    identity = NodeIdentity("n1", "127.0.0.1", 10250)
    runtime = pb.VersionResponse(runtime_name="containerd", runtime_version="2.1.0")
    image = pb.Image(id="sha256:00", repo_tags=["localhost/web:1"], repo_digests=["localhost/web@sha256:00"], size=10)
    node = {**node_object(identity), "status": node_status(identity, runtime, [image])}
    assert check(node, NodeStrategy.schema, "Strict") == (node, [])

    now = "2024-05-01T12:00:00Z"
    view = PodStatusView("Running", True, "10.0.0.5", (
        ContainerStatusView("app", "running", "localhost/web:1", "containerd://abc", "sha256:00", started_at=now),
        ContainerStatusView("side", "terminated", "localhost/web:1", "containerd://def", "sha256:00",
                            reason="Error", exit_code=1, started_at=now, finished_at=now, restart_count=2)))
    status = running_status(POD, view, host_ip="127.0.0.1", start_time=now, now=now,
                            last_states={"app": {"exitCode": 0, "reason": "Completed"}}, backoffs={"side": 10})
    pod = {**POD, "status": status}
    assert check(pod, PodStrategy.schema, "Strict") == (pod, [])


def test_every_served_kind_checks_against_the_map_derived_from_its_description():
    for strategy in Catalog().strategies:
        t = strategy.type
        described = kind_schema(t.group, t.version, t.kind)
        assert described is not None, t.kind
        assert strategy.schema == field_paths(described), t.kind
    assert len(BUILT_IN_KINDS) == len(Catalog().strategies)


def test_object_meta_fields_are_upstreams():
    assert OBJECT_META_FIELDS == frozenset({
        "name", "generateName", "namespace", "selfLink", "uid", "resourceVersion", "generation", "creationTimestamp",
        "deletionTimestamp", "deletionGracePeriodSeconds", "labels", "annotations", "ownerReferences", "finalizers",
        "managedFields"})
