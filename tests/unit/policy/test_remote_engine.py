"""The remote OPA engine against an OPA server over real TLS on loopback: same answers, fails closed."""
from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from securekube.admission.interfaces import AdmissionError
from securekube.admission.opa import RegoAdmission, RegoAdmissionConfig
from securekube.admission.review import request_from_review
from securekube.authz.opa import OPAAuthorizer, OPAAuthorizerConfig
from securekube.policy.admission_input import as_admission_review
from securekube.policy.compile_errors import with_columns
from securekube.policy.embedded import EmbeddedOpaEngine
from securekube.policy.interfaces import PolicyCompileError, PolicyError, PolicyTimeout
from securekube.policy.loader import read_policies, read_policy
from securekube.policy.opa_api import ApiResponse
from securekube.policy.opa_server import OpaServer, OpaServerConfig
from securekube.policy.remote import RemoteEngine, RemoteEngineConfig
from securekube.policy.testing import check_policy
from tests.unit.policy.opa_tls import TlsFiles, make_tls_files
from tests.unit.policy.test_shipped_policies import attributes_from_review

POLICIES = Path(__file__).resolve().parents[3] / "policies"
TOKEN = "opa-test-token-7f3a9c"
GREETING = 'package demo\n\ngreeting := sprintf("hello %s", [input.name])\n\nany_input := input\n'
# As in the embedded engine's tests: counting multiples of 7 up to n takes well over 0.05 s.
SLOW = "package slow\n\ncount_sevens := count([x | some x in numbers.range(1, input.n); x % 7 == 0])\n"
BROKEN = "package broken\n\nallow if {\n\tinput.a ==\n}\n"


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return make_tls_files(tmp_path_factory.mktemp("opa-tls"))


@pytest.fixture
def server(opa_available: None, tls: TlsFiles) -> Iterator[OpaServer]:
    config = OpaServerConfig(tls_cert_file=tls.server_cert, tls_private_key_file=tls.server_key,
                             tls_ca_cert_file=tls.ca, port=0, bearer_token=TOKEN, eval_timeout=10.0)
    with OpaServer(config) as running:
        yield running


def remote_config(server: OpaServer, tls: TlsFiles, **changes: object) -> RemoteEngineConfig:
    settings: dict[str, object] = dict(url=server.url, ca_file=tls.ca, client_cert_file=tls.client_cert,
                                       client_key_file=tls.client_key, bearer_token=TOKEN)
    settings.update(changes)
    return RemoteEngineConfig(**settings)  # type: ignore[arg-type]


@pytest.fixture
def remote(server: OpaServer, tls: TlsFiles) -> Iterator[RemoteEngine]:
    with RemoteEngine(remote_config(server, tls)) as engine:
        yield engine


# ------------------------------------------------------------------------- same answers


def test_evaluates_a_loaded_policy_like_the_embedded_engine(remote: RemoteEngine, engine: EmbeddedOpaEngine) -> None:
    for opa in (remote, engine):
        opa.load({"demo.rego": GREETING})
    for query, input_doc in [("x := data.demo.greeting", {"name": "ada"}),
                             ("x := data.demo.greeting", {}),  # undefined: no result
                             ("x := data.demo.nothing", {"name": "ada"}),
                             ("x := data.demo.any_input", {}),  # inputs that are falsy still arrive
                             ("x := data.demo.any_input", 0),
                             ("x := data.demo.any_input", None)]:
        assert remote.evaluate(query, input_doc, timeout=2) == engine.evaluate(query, input_doc, timeout=2)
    assert remote.evaluate("x := data.demo.greeting", {"name": "ada"}, timeout=2) == ({"x": "hello ada"},)
    assert remote.evaluate("x := data.demo.any_input", 0, timeout=2) == ({"x": 0},)


@pytest.mark.parametrize("name", ["no-latest-tag", "run-as-non-root", "deny-impersonating-masters"])
def test_shipped_policies_pass_the_same_tests_and_samples_remotely(remote: RemoteEngine, engine: EmbeddedOpaEngine,
                                                                   name: str) -> None:
    policy = read_policy(POLICIES / name, remote)  # parsed by OPA's parser on the server
    assert policy == read_policy(POLICIES / name, engine)
    over_the_wire, in_process = check_policy(policy, remote), check_policy(policy, engine)
    assert over_the_wire.passed, over_the_wire.failures()
    assert [(c.name, c.passed) for c in over_the_wire.cases] == [(c.name, c.passed) for c in in_process.cases]
    assert len(over_the_wire.cases) >= 3


