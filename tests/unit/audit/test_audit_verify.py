"""`audit verify`: every kind of tampering is detected and located; intact logs pass.

The log built by `closed_log` (checkpoint every 5 events, 12 events, then closed) has these lines:

    1  checkpoint start  seq 0       8-12  events 5..9   seq 7..11
    2-6  events 0..4     seq 1..5    13    checkpoint    seq 12
    7  checkpoint        seq 6       14-15 events 10,11  seq 13..14
                                     16    checkpoint close seq 15
"""
from __future__ import annotations

import gzip
import json
import random
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from securekube.audit import chain
from securekube.audit.log import AuditLog
from securekube.audit.verify import VerifyReport, verify
from securekube.cli.main import main

KEY = Ed25519PrivateKey.generate()


def event(n: int) -> dict[str, Any]:
    return {"kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": "Metadata", "auditID": f"id-{n}",
            "stage": "ResponseComplete", "requestURI": f"/api/v1/namespaces/default/pods/p{n}", "verb": "get",
            "user": {"username": "alice"}, "requestReceivedTimestamp": "2024-01-02T03:04:05.000000Z",
            "stageTimestamp": "2024-01-02T03:04:05.000100Z"}


@pytest.fixture
def log_path(tmp_path: Path) -> Path:
    path = tmp_path / "audit.log"
    with AuditLog(path, signing_key=KEY, checkpoint_every_events=5) as log:
        for n in range(12):
            log.append([event(n)])
    return path


