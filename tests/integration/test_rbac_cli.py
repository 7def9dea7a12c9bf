"""`securekube rbac who-can|explain` as a user runs them: against a live cluster set up with the real
kubectl (agreeing with `kubectl auth can-i`), and against the manifests in tests/fixtures/rbac."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from securekube.cli.main import main

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "rbac"

# What a new cluster grants on everything, hence also on secrets in any namespace.
BOOTSTRAP_ADMINS = {
    ("Group", "securekube:cluster-admins", "", "ClusterRoleBinding", "securekube:cluster-admins", "cluster-admin"),
    ("Group", "system:masters", "", "ClusterRoleBinding", "cluster-admin", "cluster-admin"),
}


def securekube(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """The real command, in its own process, as a user would run it."""
    return subprocess.run([sys.executable, "-m", "securekube.cli.main", *args], capture_output=True, text=True,
                          env=env, timeout=60, check=False)


def run(capsys, *args: str) -> tuple[int, str, str]:
    """The command in this process (much faster than a new one): exit code, stdout, stderr."""
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def run_against(cluster, monkeypatch, capsys, *args: str) -> tuple[int, str, str]:
    """The command in this process, finding the cluster through KUBECONFIG as kubectl does."""
    monkeypatch.setenv("KUBECONFIG", str(cluster.kubeconfig))
    return run(capsys, *args)


def finding_rows(output: str) -> set[tuple[str, str, str, str, str, str]]:
    rows = set()
    for finding in json.loads(output)["findings"]:
        subject, binding = finding["subject"], finding["binding"]
        rows.add((subject["kind"], subject["name"], subject.get("namespace", ""), binding["kind"], binding["name"],
                  finding["role"]["name"]))
    return rows


# ----------------------------------------------------------------------------- live cluster


@pytest.fixture(scope="module")
def review_cluster(cluster):
    """A cluster with bindings made by the real kubectl in namespaces `review` and `elsewhere`."""
    for namespace in ("review", "elsewhere"):
        cluster.kubectl("create", "namespace", namespace)
    cluster.kubectl("-n", "review", "create", "role", "secret-reader", "--verb=get", "--resource=secrets")
    cluster.kubectl("-n", "review", "create", "rolebinding", "readers", "--role=secret-reader", "--user=alice",
                    "--group=auditors", "--serviceaccount=review:ci")
    cluster.kubectl("create", "clusterrole", "secret-lister", "--verb=get,list", "--resource=secrets")
    cluster.kubectl("-n", "review", "create", "rolebinding", "bob-lists", "--clusterrole=secret-lister", "--user=bob")
    cluster.kubectl("-n", "elsewhere", "create", "rolebinding", "carol-lists", "--clusterrole=secret-lister",
                    "--user=carol")
    cluster.kubectl("create", "clusterrolebinding", "sre-view", "--clusterrole=view", "--group=sre")
    cluster.kubectl("create", "clusterrole", "log-reader", "--verb=get", "--resource=pods/log")
    cluster.kubectl("create", "clusterrolebinding", "dave-logs", "--clusterrole=log-reader", "--user=dave")
    return cluster


@pytest.mark.integration
def test_who_can_lists_exactly_the_subjects_and_their_bindings(review_cluster):
    result = securekube("rbac", "who-can", "get", "secrets", "-n", "review", "-o", "json", env=review_cluster.env())
    assert result.returncode == 0, result.stderr
    assert finding_rows(result.stdout) == BOOTSTRAP_ADMINS | {
        ("User", "alice", "", "RoleBinding", "readers", "secret-reader"),
        ("Group", "auditors", "", "RoleBinding", "readers", "secret-reader"),
        ("ServiceAccount", "ci", "review", "RoleBinding", "readers", "secret-reader"),
        ("User", "bob", "", "RoleBinding", "bob-lists", "secret-lister"),
    }


@pytest.mark.integration
def test_who_can_without_namespace_is_the_cluster_scope(review_cluster, monkeypatch, capsys):
    # Across all namespaces only cluster-wide bindings count: carol's and bob's RoleBindings do not.
    code, out, _ = run_against(review_cluster, monkeypatch, capsys, "rbac", "who-can", "list", "secrets", "-o", "json")
    assert code == 0 and finding_rows(out) == BOOTSTRAP_ADMINS


@pytest.mark.integration
def test_who_can_table(review_cluster):
    result = securekube("rbac", "who-can", "get", "secrets", "-n", "review", env=review_cluster.env())
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["SUBJECT", "KIND", "SUBJECT", "NAMESPACE", "BINDING", "ROLE"]
    assert ["ServiceAccount", "ci", "review", "RoleBinding/readers", "Role/secret-reader"] in [l.split() for l in lines]
    assert ["User", "bob", "RoleBinding/bob-lists", "ClusterRole/secret-lister"] in [l.split() for l in lines]
    assert len(lines) == 1 + 6


# (who, --group values, verb, resource, -n, kubectl extra args)
CAN_I_CASES = [
    ("alice", (), "get", "secrets", "review", ()),
    ("alice", (), "get", "secrets", "elsewhere", ()),
    ("bob", (), "list", "secrets", "review", ()),
    ("bob", (), "list", "secrets", "elsewhere", ()),
    ("carol", (), "list", "secrets", "elsewhere", ()),
    ("erin", ("auditors",), "get", "secrets", "review", ()),
    ("system:serviceaccount:review:ci", (), "get", "secrets", "review", ()),
    ("system:serviceaccount:other:ci", (), "get", "secrets", "review", ()),
    # kubectl resolves resources through discovery, so only kinds this server serves are compared here.
    ("sam", ("sre",), "list", "configmaps", "review", ()),
    ("sam", ("sre",), "get", "secrets", "review", ()),
    ("dave", (), "get", "pods/log", "review", ()),
    ("dave", (), "get", "pods", "review", ()),
    ("frank", (), "get", "/healthz", "", ()),
    ("frank", (), "create", "selfsubjectaccessreviews.authorization.k8s.io", "", ()),
    ("sam", ("sre",), "list", "pods", "", ("--all-namespaces",)),
]


def kubectl_can_i(cluster, user, groups, verb, resource, namespace, extra) -> int:
    args = ["auth", "can-i", verb]
    if resource.startswith("/"):
        args.append(resource)
    else:
        plural, _, subresource = resource.partition("/")
        args.append(plural)
        if subresource:
            args.append(f"--subresource={subresource}")
    if namespace:
        args += ["-n", namespace]
    args += ["--as", user, *(f"--as-group={g}" for g in groups), *extra]
    result = cluster.kubectl(*args, check=False)
    assert result.stdout.strip() in ("yes", "no"), result.stderr
    return result.returncode


@pytest.mark.integration
@pytest.mark.parametrize("user,groups,verb,resource,namespace,extra", CAN_I_CASES)
def test_explain_agrees_with_kubectl_auth_can_i(review_cluster, monkeypatch, capsys, user, groups, verb, resource,
                                               namespace, extra):
    expected = kubectl_can_i(review_cluster, user, groups, verb, resource, namespace, extra)
    args = ["rbac", "explain", user, verb, resource, *(f"--group={g}" for g in groups)]
    if namespace:
        args += ["-n", namespace]
    code, out, err = run_against(review_cluster, monkeypatch, capsys, *args, "-o", "json")
    assert code == expected, out + err
    explanation = json.loads(out)
    assert explanation["allowed"] is (expected == 0)
    if explanation["allowed"]:
        decided = explanation["decidedBy"]
        # The binding named is the one the API server's own reason names.
        assert decided["binding"]["name"] in explanation["reason"]


@pytest.mark.integration
def test_explain_text_names_binding_role_and_rule(review_cluster, monkeypatch, capsys):
    code, out, err = run_against(review_cluster, monkeypatch, capsys, "rbac", "explain",
                                 "system:serviceaccount:review:ci", "get", "secrets", "-n", "review")
    assert code == 0, err
    assert out.splitlines()[:5] == [
        'ALLOWED: user "system:serviceaccount:review:ci" may get secrets in API group "" in namespace "review"',
        ('  groups:   "system:serviceaccounts", "system:serviceaccounts:review", "system:authenticated" '
         '(implicit: "system:serviceaccounts", "system:serviceaccounts:review", "system:authenticated")'),
        '  binding:  RoleBinding "readers" in namespace "review", subject ServiceAccount "ci/review"',
        '  role:     Role "secret-reader"',
        '  rule:     rules[0] {apiGroups: [""], resources: ["secrets"], verbs: ["get"]}',
    ]


@pytest.mark.integration
def test_explicit_kubeconfig(review_cluster):
    env = {k: v for k, v in review_cluster.env().items() if k != "KUBECONFIG"}
    found = securekube("rbac", "who-can", "get", "secrets", "-n", "review", "-o", "json",
                       "--kubeconfig", str(review_cluster.kubeconfig), env=env)
    assert found.returncode == 0 and ("User", "alice", "", "RoleBinding", "readers", "secret-reader") in finding_rows(
        found.stdout)


@pytest.mark.integration
def test_unknown_context_is_a_one_line_error(review_cluster, monkeypatch, capsys):
    code, _, err = run_against(review_cluster, monkeypatch, capsys, "rbac", "who-can", "get", "secrets",
                               "--context", "nope")
    assert code == 1
    assert err == f'securekube: error: context "nope" not found in KUBECONFIG={review_cluster.kubeconfig}\n'


@pytest.mark.integration
def test_unreachable_server_is_one_line_without_credentials(review_cluster, tmp_path):
    from tests.integration.cluster import free_port

    config = yaml.safe_load(review_cluster.kubeconfig.read_text())
    dead = f"https://127.0.0.1:{free_port()}"
    config["clusters"][0]["cluster"]["server"] = dead
    path = tmp_path / "dead.kubeconfig"
    path.write_text(yaml.safe_dump(config))
    result = securekube("rbac", "explain", "alice", "get", "secrets", "--kubeconfig", str(path),
                        env=review_cluster.env())
    assert result.returncode == 1
    assert result.stderr == f"securekube: error: cannot reach {dead}: Connection refused\n"
    assert config["users"][0]["user"]["client-key-data"] not in result.stdout + result.stderr


# ----------------------------------------------------------------------------- a directory of manifests


def test_from_dir_who_can(capsys):
    code, out, err = run(capsys, "rbac", "who-can", "get", "secrets", "-n", "team-a", "--from-dir", str(FIXTURES),
                         "-o", "json")
    assert code == 0
    assert finding_rows(out) == {
        ("User", "alice", "", "RoleBinding", "readers", "secret-reader"),
        ("Group", "auditors", "", "RoleBinding", "readers", "secret-reader"),
        ("ServiceAccount", "ci", "team-a", "RoleBinding", "readers", "secret-reader"),
    }
    # The binding to the bootstrap ClusterRole "view" is flagged: the directory does not define it.
    assert err == ('warning: RoleBinding "viewers" in namespace "team-a" refers to ClusterRole "view", which does '
                   "not exist; it grants nothing\n")


def test_from_dir_with_bootstrap_policy_resolves_view(capsys):
    code, out, err = run(capsys, "rbac", "who-can", "list", "pods", "-n", "team-a", "--from-dir", str(FIXTURES),
                         "--with-bootstrap-policy", "-o", "json")
    assert code == 0 and err == ""
    assert finding_rows(out) == BOOTSTRAP_ADMINS | {("User", "victor", "", "RoleBinding", "viewers", "view"),
                                                    ("Group", "sre", "", "ClusterRoleBinding", "sre-monitoring",
                                                     "monitoring")}


def test_from_dir_reads_json_typed_lists_and_subresources(capsys):
    code, out, _ = run(capsys, "rbac", "who-can", "patch", "deployments.apps/scale", "-n", "x",
                       "--from-dir", str(FIXTURES))
    assert code == 0
    assert [line.split() for line in out.splitlines()[1:]] == [
        ["ServiceAccount", "release", "cicd", "ClusterRoleBinding/release-deployer", "ClusterRole/deployer"],
        ["User", "rita", "ClusterRoleBinding/release-deployer", "ClusterRole/deployer"],
    ]


def test_from_dir_nobody(capsys):
    code, out, _ = run(capsys, "rbac", "who-can", "delete", "nodes", "--from-dir", str(FIXTURES))
    assert code == 0 and out == 'no subject may delete nodes in API group "" at the cluster scope\n'


def test_from_dir_explain_resource_names(capsys):
    args = ("rbac", "explain", "system:serviceaccount:team-b:app", "get", "secrets", "-n", "team-a",
            "--from-dir", str(FIXTURES))
    code, out, _ = run(capsys, *args, "--name", "db-password")
    assert code == 0
    assert ('  rule:     rules[0] {apiGroups: [""], resources: ["secrets"], resourceNames: ["db-password"], '
            'verbs: ["get"]}') in out.splitlines()
    code, out, _ = run(capsys, *args)
    assert code == 1 and out.startswith('DENIED: user "system:serviceaccount:team-b:app" may not get secrets')
    assert '    RoleBinding "db-password" in namespace "team-a" (ClusterRole "db-password-reader")' in out.splitlines()


def test_from_dir_explain_aggregated_rule_and_url(capsys):
    code, out, _ = run(capsys, "rbac", "explain", "sam", "--group", "sre", "get", "pods/log", "-n", "team-a",
                       "--from-dir", str(FIXTURES))
    assert code == 0
    assert out.splitlines()[4:6] == [
        '  rule:     rules[1] {apiGroups: [""], resources: ["pods/log"], verbs: ["get"]}',
        '            aggregated from ClusterRole "monitoring-pods" rules[1]',
    ]
    code, out, _ = run(capsys, "rbac", "explain", "sam", "--group", "sre", "get", "/metrics/cadvisor",
                       "--from-dir", str(FIXTURES), "-o", "json")
    assert code == 0
    decided = json.loads(out)["decidedBy"]
    assert decided["rule"] == {"nonResourceURLs": ["/healthz", "/metrics/*"], "verbs": ["get"]}
    assert decided["aggregatedFrom"] == {"kind": "ClusterRole", "name": "monitoring-urls", "ruleIndex": 0}


def test_malformed_yaml_names_file_and_document_not_content(tmp_path, capsys):
    (tmp_path / "ok.yaml").write_text((FIXTURES / "team-a" / "roles.yaml").read_text())
    broken = tmp_path / "nested" / "secrets.yaml"
    broken.parent.mkdir()
    broken.write_text("apiVersion: v1\nkind: Secret\nstringData: {password: s3cr3t-value}\n---\n"
                      "kind: Secret\nstringData:\n  password: s3cr3t-value\n bad: [\n")
    code, out, err = run(capsys, "rbac", "who-can", "get", "secrets", "--from-dir", str(tmp_path))
    assert code == 1 and out == ""
    assert err.startswith(f"securekube: error: {broken}: document 2: not valid YAML (line ")
    assert "s3cr3t" not in err and err.count("\n") == 1


def test_invalid_rbac_object_names_file_document_and_field(tmp_path, capsys):
    (tmp_path / "list.yaml").write_text(yaml.safe_dump({"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": {"name": "b"},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "r"}, "subjects": []},
    ]}))
    code, _, err = run(capsys, "rbac", "who-can", "get", "pods", "--from-dir", str(tmp_path))
    assert code == 1
    assert err == (f"securekube: error: {tmp_path / 'list.yaml'}: document 1, items[1]: roleRef.kind: must be one of "
                   "ClusterRole\n")


@pytest.mark.parametrize("args,message", [
    (("--from-dir", "{empty}"), "no RBAC objects"),
    (("--from-dir", "{empty}/missing"), "is not a directory"),
    (("--from-dir", str(FIXTURES), "--context", "x"), "cannot be combined with --from-dir"),
    (("--with-bootstrap-policy",), "only applies to --from-dir"),
    (("--from-dir", str(FIXTURES), "-n", "x", "--resource-typo"), None),
])
def test_from_dir_usage_errors_are_one_line(tmp_path, capsys, args, message):
    argv = ["rbac", "who-can", "get", "pods", *(a.replace("{empty}", str(tmp_path)) for a in args)]
    if message is None:  # argparse's own usage error
        with pytest.raises(SystemExit) as exited:
            main(argv)
        assert exited.value.code == 2
        return
    code, _, err = run(capsys, *argv)
    assert code == 1 and message in err and err.count("\n") == 1


def test_non_resource_url_takes_no_namespace(capsys):
    code, _, err = run(capsys, "rbac", "explain", "alice", "get", "/healthz", "-n", "x", "--from-dir", str(FIXTURES))
    assert code == 1 and err == 'securekube: error: the non-resource URL "/healthz" takes no namespace and no name\n'
