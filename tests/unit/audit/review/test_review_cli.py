"""`securekube audit query|summary|timeline|rbac-gen|report` as a user runs them."""
from __future__ import annotations

import io
import json
import sys

import pytest
import yaml

from securekube.cli.main import main


def test_query_table(review, fixtures):
    code, out, err = review("query", fixtures / "upstream-kube-apiserver.log", "--user", "alice")
    assert code == 0 and err == ""
    header, *rows = out.splitlines()
    assert header.split() == ["TIME", "USER", "VERB", "RESOURCE", "NAMESPACE", "NAME", "CODE", "DECISION"]
    assert [row.split()[1:] for row in rows] == [
        ["alice", "get", "secrets", "team-a", "db-password", "200", "allow"],
        ["kubernetes-admin", "(as", "alice)", "list", "pods", "team-a", "-", "200", "allow"]]


def test_query_jsonl_gives_the_log_lines_unchanged(review, fixtures):
    code, out, _ = review("query", fixtures / "upstream-kube-apiserver.log", "--verb", "get,list",
                          "--resource", "secrets", "-o", "jsonl")
    lines = (fixtures / "upstream-kube-apiserver.log").read_text().splitlines()
    assert code == 0
    assert out.splitlines() == [lines[1], lines[5], lines[6]]  # alice's, bob's, and the 401 (its only line)


def test_query_json_is_an_event_list(review, fixtures):
    code, out, _ = review("query", fixtures / "upstream-kube-apiserver.log", "--decision", "forbid", "-o", "json")
    data = json.loads(out)
    assert (data["kind"], data["apiVersion"]) == ("EventList", "audit.k8s.io/v1")
    assert [e["responseStatus"]["code"] for e in data["items"]] == [403, 403]


def test_query_options_repeat_and_take_commas(review, fixtures):
    _, by_comma, _ = review("query", fixtures / "upstream-kube-apiserver.log", "--code", "401,403", "-o", "jsonl")
    _, by_repeat, _ = review("query", fixtures / "upstream-kube-apiserver.log", "--code", "401", "--code", "403",
                             "-o", "jsonl")
    assert by_comma == by_repeat and len(by_comma.splitlines()) == 3


def test_query_reads_stdin(review, fixtures, monkeypatch):
    data = (fixtures / "upstream-kube-apiserver.log").read_bytes()
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))
    code, out, _ = review("query", "-", "--user", "bob", "-o", "jsonl")
    assert code == 0 and json.loads(out)["user"]["username"] == "bob"


def test_read_problems_go_to_stderr_with_places_and_results_still_come(review, fixtures):
    code, out, err = review("query", fixtures / "malformed.log", "--user", "frank", "-o", "jsonl")
    assert code == 0
    assert [json.loads(line)["auditID"] for line in out.splitlines()] == ["m-0002", "m-0003"]
    assert "securekube: warning: 8 input line(s)" in err
    assert "malformed.log:13: malformed JSON" in err


def test_nothing_found_is_said_on_stderr(review, fixtures):
    code, out, err = review("query", fixtures / "upstream-kube-apiserver.log", "--user", "nobody")
    assert code == 0 and out.startswith("TIME") and "No matching requests." in err


