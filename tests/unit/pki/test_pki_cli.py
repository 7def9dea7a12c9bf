"""`securekube pki ...` as a person runs it: output, exit codes, and no key material shown."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import pytest

from securekube.cli.main import main


def _secret_fragments(root: Path, *kubeconfigs: Path) -> list[str]:
    """Every base64 line of every private key on disk, and the keys' base64 as embedded."""
    fragments: list[str] = []
    for key_file in root.rglob("*.key"):
        pem = key_file.read_text()
        fragments += [line for line in pem.splitlines() if line and not line.startswith("-----")]
        fragments.append(base64.b64encode(pem.encode()).decode()[:40])
    for kubeconfig in kubeconfigs:
        match = re.search(r"client-key-data: (\S+)", kubeconfig.read_text())
        assert match
        fragments.append(match.group(1)[:40])
        fragments += base64.b64decode(match.group(1)).decode().splitlines()[1:-1]
    return fragments


def _assert_no_secrets(text: str, fragments: list[str]) -> None:
    assert "PRIVATE KEY" not in text
    for fragment in fragments:
        assert fragment not in text


def test_init_inspect_rotate_breakglass_never_print_keys(tmp_path: Path, capsys) -> None:
    pki = tmp_path / "pki"
    outputs = []
    assert main(["pki", "init", "--dir", str(pki), "--san", "node1.example"]) == 0
    outputs.append(capsys.readouterr())
    fragments_before_rotation = _secret_fragments(pki, pki / "admin.kubeconfig")
    assert main(["pki", "init", "--dir", str(pki)]) == 0
    outputs.append(capsys.readouterr())
    assert main(["pki", "inspect", "--dir", str(pki)]) == 0
    outputs.append(capsys.readouterr())
    assert main(["pki", "inspect", "--dir", str(pki), "--json"]) == 0
    outputs.append(capsys.readouterr())
    assert main(["pki", "rotate", "--dir", str(pki)]) == 0
    outputs.append(capsys.readouterr())
    bg = tmp_path / "bg.kubeconfig"
    assert (
        main(
            [
                "pki",
                "breakglass",
                "--dir",
                str(pki),
                "--server",
                "https://127.0.0.1:6443",
                "--out",
                str(bg),
                "--ttl",
                "30m",
            ]
        )
        == 0
    )
    outputs.append(capsys.readouterr())

    # Keys as they were before rotation and as they are now could both have leaked.
    fragments = fragments_before_rotation + _secret_fragments(pki, pki / "admin.kubeconfig", bg)
    for captured in outputs:
        _assert_no_secrets(captured.out + captured.err, fragments)

    init_out, _, inspect_out, json_out, rotate_out, bg_out = (c.out for c in outputs)
    assert "admin kubeconfig: " + str(pki / "admin.kubeconfig") in init_out
    assert "(existing, kept)" in outputs[1].out
    assert re.search(r"^apiserver .*node1\.example", inspect_out, re.M)
    assert re.search(
        r"^admin +[0-9a-f:]+ +CN=securekube-admin,O=securekube:cluster-admins +CN=securekube-ca",
        inspect_out,
        re.M,
    )
    names = [entry["name"] for entry in json.loads(json_out)]
    assert names[:2] == ["ca", "etcd-ca"] and "etcd-server" in names
    assert (
        rotate_out.strip()
        == "reissued: apiserver, admin, apiserver-etcd-client, etcd-server, etcd-peer"
    )
    assert "O=system:masters" in bg_out and "delete it when done" in bg_out


def test_user_mistakes_are_one_error_line(tmp_path: Path, capsys) -> None:
    pki = tmp_path / "pki"
    assert main(["pki", "init", "--dir", str(pki)]) == 0
    capsys.readouterr()
    (pki / "ca.crt").unlink()

    assert main(["pki", "rotate", "--dir", str(pki)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("securekube: error: ") and "ca.key exists without its certificate" in err

    assert (
        main(
            [
                "pki",
                "breakglass",
                "--dir",
                str(pki),
                "--server",
                "http://x",
                "--out",
                str(tmp_path / "o"),
            ]
        )
        == 1
    )
    assert "expected https://HOST" in capsys.readouterr().err

    assert (
        main(
            [
                "pki",
                "breakglass",
                "--dir",
                str(pki),
                "--server",
                "https://x",
                "--out",
                str(tmp_path / "o"),
                "--ttl",
                "forever",
            ]
        )
        == 1
    )
    assert "invalid duration 'forever'" in capsys.readouterr().err

    assert (
        main(
            [
                "pki",
                "init",
                "--dir",
                str(tmp_path / "p2"),
                "--profiles",
                str(tmp_path / "none.yaml"),
            ]
        )
        == 1
    )
    assert "certificate profiles not found" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["init", "inspect", "rotate", "breakglass"])
def test_every_subcommand_has_help(command: str, capsys) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["pki", command, "--help"])
    assert exited.value.code == 0
    assert "--dir DIR" in capsys.readouterr().out
