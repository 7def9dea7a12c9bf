"""The real kubectl reads our OpenAPI v3: `explain` shows fields and types, `apply` validates strictly on the server."""
from __future__ import annotations

import re

import pytest

from tests.integration.cluster import restricted_pod_yaml

pytestmark = pytest.mark.integration

# A field line of `kubectl explain`: two spaces, the name, a tab, <type>, maybe -required-.
_FIELD = re.compile(r"^  (\w+)\t<([^>]+)>( -required-)?$")


def explain(cluster, path: str, *args: str) -> tuple[str, dict[str, str]]:
    """kubectl explain's output, and its top-level FIELDS as name -> type ("!" appended when required)."""
    out = cluster.kubectl("explain", path, *args).stdout
    fields = {m[1]: m[2] + ("!" if m[3] else "") for m in map(_FIELD.match, out.splitlines()) if m}
    return out, fields


def test_explain_container_security_context_lists_its_fields_with_types(cluster):
    out, fields = explain(cluster, "pods.spec.containers.securityContext")
    assert "FIELD: securityContext <SecurityContext>" in out
    assert fields == {
        "allowPrivilegeEscalation": "boolean", "appArmorProfile": "AppArmorProfile", "capabilities": "Capabilities",
        "privileged": "boolean", "procMount": "string", "readOnlyRootFilesystem": "boolean", "runAsGroup": "integer",
        "runAsNonRoot": "boolean", "runAsUser": "integer", "seLinuxOptions": "SELinuxOptions",
        "seccompProfile": "SeccompProfile", "windowsOptions": "WindowsSecurityContextOptions",
    }
    assert "DESCRIPTION:" in out and "enum: Default, Unmasked" in out


def test_explain_nested_paths_show_required_fields_enums_and_shared_types(cluster):
    out, fields = explain(cluster, "pods.spec.securityContext.seccompProfile")
    assert fields == {"localhostProfile": "string", "type": "string!"}
    assert "enum: Localhost, RuntimeDefault, Unconfined" in out
    _, fields = explain(cluster, "pods.spec.containers.resources")
    assert fields["limits"] == "map[string]Quantity"
    _, fields = explain(cluster, "pods.spec.containers.livenessProbe.httpGet")
    assert fields["port"] == "IntOrString!"
    _, fields = explain(cluster, "pods.spec")
    assert fields["containers"] == "[]Container!" and fields["volumes"] == "[]Volume"


def test_explain_cluster_role_rules(cluster):
    out, fields = explain(cluster, "clusterroles.rules")
    assert "GROUP:      rbac.authorization.k8s.io" in out and "FIELD: rules <[]PolicyRule>" in out
    assert fields == {"apiGroups": "[]string", "nonResourceURLs": "[]string", "resourceNames": "[]string",
                      "resources": "[]string", "verbs": "[]string!"}


def test_explain_node_status_conditions(cluster):
    out, fields = explain(cluster, "nodes.status.conditions")
    assert "FIELD: conditions <[]NodeCondition>" in out
    assert fields == {"lastHeartbeatTime": "string", "lastTransitionTime": "string", "message": "string",
                      "reason": "string", "status": "string!", "type": "string!"}


def test_explain_recursive_prints_the_whole_tree(cluster):
    out = cluster.kubectl("explain", "pods", "--recursive").stdout
    assert re.search(r"^ {6}seccompProfile\t<SeccompProfile>$", out, re.M)  # spec.securityContext.seccompProfile
    assert re.search(r"^ {8}type\t<string> -required-$", out, re.M)
    out = cluster.kubectl("explain", "constrainttemplates.spec", "--recursive").stdout
    assert re.search(r"^ {4}code\t<\[\]Object>$", out, re.M)


def test_apply_validate_strict_names_the_unknown_nested_field_and_warn_drops_it(cluster):
    cluster.kubectl("create", "namespace", "explain-a")
    pod = (restricted_pod_yaml("typo", "explain-a")
           .replace('    command: ["sleep", "3600"]', '    command: ["sleep", "3600"]\n    comand: [sh]')
           .replace("seccompProfile: {type: RuntimeDefault}", "seccompProfile: {type: RuntimeDefault, typo: x}"))
    assert "comand" in pod and "typo: x" in pod
    strict = cluster.kubectl("apply", "--validate=strict", "-f", "-", input=pod, check=False)
    assert strict.returncode != 0
    assert ('strict decoding error: unknown field "spec.containers[0].comand", '
            'unknown field "spec.securityContext.seccompProfile.typo"') in strict.stderr
    missing = cluster.kubectl("get", "pod", "-n", "explain-a", "typo", check=False)
    assert missing.returncode != 0 and "not found" in missing.stderr

    warned = cluster.kubectl("apply", "--validate=warn", "-f", "-", input=pod)
    assert 'unknown field "spec.containers[0].comand"' in warned.stderr
    stored = cluster.kubectl("get", "pod", "-n", "explain-a", "typo", "-o",
                             "jsonpath={.spec.containers[0]}{.spec.securityContext}").stdout
    assert "comand" not in stored and "typo" not in stored and '"RuntimeDefault"' in stored
