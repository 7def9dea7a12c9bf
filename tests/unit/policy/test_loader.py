"""The policies/ loader: a broken or unconventional policy folder never reaches the serving engine."""
from __future__ import annotations

from pathlib import Path

import pytest

from securekube.policy.embedded import EmbeddedOpaEngine
from securekube.policy.interfaces import PolicyCompileError
from securekube.policy.loader import PolicyLoadError, load_policies, read_policies

POLICY = """package securekube.authz.{package}

deny contains "no bob" if input.spec.user == "bob"
"""

TESTS = """package securekube.authz.{package}_test

import data.securekube.authz.{package}

test_bob_is_denied if {{
\t{package}.deny == {{"no bob"}} with input as {{"spec": {{"user": "bob"}}}}
}}
"""


def write_policy(root: Path, name: str, policy: str | None = None, tests: str | None = None) -> Path:
    package = name.replace("-", "_")
    directory = root / name
    directory.mkdir(parents=True)
    (directory / "policy.rego").write_text(POLICY.format(package=package) if policy is None else policy)
    (directory / "policy_test.rego").write_text(TESTS.format(package=package) if tests is None else tests)
    return directory


def test_reads_each_folder_with_its_package_tests_and_samples(engine: EmbeddedOpaEngine, tmp_path: Path) -> None:
    directory = write_policy(tmp_path, "no-bob")
    (directory / "samples" / "allowed").mkdir(parents=True)
    (directory / "samples" / "allowed" / "ada.yaml").write_text("kind: SubjectAccessReview\n")
    (directory / "samples" / "disallowed").mkdir()
    (directory / "samples" / "disallowed" / "bob.yaml").write_text("kind: SubjectAccessReview\n")
    write_policy(tmp_path, "another")
    (tmp_path / ".git").mkdir()

    policies = read_policies(tmp_path, engine)

    assert [p.name for p in policies] == ["another", "no-bob"]
    policy = policies[1]
    assert policy.module.package == ("securekube", "authz", "no_bob")
    assert policy.is_authorization
    assert policy.tests is not None and policy.tests.rules == ("test_bob_is_denied",)
    assert policy.allowed_samples == (directory / "samples" / "allowed" / "ada.yaml",)
    assert policy.disallowed_samples == (directory / "samples" / "disallowed" / "bob.yaml",)


def test_load_puts_only_the_policies_into_the_engine(engine: EmbeddedOpaEngine, tmp_path: Path) -> None:
    write_policy(tmp_path, "no-bob")
    load_policies(tmp_path, engine)
    assert engine.evaluate("d := data.securekube.authz.no_bob.deny", {"spec": {"user": "bob"}}, timeout=1) == (
        {"d": ["no bob"]},
    )
    assert engine.evaluate("t := data.securekube.authz.no_bob_test", timeout=1) == ()


def test_a_syntax_error_names_the_file_and_line(engine: EmbeddedOpaEngine, tmp_path: Path) -> None:
    broken = 'package securekube.authz.no_bob\n\ndeny contains "x" if {\n\tinput.a ==\n}\n\nother := 1\n'
    write_policy(tmp_path, "no-bob", policy=broken)
    with pytest.raises(PolicyCompileError, match=r"no-bob/policy\.rego:5: rego_parse_error: unexpected } token"):
        read_policies(tmp_path, engine)


def test_a_syntax_error_in_the_tests_stops_loading_too(engine: EmbeddedOpaEngine, tmp_path: Path) -> None:
    write_policy(tmp_path, "no-bob", tests="package t\n\ntest_x if {\n\t1 ==\n}\n")
    with pytest.raises(PolicyCompileError, match=r"no-bob/policy_test\.rego:5: rego_parse_error"):
        read_policies(tmp_path, engine)


def test_a_broken_policy_leaves_the_engine_serving_the_old_ones(engine: EmbeddedOpaEngine, tmp_path: Path) -> None:
    good, bad = tmp_path / "good", tmp_path / "bad"
    write_policy(good, "no-bob")
    load_policies(good, engine)
    write_policy(bad, "no-bob")
    write_policy(bad, "typo", policy='package securekube.authz.typo\n\ndeny contains "x" if countt(input) > 1\n')

    with pytest.raises(PolicyCompileError, match=r"typo/policy\.rego:3: rego_type_error: undefined function countt"):
        load_policies(bad, engine)

    assert engine.evaluate("d := data.securekube.authz.no_bob.deny", {"spec": {"user": "bob"}}, timeout=1) == (
        {"d": ["no bob"]},
    )


def test_a_folder_without_a_policy_is_an_error(engine: EmbeddedOpaEngine, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(PolicyLoadError, match="empty: a policy folder needs a policy.rego"):
        read_policies(tmp_path, engine)


def test_a_policy_without_deny_is_an_error(engine: EmbeddedOpaEngine, tmp_path: Path) -> None:
    write_policy(tmp_path, "allowish", policy="package securekube.authz.allowish\n\nallow := true\n")
    with pytest.raises(PolicyLoadError, match="package securekube.authz.allowish does not define 'deny'"):
        read_policies(tmp_path, engine)


def test_two_folders_with_one_package_are_an_error(engine: EmbeddedOpaEngine, tmp_path: Path) -> None:
    write_policy(tmp_path, "first", policy=POLICY.format(package="same"))
    write_policy(tmp_path, "second", policy=POLICY.format(package="same"))
    with pytest.raises(PolicyLoadError, match="package securekube.authz.same is also the package of policy first"):
        read_policies(tmp_path, engine)


@pytest.mark.parametrize("call", ['http.send({"method": "get", "url": "http://example.invalid"})',
                                  'net.lookup_ip_addr("example.invalid")',
                                  "opa.runtime().env"])
def test_builtins_that_reach_outside_the_process_are_refused(engine: EmbeddedOpaEngine, tmp_path: Path,
                                                             call: str) -> None:
    policy = f"package securekube.authz.leaky\n\ndeny contains msg if {{\n\tmsg := sprintf(\"%v\", [{call}])\n}}\n"
    write_policy(tmp_path, "leaky", policy=policy)
    with pytest.raises(PolicyLoadError, match=r"leaky/policy\.rego: calls .*, which policies may not use"):
        read_policies(tmp_path, engine)


def test_a_missing_policies_directory_is_an_error(engine: EmbeddedOpaEngine, tmp_path: Path) -> None:
    with pytest.raises(PolicyLoadError, match="the policies directory does not exist"):
        read_policies(tmp_path / "nowhere", engine)
