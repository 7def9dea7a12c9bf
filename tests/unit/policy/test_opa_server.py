"""The OPA server shim: OPA's REST API bodies from the embedded engine, over TLS, and its CLI entry."""
from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from securekube.policy.embedded import EmbeddedOpaEngine
from securekube.policy.interfaces import PolicyError
from securekube.policy.opa_api import OpaApi
from securekube.policy.opa_errors import RegoError, errors_from_json, parse_rendered, render_all
from securekube.policy.opa_server import OpaServer, OpaServerConfig, OpaServerError, add_serve_arguments, run_serve
from securekube.policy.remote import RemoteEngine, RemoteEngineConfig
from tests.unit.policy.opa_tls import TlsFiles, make_tls_files

TOKEN = "serve-test-token-9e2d"
REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return make_tls_files(tmp_path_factory.mktemp("opa-server-tls"))


@pytest.fixture
def api(engine: EmbeddedOpaEngine) -> OpaApi:
    return OpaApi(engine, eval_timeout=5.0)


def put_policy(api: OpaApi, policy_id: str, source: str) -> tuple[int, object]:
    response = api.handle("PUT", f"/v1/policies/{policy_id}", source.encode())
    return response.status, response.body


def query(api: OpaApi, text: str, input_doc: object = None) -> tuple[int, object]:
    request: dict[str, object] = {"query": text}
    if input_doc is not None:
        request["input"] = input_doc
    response = api.handle("POST", "/v1/query", json.dumps(request).encode())
    return response.status, response.body


# --------------------------------------------------------------------------- the API bodies


def test_a_module_that_does_not_parse_gets_opas_error_body(api: OpaApi) -> None:
    status, body = put_policy(api, "broken.rego", "package broken\n\nallow if {\n\t\tinput.a == == 1\n}\n")
    assert status == 400
    assert body == {
        "code": "invalid_parameter",
        "message": "error(s) occurred while compiling module(s)",
        "errors": [{"code": "rego_parse_error", "message": "unexpected equal token",
                    "location": {"file": "broken.rego", "row": 4, "col": 14},  # bytes, the two tabs included
                    "details": {"line": "\t\tinput.a == == 1", "idx": 13}}],
    }
    assert api.handle("GET", "/v1/policies", b"").body == {"result": []}


def test_a_type_error_is_located_at_the_name_it_is_about(api: OpaApi) -> None:
    status, body = put_policy(api, "typo.rego", "package typo\n\nallow if {\n\tx := countt(input.items)\n\tx > 1\n}\n")
    assert status == 400
    assert body["errors"] == [{"code": "rego_type_error", "message": "undefined function countt",  # type: ignore[index]
                               "location": {"file": "typo.rego", "row": 4, "col": 7}}]


def test_policies_are_listed_replaced_and_deleted(api: OpaApi) -> None:
    assert put_policy(api, "a%2Fb.rego", "package a\n\nv := 1\n") == (200, {})
    assert put_policy(api, "a%2Fb.rego", "package a\n\nv := 2\n") == (200, {})
    listed = api.handle("GET", "/v1/policies", b"").body
    assert listed == {"result": [{"id": "a/b.rego", "raw": "package a\n\nv := 2\n"}]}
    assert query(api, "x := data.a.v") == (200, {"result": [{"x": 2}]})
    assert api.handle("DELETE", "/v1/policies/a%2Fb.rego", b"").status == 200
    assert query(api, "x := data.a.v") == (200, {})  # undefined: no result
    missing = api.handle("DELETE", "/v1/policies/a%2Fb.rego", b"")
    assert (missing.status, missing.body["code"]) == (404, "resource_not_found")


def test_a_module_others_need_cannot_be_deleted(api: OpaApi) -> None:
    assert put_policy(api, "lib.rego", "package lib\n\ndouble(x) := 2 * x\n")[0] == 200
    assert put_policy(api, "user.rego", "package user\n\nv := data.lib.double(2)\n")[0] == 200
    refused = api.handle("DELETE", "/v1/policies/lib.rego", b"")
    assert refused.status == 400
    assert refused.body["code"] == "invalid_operation"
    assert [e["location"]["file"] for e in refused.body["errors"]] == ["user.rego"]
    assert query(api, "x := data.user.v") == (200, {"result": [{"x": 4}]})