def test_admission_samples_get_the_same_decisions_remotely(remote: RemoteEngine, engine: EmbeddedOpaEngine) -> None:
    stages = [RegoAdmission(opa, RegoAdmissionConfig(eval_timeout=5.0)) for opa in (remote, engine)]
    for policy in [p for p in read_policies(POLICIES, engine) if p.is_admission]:
        for stage in stages:
            stage.set_policies([policy])
        for path, denied in [(p, True) for p in policy.disallowed_samples] + \
                            [(p, False) for p in policy.allowed_samples]:
            request = request_from_review(as_admission_review(yaml.safe_load(path.read_text())))
            outcomes = []
            for stage in stages:
                try:
                    stage.validating.validate(request)
                    outcomes.append(None)
                except AdmissionError as denial:
                    outcomes.append(denial.message)
            assert outcomes[0] == outcomes[1], path
            assert (outcomes[0] is not None) == denied, path


def test_authorization_samples_get_the_same_verdicts_remotely(remote: RemoteEngine,
                                                              engine: EmbeddedOpaEngine) -> None:
    policies = [p for p in read_policies(POLICIES, engine) if p.is_authorization]
    authorizers = []
    for opa in (remote, engine):
        opa.load({p.module.module_name: p.module.source for p in policies})
        authorizer = OPAAuthorizer(opa, policies, OPAAuthorizerConfig(eval_timeout=5.0))
        authorizer.verify()
        authorizers.append(authorizer)
    samples = [path for p in policies for path in (*p.allowed_samples, *p.disallowed_samples)]
    assert samples
    for path in samples:
        attributes = attributes_from_review(yaml.safe_load(path.read_text()))
        remote_decision, local_decision = (a.authorize(attributes) for a in authorizers)
        assert (remote_decision.verdict, remote_decision.reason) == (local_decision.verdict, local_decision.reason)


def test_data_is_replaced_whole(remote: RemoteEngine) -> None:
    remote.load({"inv.rego": "package inv\n\nnames := object.keys(data.inventory)\n"})
    remote.set_data({"inventory": {"a": 1, "b": 2}})
    assert remote.evaluate("x := data.inv.names", timeout=2) == ({"x": ["a", "b"]},)
    remote.set_data({"inventory": {"c": 3}})
    assert remote.evaluate("x := data.inv.names", timeout=2) == ({"x": ["c"]},)
    with pytest.raises(PolicyError, match="not JSON"):
        remote.set_data({"inventory": float("nan")})


# ------------------------------------------------------------------- loading and errors


def test_a_compile_error_names_file_line_and_column_as_the_embedded_engine_does(
        remote: RemoteEngine, engine: EmbeddedOpaEngine) -> None:
    mid_line = "package mid\n\nallow if input.a == == 1\n"
    for name, source in [("policies/broken/policy.rego", BROKEN), ("mid.rego", mid_line)]:
        errors = []
        for opa in (remote, engine):
            with pytest.raises(PolicyCompileError) as raised:
                opa.load({name: source})
            errors.append(with_columns(str(raised.value)))
        assert errors[0] == errors[1]
    assert errors[0] == "mid.rego:3:21: rego_parse_error: unexpected equal token"
    # OPA locates type errors too; the embedded engine prints only their line.
    with pytest.raises(PolicyCompileError) as raised:
        remote.load({"typo.rego": "package typo\n\nallow if countt(input.items) > 1\n"})
    assert with_columns(str(raised.value)) == "typo.rego:3:10: rego_type_error: undefined function countt"


def test_check_compiles_without_installing_so_admission_can_refuse_before_storing(remote: RemoteEngine) -> None:
    remote.load({"kept.rego": "package kept\n\nallow := true\n"})
    with pytest.raises(PolicyCompileError, match="undefined function countt"):
        remote.check({"typo.rego": "package typo\n\nallow if countt(input.items) > 1\n"})
    remote.check({"fine.rego": "package fine\n\nallow := true\n"})
    assert remote.evaluate("x := data.kept.allow", timeout=5)[0]["x"] is True  # nothing was replaced
    assert remote.evaluate("x := data.fine.allow", timeout=5) == ()  # nor installed


def test_a_failed_load_leaves_the_modules_before_it_in_force(remote: RemoteEngine) -> None:
    remote.load({"demo.rego": GREETING})
    with pytest.raises(PolicyCompileError, match=r"broken\.rego:5: rego_parse_error"):
        remote.load({"demo.rego": GREETING.replace("hello", "bye"), "extra.rego": "package extra\n\nv := 1\n",
                     "broken.rego": BROKEN})
    assert remote.evaluate("x := data.demo.greeting", {"name": "ada"}, timeout=2) == ({"x": "hello ada"},)
    assert remote.evaluate("x := data.extra.v", timeout=2) == ()