@pytest.mark.parametrize("args, message", [
    (["query", "missing.log"], "securekube: error: cannot read missing.log: No such file or directory"),
    (["query", "{log}", "--code", "4x"], "securekube: error: cannot read response code '4x'"),
    (["query", "{log}", "--since", "yesterday"], "securekube: error: cannot read time 'yesterday'"),
    (["query", "{log}", "--resource", "pods/"], "securekube: error: cannot read resource 'pods/'"),
    (["query", "{log}", "--decision", "deny"], "securekube: error: unknown decision 'deny'"),
    (["timeline", "{log}", "--object", "pods"], "securekube: error: cannot read object 'pods'"),
    (["rbac-gen", "{log}", "--serviceaccount", "deployer"], "securekube: error: cannot read ServiceAccount"),
    (["rbac-gen", "{log}", "--user", "nobody"], "securekube: error: no requests by nobody in the input"),
])
def test_user_mistakes_are_one_error_line(review, fixtures, tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    log = str(fixtures / "upstream-kube-apiserver.log")
    code, out, err = review(*(a.replace("{log}", log) for a in args))
    assert code == 1 and out == ""
    assert err.startswith(message) and err.count("\n") == 1


def test_terminal_control_characters_in_log_values_are_escaped(review, make_event, write_log):
    path = write_log("audit.log", make_event("x", user="mallory\x1b[2J\x1b[31m", name="evil\rname"))
    code, out, _ = review("query", path)
    assert code == 0 and "\x1b" not in out and "\r" not in out
    assert "mallory\\x1b[2J" in out


def test_summary_text_and_json(review, fixtures):
    code, out, _ = review("summary", fixtures / "upstream-kube-apiserver.log")
    assert code == 0
    assert out.startswith("12 requests by 8 identities from 2024-05-01T10:00:01.000100Z")
    for title in ("Top users", "Top service accounts", "Denials (2)", "Secret reads (2)",
                  "Exec/attach/port-forward (1)",
                  "RBAC and policy changes (1)", "Failed authentication (1)", "Requests by source IP"):
        assert f"\n{title}\n" in out
    code, out, _ = review("summary", fixtures / "malformed.log", "-o", "json")
    data = json.loads(out)
    assert data["requests"] == 4 and data["problems"]["skipped"] == 8


def test_summary_time_window(review, fixtures):
    _, out, _ = review("summary", fixtures / "upstream-kube-apiserver.log", "-o", "json",
                       "--since", "2024-05-01T10:05:00Z", "--until", "2024-05-01T10:10:00Z")
    assert json.loads(out)["requests"] == 4


def test_timeline_table_and_json(review, fixtures):
    code, out, _ = review("timeline", fixtures / "upstream-kube-apiserver.log", "--object", "pods/team-a/web-1")
    assert code == 0
    assert [line.split()[1:3] for line in out.splitlines()[1:]] == [
        ["carol", "create"], ["system:serviceaccount:ci:deployer", "delete"]]
    _, out, _ = review("timeline", fixtures / "upstream-kube-apiserver.log", "--user", "bob", "-o", "json")
    assert json.loads(out) == [{"time": "2024-05-01T10:01:00.000000Z", "user": "bob", "verb": "get",
                                "object": "secrets team-a/db-password", "code": 403, "decision": "forbid",
                                "sourceIP": "10.0.0.12",
                                "userAgent": "kubectl/v1.29.4 (darwin/arm64) kubernetes/55019c8"}]


def test_rbac_gen_writes_applyable_yaml(review, fixtures):
    code, out, _ = review("rbac-gen", fixtures / "upstream-kube-apiserver.log", "--serviceaccount", "ci:deployer",
                          "--name", "deployer-observed")
    assert code == 0
    documents = list(yaml.safe_load_all(out))
    assert [d["kind"] for d in documents] == ["Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding"]
    assert {d["metadata"]["name"] for d in documents} == {"deployer-observed"}


def test_report_writes_one_html_file(review, fixtures, tmp_path):
    out_file = tmp_path / "review.html"
    code, out, _ = review("report", fixtures / "upstream-kube-apiserver.log", "--html", out_file)
    assert code == 0 and out == f"wrote {out_file} (12 requests)\n"
    assert out_file.read_text().startswith("<!doctype html>")
    code, _, err = review("report", fixtures / "upstream-kube-apiserver.log", "--html", tmp_path)
    assert code == 1 and "is a directory" in err


@pytest.mark.parametrize("command", ["query", "summary", "timeline", "rbac-gen", "report"])
def test_each_command_explains_itself(review, capsys, command):
    with pytest.raises(SystemExit) as exit_info:
        review(command, "--help")
    assert exit_info.value.code == 0
    help_text = capsys.readouterr().out
    assert "FILE" in help_text and "example" in help_text


def test_commands_are_under_securekube_audit(fixtures, capsys):
    assert main(["audit", "query", str(fixtures / "upstream-kube-apiserver.log"), "--user", "bob", "-o", "jsonl"]) == 0
    assert json.loads(capsys.readouterr().out)["auditID"].endswith("03")


def test_an_error_after_reading_still_says_what_could_not_be_read(review, fixtures):
    code, _, err = review("rbac-gen", fixtures / "malformed.log", "--user", "nobody")
    assert code == 1
    assert err.splitlines()[0].startswith("securekube: warning: 8 input line(s)")
    assert err.splitlines()[-1] == "securekube: error: no requests by nobody in the input; nothing to generate"