def lines_of(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines(keepends=True)


def write_lines(path: Path, lines: list[bytes]) -> None:
    path.write_bytes(b"".join(lines))


def check(path: Path, *, witness: bool = True) -> VerifyReport:
    witnesses = [path.with_name(path.name + ".checkpoint")] if witness else []
    return verify([path], KEY.public_key(), witnesses=witnesses)


def only_problem(report: VerifyReport) -> str:
    assert len(report.problems) == 1, [str(p) for p in report.problems]
    return str(report.problems[0])


def relinked(record: dict[str, Any], seq: int, prev: str) -> tuple[bytes, str]:
    for key in (chain.SEQ, chain.PREV, chain.HASH):
        record["annotations"].pop(key, None)
    return chain.link_line(chain.encode_record(record), seq, prev)


def test_an_intact_log_verifies(log_path: Path) -> None:
    report = check(log_path)
    assert report.intact and report.problems == ()
    assert (report.records, report.checkpoints, report.first_seq, report.last_seq, report.sealed_through) == (
        16, 4, 0, 15, 15)
    assert lines_of(log_path)[6].count(b'"verb":"checkpoint"') == 1  # the layout the docstring describes


def test_edited_field(log_path: Path) -> None:
    lines = lines_of(log_path)
    lines[2] = lines[2].replace(b'"verb":"get"', b'"verb":"delete"')
    write_lines(log_path, lines)
    assert only_problem(check(log_path)) == (
        f"{log_path}:3: content does not match its hash (edited) [seq 2, auditID id-1]")


def test_edited_and_rehashed_records_are_caught_by_the_next_checkpoint(log_path: Path) -> None:
    lines = lines_of(log_path)
    prev = json.loads(lines[1])["annotations"][chain.HASH]
    for index in range(2, 6):  # the attacker recomputes every hash up to the checkpoint
        record = json.loads(lines[index])
        if index == 2:
            record["verb"] = "delete"
        lines[index], prev = relinked(record, index, prev)
    write_lines(log_path, lines)
    problem = only_problem(check(log_path))
    assert problem.startswith(f"{log_path}:7: the records since the checkpoint at {log_path}:1 are not the ones "
                              "this checkpoint signed")


def test_deleted_line(log_path: Path) -> None:
    lines = lines_of(log_path)
    del lines[8]
    write_lines(log_path, lines)
    assert only_problem(check(log_path)) == (
        f"{log_path}:9: 1 record(s) (seq 8) missing before this line: deleted [seq 9]")


def test_deleted_lines_renumbered_and_rehashed(log_path: Path) -> None:
    lines = lines_of(log_path)
    del lines[8]
    prev = json.loads(lines[7])["annotations"][chain.HASH]
    for index in range(8, 12):  # renumber and re-hash up to and including the next checkpoint
        lines[index], prev = relinked(json.loads(lines[index]), index, prev)
    write_lines(log_path, lines)
    problems = [str(p) for p in check(log_path).problems]
    assert problems[0].startswith(f"{log_path}:12: checkpoint was signed at seq 12 but sits at seq 11: "
                                  "records before it were added or removed and renumbered")


def test_inserted_line_without_a_chain(log_path: Path) -> None:
    lines = lines_of(log_path)
    lines.insert(4, json.dumps(event(99), separators=(",", ":")).encode() + b"\n")
    write_lines(log_path, lines)
    assert only_problem(check(log_path)) == (
        f"{log_path}:5: not part of the hash chain (no annotations, so no hash chain): inserted or edited "
        "[auditID id-99]")


def test_inserted_line_with_a_forged_chain_link(log_path: Path) -> None:
    lines = lines_of(log_path)
    before = json.loads(lines[3])["annotations"]
    forged = event(666)
    forged["verb"] = "delete"
    line, _ = relinked(forged | {"annotations": {}}, int(before[chain.SEQ]) + 1, before[chain.HASH])
    lines.insert(4, line)
    write_lines(log_path, lines)
    assert only_problem(check(log_path)) == (
        f"{log_path}:5: inserted record: it claims seq 4, but the chain goes on from the other record with that "
        f"seq ({log_path}:6) [seq 4, auditID id-666]")


def test_swapped_lines(log_path: Path) -> None:
    lines = lines_of(log_path)
    lines[8], lines[9] = lines[9], lines[8]
    write_lines(log_path, lines)
    assert only_problem(check(log_path)) == (
        f"{log_path}:10: out of order: this record belongs before {log_path}:9 (records were moved or swapped) "
        "[seq 8, auditID id-6]")


def test_truncated_in_the_middle_of_a_line(log_path: Path) -> None:
    data = log_path.read_bytes()
    log_path.write_bytes(data[:-40])
    problems = [str(p) for p in check(log_path).problems]
    assert f"{log_path}:16: the file ends in the middle of a record (truncated)" in problems
    assert any("this witnessed checkpoint (seq 15" in p and "the log was truncated" in p for p in problems)


def test_truncated_tail_is_caught_by_the_witness(log_path: Path) -> None:
    write_lines(log_path, lines_of(log_path)[:13])  # cut exactly after a checkpoint
    assert check(log_path, witness=False).intact  # the log alone cannot tell ...
    problem = only_problem(check(log_path))  # ... the witness can
    assert problem.startswith(f"{log_path}.checkpoint:1: the log ends at seq 12, but this witnessed checkpoint "
                              "(seq 15,")
    assert problem.endswith("was written after that: the log was truncated [seq 15]")


def test_edited_checkpoint(log_path: Path) -> None:
    lines = lines_of(log_path)
    record = json.loads(lines[6])
    lines[6] = lines[6].replace(b'\\"retainedFromSeq\\":0', b'\\"retainedFromSeq\\":5')
    write_lines(log_path, lines)
    assert [str(p) for p in check(log_path).problems] == [
        f"{log_path}:7: content does not match its hash (edited) [seq 6, auditID {record['auditID']}]",
        f"{log_path}:7: checkpoint: checkpoint signature does not verify (forged, edited, or signed by another key) "
        f"[seq 6, auditID {record['auditID']}]"]


def test_checkpoint_forged_with_another_key(log_path: Path) -> None:
    lines = lines_of(log_path)
    record = json.loads(lines[6])
    old = chain.Checkpoint.from_statement(record["annotations"][chain.CHECKPOINT])
    forged = chain.checkpoint_record(old, Ed25519PrivateKey.generate())
    lines[6], _ = relinked(forged, 6, old.head)
    write_lines(log_path, lines)
    problems = [str(p) for p in check(log_path).problems]
    assert any(p.startswith(f"{log_path}:7: checkpoint: checkpoint signature does not verify") for p in problems)


def test_a_key_written_twice_is_caught(log_path: Path) -> None:
    lines = lines_of(log_path)
    lines[2] = lines[2].replace(b'{"kind"', b'{"verb":"delete","kind"', 1)
    write_lines(log_path, lines)
    assert only_problem(check(log_path)) == (
        f"{log_path}:3: content does not match its hash (edited) [seq 2, auditID id-1]")


def test_records_appended_after_close(log_path: Path) -> None:
    lines = lines_of(log_path)
    last = json.loads(lines[-1])["annotations"]
    line, _ = relinked(event(7) | {"annotations": {}}, int(last[chain.SEQ]) + 1, last[chain.HASH])
    write_lines(log_path, lines + [line])
    assert only_problem(check(log_path, witness=False)).startswith(
        f"{log_path}:17: record after the log was closed")


def test_wrong_key_fails_everything_and_says_so(log_path: Path) -> None:
    report = verify([log_path], Ed25519PrivateKey.generate().public_key())
    problems = [str(p) for p in report.problems]
    assert problems[0].startswith(f"{log_path}:1: checkpoint: signed by key {chain.key_id(KEY.public_key())}, "
                                  "not by the given key")
    assert problems[-1] == f"{log_path}: no valid checkpoint: nothing in these files is covered by a signature"


def test_problem_lines_cannot_be_forged_by_control_characters(log_path: Path) -> None:
    lines = lines_of(log_path)
    lines.insert(4, json.dumps(event(1) | {"auditID": "x\n\x1b[2Jok"}).encode() + b"\n")
    write_lines(log_path, lines)
    problem = only_problem(check(log_path))
    assert problem.endswith("[auditID x\\n\\x1b[2Jok]") and problem.isprintable()


# --- rotated files ---------------------------------------------------------------------------------

@pytest.fixture
def rotated(tmp_path: Path) -> list[Path]:
    with AuditLog(tmp_path / "audit.log", signing_key=KEY, max_size_bytes=2500, max_backups=0, max_age_days=0,
                  checkpoint_every_events=3) as log:
        for n in range(40):
            log.append([event(n)])
    backups = sorted(tmp_path.glob("audit-*.log.gz"))
    assert len(backups) >= 4
    return backups + [tmp_path / "audit.log"]


def test_rotated_and_gzipped_files_verify_in_any_order(rotated: list[Path]) -> None:
    shuffled = rotated[:]
    random.Random(3).shuffle(shuffled)
    report = verify(shuffled, KEY.public_key())
    assert report.intact, [str(p) for p in report.problems]
    assert report.files == tuple(str(p) for p in rotated)  # put back in chain order
    assert report.first_seq == 0


def test_deleted_rotated_file_in_the_middle(rotated: list[Path]) -> None:
    gone = rotated.pop(2)
    first_missing = json.loads(gzip.decompress(gone.read_bytes()).splitlines()[0])["annotations"][chain.SEQ]
    gone.unlink()
    problem = only_problem(verify(rotated, KEY.public_key()))
    assert problem.startswith(f"{rotated[2]}:1: ")
    assert f"(seq {first_missing}.." in problem and "missing before this file: a rotated file" in problem


def test_deleted_oldest_rotated_file(rotated: list[Path]) -> None:
    rotated.pop(0).unlink()
    problem = only_problem(verify(rotated, KEY.public_key()))
    assert "history starts at seq" in problem and "records from seq 0 are kept" in problem


def test_truncated_gzip_file(rotated: list[Path]) -> None:
    data = rotated[1].read_bytes()
    rotated[1].write_bytes(data[:-30])
    problems = [str(p) for p in verify(rotated, KEY.public_key()).problems]
    assert any(p.startswith(str(rotated[1])) and "compressed data ends early" in p for p in problems)


def test_a_plain_copy_next_to_its_gzip_is_read_once(rotated: list[Path]) -> None:
    plain = rotated[0].with_name(rotated[0].name[:-3])
    plain.write_bytes(gzip.decompress(rotated[0].read_bytes()))
    report = verify(rotated + [plain], KEY.public_key())
    assert report.intact
    assert any("holds the same records" in note for note in report.notes)


# --- the command -----------------------------------------------------------------------------------

def public_key_file(directory: Path) -> Path:
    path = directory / "audit-signing.pub"
    path.write_bytes(KEY.public_key().public_bytes(serialization.Encoding.PEM,
                                                   serialization.PublicFormat.SubjectPublicKeyInfo))
    return path


def test_cli_exit_codes_and_one_line_per_problem(log_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    key = public_key_file(log_path.parent)
    assert main(["audit", "verify", str(log_path), "--key", str(key)]) == 0
    out, err = capsys.readouterr()
    assert out == "" and "16 record(s) in 1 file(s), seq 0..15, signed through seq 15: intact" in err

    lines = lines_of(log_path)
    lines[2] = lines[2].replace(b'"verb":"get"', b'"verb":"delete"')
    write_lines(log_path, lines[:13])  # an edit, and the tail cut off (witness found automatically)
    assert main(["audit", "verify", str(log_path), "--key", str(key)]) == 1
    out, err = capsys.readouterr()
    assert out.splitlines()[0] == f"{log_path}:3: content does not match its hash (edited) [seq 2, auditID id-1]"
    assert out.splitlines()[1].startswith(f"{log_path}.checkpoint:1: the log ends at seq 12")
    assert len(out.splitlines()) == 2 and "TAMPERED (2 problem(s))" in err


def test_cli_key_from_data_dir_and_unreadable_key(log_path: Path, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "pki").mkdir()
    public_key_file(tmp_path / "pki")
    assert main(["audit", "verify", str(log_path), "--data-dir", str(tmp_path), "-q"]) == 0
    assert main(["audit", "verify", str(log_path), "--key", str(tmp_path / "nope.pub")]) == 1
    assert "cannot read audit public key" in capsys.readouterr().err


def test_review_commands_are_optional_but_a_broken_review_module_is_an_error(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import argparse

    from securekube.cli import audit as audit_cli

    def audit_parser(module: str) -> argparse.ArgumentParser:
        monkeypatch.setattr(audit_cli, "REVIEW_CLI_MODULE", module)
        parser = argparse.ArgumentParser(prog="securekube")
        audit_cli.register(parser.add_subparsers(dest="command"))
        return parser

    without_review = audit_parser("securekube.audit.no_such_review.cli")
    assert without_review.parse_args(["audit", "verify", "f", "--key", "k"]).audit_command == "verify"
    with pytest.raises(SystemExit):
        without_review.parse_args(["audit", "query"])
    assert "invalid choice: 'query'" in capsys.readouterr().err

    (tmp_path / "broken_review").mkdir()
    (tmp_path / "broken_review" / "__init__.py").write_text("")
    (tmp_path / "broken_review" / "cli.py").write_text("import a_dependency_that_is_not_installed\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ModuleNotFoundError, match="a_dependency_that_is_not_installed"):
        audit_parser("broken_review.cli")