def test_modules_no_longer_loaded_are_deleted_even_after_a_restart(server: OpaServer, tls: TlsFiles,
                                                                   remote: RemoteEngine) -> None:
    with RemoteEngine(remote_config(server, tls, policy_id_prefix="someone-else/")) as neighbour:
        neighbour.load({"theirs.rego": "package theirs\n\nv := 1\n"})
        remote.load({"a.rego": "package a\n\nv := 1\n", "b.rego": "package b\n\nv := 2\n"})
        remote.load({"a.rego": "package a\n\nv := 1\n"})
        assert remote.evaluate("x := data.b.v", timeout=2) == ()
        remote.load({"a.rego": "package a\n\nv := 1\n", "b.rego": "package b\n\nv := 2\n"})
        with RemoteEngine(remote_config(server, tls)) as restarted:  # knows nothing of b.rego
            restarted.load({"a.rego": "package a\n\nv := 1\n"})
            assert restarted.evaluate("x := data.b.v", timeout=2) == ()
            assert restarted.evaluate("x := data.theirs.v", timeout=2) == ({"x": 1},)


def test_evaluation_errors_are_policy_errors_naming_the_module(remote: RemoteEngine) -> None:
    remote.load({"c.rego": "package c\n\nv := input.a\n\nv := input.b\n"})
    with pytest.raises(PolicyError, match=r"c\.rego:3: eval_conflict_error") as raised:
        remote.evaluate("x := data.c.v", {"a": 1, "b": 2}, timeout=2)
    assert not isinstance(raised.value, PolicyCompileError)
    with pytest.raises(PolicyError, match="rego_parse_error"):
        remote.evaluate("x := ", timeout=2)


# ----------------------------------------------------------------------- failing closed


def test_a_slow_evaluation_times_out_and_the_engine_keeps_answering(remote: RemoteEngine) -> None:
    remote.load({"slow.rego": SLOW, "demo.rego": GREETING})
    started = time.monotonic()
    with pytest.raises(PolicyTimeout, match="within 0.05s"):
        remote.evaluate("x := data.slow.count_sevens", {"n": 150_000}, timeout=0.05)
    assert time.monotonic() - started < 0.5
    assert remote.evaluate("x := data.demo.greeting", {"name": "ada"}, timeout=2) == ({"x": "hello ada"},)


def test_a_server_that_never_answers_the_handshake_is_a_timeout(tls: TlsFiles) -> None:
    with socket.create_server(("127.0.0.1", 0)) as silent:  # accepts into its backlog, never speaks
        url = f"https://127.0.0.1:{silent.getsockname()[1]}"
        with RemoteEngine(RemoteEngineConfig(url=url, ca_file=tls.ca, request_timeout=0.2)) as engine:
            started = time.monotonic()
            with pytest.raises(PolicyTimeout):
                engine.evaluate("x := 1", timeout=0.1)
            with pytest.raises(PolicyTimeout):
                engine.load({"demo.rego": GREETING})
            assert time.monotonic() - started < 1.5


def test_a_server_that_is_down_is_a_policy_error(tls: TlsFiles) -> None:
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]  # nothing listens there once closed
    with RemoteEngine(RemoteEngineConfig(url=f"https://127.0.0.1:{port}", ca_file=tls.ca)) as engine:
        with pytest.raises(PolicyError, match="cannot connect"):
            engine.evaluate("x := 1", timeout=1)
        with pytest.raises(PolicyError, match="cannot connect"):
            engine.load({"demo.rego": GREETING})
        with pytest.raises(PolicyError, match="cannot connect"):
            engine.set_data({})


def test_a_server_signed_by_another_ca_is_refused(server: OpaServer, tls: TlsFiles) -> None:
    with RemoteEngine(remote_config(server, tls, ca_file=tls.stranger_ca)) as engine:
        with pytest.raises(PolicyError, match="TLS failure.*CERTIFICATE_VERIFY_FAILED"):
            engine.evaluate("x := 1", timeout=2)


def test_a_client_without_a_certificate_is_refused_when_one_is_required(server: OpaServer, tls: TlsFiles) -> None:
    with RemoteEngine(remote_config(server, tls, client_cert_file=None, client_key_file=None)) as engine:
        with pytest.raises(PolicyError):
            engine.evaluate("x := 1", timeout=2)
        with pytest.raises(PolicyError):
            engine.load({"demo.rego": GREETING})