def test_data_is_written_at_its_path(api: OpaApi) -> None:
    assert api.handle("PUT", "/v1/data/inventory/cluster", b'{"v1": {}}').status == 204
    assert query(api, "x := data.inventory") == (200, {"result": [{"x": {"cluster": {"v1": {}}}}]})
    assert api.handle("PUT", "/v1/data/inventory/cluster/v1/x", b"1").status == 204
    assert api.handle("PUT", "/v1/data/inventory/cluster/v1/x/y", b"2").status == 404  # x is no object
    assert api.handle("PUT", "/v1/data", b"[]").status == 400  # the root is an object
    assert api.handle("PUT", "/v1/data", b"{}").status == 204
    assert query(api, "x := data.inventory") == (200, {})


def test_query_failures_get_opas_error_bodies(api: OpaApi) -> None:
    put_policy(api, "c.rego", "package c\n\nv := input.a\n\nv := input.b\n")
    status, body = query(api, "x := data.c.v", {"a": 1, "b": 2})
    assert (status, body) == (500, {"code": "internal_error", "message": "error(s) occurred while evaluating query",
                                    "errors": [{"code": "eval_conflict_error",
                                                "message": "complete rules must not produce multiple outputs",
                                                "location": {"file": "c.rego", "row": 3, "col": 1}}]})
    status, body = query(api, "x := 1 / input.zero", {"zero": 0})
    assert status == 500 and body["errors"][0]["location"] == {"file": "", "row": 1, "col": 6}  # type: ignore[index]
    status, body = query(api, "x := ")
    assert (status, body["message"]) == (400, "error(s) occurred while parsing query")  # type: ignore[index]
    assert api.handle("POST", "/v1/query", b"{not json").status == 400
    assert api.handle("GET", "/v1/query", b"").status == 405
    assert api.handle("GET", "/v1/nothing", b"").status == 404


# ------------------------------------------------------------------- the text <-> JSON bridge


def test_printed_errors_are_read_back_with_exact_columns() -> None:
    source = "package p\n\nallow if {\n\t\tinput.a == == 1\n}\n"
    errors = (RegoError("rego_parse_error", "unexpected equal token", "p.rego", 4, 14, "\t\tinput.a == == 1", 13),
              RegoError("rego_type_error", "undefined function f", "p.rego", 2))
    printed = render_all(errors)
    assert printed == ("2 errors occurred:\np.rego:4: rego_parse_error: unexpected equal token\n\tinput.a == == 1\n"
                       "\t           ^\np.rego:2: rego_type_error: undefined function f")
    assert parse_rendered(printed, {"p.rego": source}) == errors
    assert errors_from_json([{"code": "rego_parse_error"}, "garbage", {"message": "no code"}]) == (
        RegoError("rego_parse_error", ""),)


# ------------------------------------------------------------------------- over the network


@pytest.fixture
def server(opa_available: None, tls: TlsFiles) -> Iterator[OpaServer]:
    config = OpaServerConfig(tls_cert_file=tls.server_cert, tls_private_key_file=tls.server_key, port=0,
                             bearer_token=TOKEN, max_body_bytes=1024)
    with OpaServer(config) as running:
        yield running


def test_a_request_without_the_token_gets_401(server: OpaServer, tls: TlsFiles) -> None:
    answer = requests.get(f"{server.url}/v1/policies", verify=str(tls.ca), timeout=5)
    assert (answer.status_code, answer.json()) == (
        401, {"code": "unauthorized", "message": "request rejected by administrative policy"})
    answer = requests.get(f"{server.url}/v1/policies", verify=str(tls.ca), timeout=5,
                          headers={"Authorization": f"Bearer {TOKEN}"})
    assert (answer.status_code, answer.json()) == (200, {"result": []})


def test_a_body_over_the_limit_gets_413(server: OpaServer, tls: TlsFiles) -> None:
    answer = requests.put(f"{server.url}/v1/policies/big.rego", data=b"#" * 2048, verify=str(tls.ca), timeout=5,
                          headers={"Authorization": f"Bearer {TOKEN}"})
    assert answer.status_code == 413


def test_a_silent_client_does_not_hold_up_the_others(server: OpaServer, tls: TlsFiles) -> None:
    with socket.create_connection(("127.0.0.1", server.port)):  # connects, never starts the handshake
        with RemoteEngine(RemoteEngineConfig(url=server.url, ca_file=tls.ca, bearer_token=TOKEN)) as engine:
            assert engine.evaluate("x := 1", timeout=2) == ({"x": 1},)


