"""`securekube up` refuses bad options with one line, before it creates anything in the data directory."""
from __future__ import annotations

from pathlib import Path

import pytest

from securekube.cli.main import main
from tests.integration.certs import issue_client, make_ca, write_ca


def run_up(capsys: pytest.CaptureFixture[str], data_dir: Path, *options: str) -> str:
    code = main(["up", "--data-dir", str(data_dir), "--port", "1", *options])
    err = capsys.readouterr().err
    assert code == 1 and len(err.strip().splitlines()) == 1, err
    assert not data_dir.exists()  # refused before anything was created
    return err


@pytest.mark.parametrize(("value", "message"), [
    ("registry.example", "expected HOST[:PORT]=CAFILE"),
    ("=ca.crt", "expected HOST[:PORT]=CAFILE"),
    ("http://registry.example={ca}", "--registry-ca http://registry.example:"),
    ("registry.example={missing}", "cannot read"),
    ("registry.example={key}", "private key"),
    ("registry.example={leaf}", "registry.example"),
])
def test_bad_registry_ca_options(capsys: pytest.CaptureFixture[str], tmp_path: Path, value: str, message: str) -> None:
    ca = make_ca("registry-ca")
    files = {"ca": write_ca(tmp_path, "ca", ca), "missing": str(tmp_path / "absent.crt")}
    files["leaf"], files["key"] = issue_client(tmp_path, "leaf", ca, "leaf")
    err = run_up(capsys, tmp_path / "data", "--no-node", "--registry-ca", value.format(**files))
    assert message in err


def test_parameters_for_an_unknown_policy_are_refused(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    parameters = tmp_path / "parameters.yaml"
    parameters.write_text("allowed-image-registries: [not, a, mapping]\n")
    err = run_up(capsys, tmp_path / "data", "--no-node", "--admission-parameters", str(parameters))
    assert "parameters must be one mapping of policy name to a mapping of parameters" in err


def test_parameters_for_a_policy_that_is_not_shipped_are_refused(capsys: pytest.CaptureFixture[str],
                                                                tmp_path: Path) -> None:
    parameters = tmp_path / "parameters.yaml"
    parameters.write_text("allowed-image-registrys: {registries: [localhost/]}\n")  # a typo
    err = run_up(capsys, tmp_path / "data", "--no-node", "--admission-parameters", str(parameters))
    assert "no shipped policy is named allowed-image-registrys" in err


@pytest.mark.parametrize(("options", "message"), [
    (("--opa-url", "https://127.0.0.1:8181"), "--opa-url needs --opa-ca-file"),
    (("--opa-ca-file", "ca.crt"), "--opa-ca-file needs --opa-url"),
    (("--opa-url", "http://127.0.0.1:8181", "--opa-ca-file", "ca.crt"), "https://"),
    (("--node-monitor-grace-period", "0"), "--node-monitor-grace-period must be a positive number"),
])
def test_bad_opa_and_controller_options(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                        options: tuple[str, ...], message: str) -> None:
    assert message in run_up(capsys, tmp_path / "data", "--no-node", *options)