def test_a_wrong_token_is_refused_and_never_shown(server: OpaServer, tls: TlsFiles) -> None:
    wrong = "not-the-token-4b1d"
    config = remote_config(server, tls, bearer_token=wrong)
    with RemoteEngine(config) as engine:
        with pytest.raises(PolicyError, match="unauthorized: request rejected by administrative policy") as raised:
            engine.evaluate("x := 1", timeout=2)
        failures = [str(raised.value)]
        with pytest.raises(PolicyError, match="unauthorized") as raised:
            engine.load({"demo.rego": GREETING})
        failures.append(str(raised.value))
        for text in (*failures, repr(engine), repr(config)):
            assert wrong not in text and TOKEN not in text


def test_an_answer_that_is_no_query_result_is_a_policy_error(server: OpaServer, remote: RemoteEngine,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    class Garbled:
        def __init__(self, response: ApiResponse) -> None:
            self.response = response

        def handle(self, method: str, target: str, body: bytes) -> ApiResponse:
            return self.response

    for garbled in (ApiResponse(200, {"result": "allow"}), ApiResponse(200, {"result": [True]}),
                    ApiResponse(200, ["allow"]), ApiResponse(502, {"error": "bad gateway"})):
        monkeypatch.setattr(server._httpd, "api", Garbled(garbled))
        with pytest.raises(PolicyError):
            remote.evaluate("x := 1", timeout=2)


def test_a_load_that_cannot_be_undone_stops_every_evaluation_until_the_next_load(
        server: OpaServer, remote: RemoteEngine, monkeypatch: pytest.MonkeyPatch) -> None:
    remote.load({"demo.rego": GREETING})
    real_api = server._httpd.api

    class FailsAfterOnePut:
        puts = 0

        def handle(self, method: str, target: str, body: bytes) -> ApiResponse:
            if method == "PUT":
                self.puts += 1
                if self.puts > 1:
                    return ApiResponse(502)  # a proxy in the way, say: no OPA answer
            return real_api.handle(method, target, body)

    monkeypatch.setattr(server._httpd, "api", FailsAfterOnePut())
    with pytest.raises(PolicyError, match="no usable answer"):
        remote.load({"demo.rego": GREETING.replace("hello", "bye"), "extra.rego": "package extra\n\nv := 1\n"})
    monkeypatch.setattr(server._httpd, "api", real_api)
    with pytest.raises(PolicyError, match="partly loaded"):  # the server holds "bye": it must not be used
        remote.evaluate("x := data.demo.greeting", {"name": "ada"}, timeout=2)
    remote.load({"demo.rego": GREETING})
    assert remote.evaluate("x := data.demo.greeting", {"name": "ada"}, timeout=2) == ({"x": "hello ada"},)
    assert remote.evaluate("x := data.extra.v", timeout=2) == ()


def test_decisions_are_read_with_built_in_errors_as_errors(server: OpaServer, remote: RemoteEngine,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    remote.load({"p.rego": 'package p\n\ndeny contains "too many" if 10 / input.n < 1\n'})
    real_api, asked = server._httpd.api, []

    class Recording:
        def handle(self, method: str, target: str, body: bytes) -> ApiResponse:
            asked.append((method, target))
            return real_api.handle(method, target, body)

    monkeypatch.setattr(server._httpd, "api", Recording())
    # OPA's Query API would make the rule undefined: no message, a silent allow.
    with pytest.raises(PolicyError, match="eval_builtin_error: div: divide by zero"):
        remote.evaluate("result := data.p.deny", {"n": 0}, timeout=2)
    assert remote.evaluate('result := data["p"]["deny"]', {"n": 100}, timeout=2) == ({"result": ["too many"]},)
    assert asked == [("POST", "/v1/data/p/deny?strict-builtin-errors=true")] * 2


def test_a_closed_engine_refuses_to_evaluate(remote: RemoteEngine) -> None:
    remote.close()
    with pytest.raises(PolicyError, match="closed"):
        remote.evaluate("x := 1", timeout=1)


@pytest.mark.parametrize("changes, problem", [
    ({"url": "http://127.0.0.1:8181"}, "https://"),
    ({"url": "https://127.0.0.1:8181/v1"}, "nothing more"),
    ({"client_key_file": None}, "needs its key"),
    ({"bearer_token": "has space"}, "printable ASCII"),
    ({"request_timeout": 0}, "request_timeout"),
])
def test_unsafe_or_broken_settings_are_refused(tls: TlsFiles, changes: dict[str, object], problem: str) -> None:
    settings: dict[str, object] = dict(url="https://127.0.0.1:8181", ca_file=tls.ca, client_cert_file=tls.client_cert,
                                       client_key_file=tls.client_key)
    settings.update(changes)
    with pytest.raises(ValueError, match=problem) as raised:
        RemoteEngineConfig(**settings)  # type: ignore[arg-type]
    assert "has space" not in str(raised.value)