def test_connections_beyond_the_limit_are_closed_not_queued(opa_available: None, tls: TlsFiles) -> None:
    config = OpaServerConfig(tls_cert_file=tls.server_cert, tls_private_key_file=tls.server_key, port=0,
                             max_connections=1)
    with OpaServer(config) as server, \
            RemoteEngine(RemoteEngineConfig(url=server.url, ca_file=tls.ca)) as engine:
        with socket.create_connection(("127.0.0.1", server.port)):  # holds the only slot
            with pytest.raises(PolicyError, match="OPA server"):
                engine.evaluate("x := 1", timeout=2)
        deadline = time.monotonic() + 2  # the slot frees once the server sees the connection end
        while True:
            try:
                assert engine.evaluate("x := 1", timeout=2) == ({"x": 1},)
                break
            except PolicyError:
                if time.monotonic() > deadline:
                    raise


def test_the_api_is_not_offered_unauthenticated_beyond_loopback(tls: TlsFiles) -> None:
    with pytest.raises(ValueError, match="without authentication"):
        OpaServerConfig(tls_cert_file=tls.server_cert, tls_private_key_file=tls.server_key, host="0.0.0.0")
    OpaServerConfig(tls_cert_file=tls.server_cert, tls_private_key_file=tls.server_key, host="0.0.0.0",
                    tls_ca_cert_file=tls.ca)
    OpaServerConfig(tls_cert_file=tls.server_cert, tls_private_key_file=tls.server_key, host="::1")


def test_unusable_tls_files_are_named_without_their_contents(opa_available: None, tls: TlsFiles) -> None:
    with pytest.raises(OpaServerError, match="cannot use the TLS files") as raised:
        OpaServer(OpaServerConfig(tls_cert_file=tls.client_cert, tls_private_key_file=tls.server_key, port=0))
    assert str(tls.server_key) in str(raised.value)
    assert "PRIVATE KEY" not in str(raised.value)


# ---------------------------------------------------------------------------------- the CLI


def serve_arguments(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="securekube policy serve")
    add_serve_arguments(parser)
    return parser.parse_args(list(argv))


def test_serve_reports_a_missing_file_in_one_line(tls: TlsFiles, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    args = serve_arguments("--tls-cert-file", str(tmp_path / "absent.crt"), "--tls-private-key-file",
                           str(tls.server_key), "--addr", "127.0.0.1:0")
    assert run_serve(args) == 1
    err = capsys.readouterr().err
    assert err.startswith("securekube: error: cannot use the TLS files") and err.count("\n") == 1


def test_serve_refuses_an_address_that_is_not_host_and_port(tls: TlsFiles, capsys: pytest.CaptureFixture[str]) -> None:
    args = serve_arguments("--tls-cert-file", str(tls.server_cert), "--tls-private-key-file", str(tls.server_key),
                           "--addr", "8181")
    assert run_serve(args) == 1
    assert "--addr must be HOST:PORT" in capsys.readouterr().err


def test_serve_answers_the_remote_engine_until_sigterm(opa_available: None, tls: TlsFiles, tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    program = ("import argparse, sys\n"
               "from securekube.policy.opa_server import add_serve_arguments, run_serve\n"
               "parser = argparse.ArgumentParser()\nadd_serve_arguments(parser)\n"
               "sys.exit(run_serve(parser.parse_args(sys.argv[1:])))\n")
    process = subprocess.Popen(
        [sys.executable, "-c", program, "--addr", "127.0.0.1:0", "--tls-cert-file", str(tls.server_cert),
         "--tls-private-key-file", str(tls.server_key), "--tls-ca-cert-file", str(tls.ca),
         "--authentication-token-file", str(token_file)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith("serving OPA's REST API on https://127.0.0.1:"), line + process.stderr.read()
        assert "client certificates, bearer token" in line
        url = line.split(" on ", 1)[1].split(" ", 1)[0]
        config = RemoteEngineConfig(url=url, ca_file=tls.ca, client_cert_file=tls.client_cert,
                                    client_key_file=tls.client_key, bearer_token=TOKEN)
        with RemoteEngine(config) as engine:
            engine.load({"demo.rego": "package demo\n\nv := input.n + 1\n"})
            assert engine.evaluate("x := data.demo.v", {"n": 1}, timeout=5) == ({"x": 2},)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()
