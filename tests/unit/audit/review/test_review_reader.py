"""The audit log reader: formats, compression, rotation, stdin, and bad input reported with its place."""
from __future__ import annotations

import gzip
import io
import zlib
from pathlib import Path

import pytest

from securekube.audit.review import problems as kinds
from securekube.audit.review import reader
from securekube.audit.review.problems import ReadProblems
from securekube.audit.review.reader import InputError, LineFilter, PendingLine, read_deferring, read_events
from securekube.audit.review.stages import one_per_request


def audit_ids(records) -> list[str]:
    return [r.event["auditID"] for r in records]


def places(problems: ReadProblems) -> list[tuple[str, int, str]]:
    return [(Path(p.source).name, p.line, p.kind) for p in problems.examples]


def test_upstream_log_is_read_line_by_line_with_raw_lines_kept(fixtures):
    problems = ReadProblems()
    records = list(read_events([str(fixtures / "upstream-kube-apiserver.log")], problems))
    lines = (fixtures / "upstream-kube-apiserver.log").read_bytes().splitlines()
    assert [r.raw for r in records] == lines
    assert records[0].event["user"]["username"] == "alice"
    assert not problems


def test_bad_lines_are_reported_with_line_numbers_and_the_rest_is_read(fixtures):
    problems = ReadProblems()
    records = list(read_events([str(fixtures / "malformed.log")], problems))
    assert audit_ids(records) == ["m-0001", "m-0002", "m-0003", "m-0004"]
    assert places(problems) == [
        ("malformed.log", 2, kinds.MALFORMED_JSON),
        ("malformed.log", 3, kinds.MALFORMED_JSON),
        ("malformed.log", 4, kinds.NOT_AN_OBJECT),
        ("malformed.log", 5, kinds.NOT_AN_OBJECT),
        ("malformed.log", 7, kinds.NOT_AN_EVENT),
        ("malformed.log", 9, kinds.UNSUPPORTED_VERSION),
        ("malformed.log", 11, kinds.MALFORMED_JSON),
        ("malformed.log", 13, kinds.MALFORMED_JSON),
    ]
    assert problems.skipped == 8
    # The CRLF line (10) is read, its raw line without the carriage return.
    assert records[2].raw.endswith(b"}")


def test_problem_details_never_quote_the_line(write_log, make_event):
    secret_bearing = make_event("x", extra={"requestObject": {"data": {"password": "hunter2-SECRET"}}})
    path = write_log("audit.log", secret_bearing[:-20], "hunter2-SECRET not json")
    problems = ReadProblems()
    assert list(read_events([str(path)], problems)) == []
    assert problems.total == 2
    assert not any("hunter2" in line for line in problems.report_lines())


def test_truncated_gzip_keeps_what_was_written_and_says_where_it_stopped(fixtures):
    problems = ReadProblems()
    records = list(read_events([str(fixtures / "truncated.log.gz")], problems))
    assert audit_ids(records) == [f"t-000{i}" for i in range(1, 6)]
    assert places(problems) == [("truncated.log.gz", 6, kinds.MALFORMED_JSON),
                                ("truncated.log.gz", 6, kinds.TRUNCATED_GZIP)]


def test_gzip_is_recognised_by_content_not_by_name(tmp_path, make_event):
    line = make_event("gz-1") + "\n"
    disguised = tmp_path / "audit.log"  # gzip without .gz
    disguised.write_bytes(gzip.compress(line.encode()))
    plain_named_gz = tmp_path / "audit.log.gz"  # plain text named .gz
    plain_named_gz.write_text(make_event("plain-1") + "\n")
    problems = ReadProblems()
    assert audit_ids(read_events([str(disguised)], problems)) == ["gz-1"]
    assert audit_ids(read_events([str(plain_named_gz)], problems)) == ["plain-1"]
    assert not problems


def test_concatenated_gzip_members_are_all_read(tmp_path, make_event):
    path = tmp_path / "audit.log.gz"
    member_a, member_b = (gzip.compress((make_event(i) + "\n").encode()) for i in "ab")
    path.write_bytes(member_a + member_b)
    assert audit_ids(read_events([str(path)], ReadProblems())) == ["a", "b"]


def test_corrupt_gzip_is_reported_and_does_not_stop_the_other_files(tmp_path, make_event):
    good = tmp_path / "a.log"
    good.write_text(make_event("before", time="2024-05-01T09:00:00Z") + "\n")
    data = bytearray(gzip.compress("".join(make_event(f"c{i}", time="2024-05-01T10:00:00Z") + "\n"
                                           for i in range(50)).encode()))
    data[40:60] = b"\x00" * 20  # damage inside the deflate stream
    bad = tmp_path / "b.log.gz"
    bad.write_bytes(bytes(data))
    problems = ReadProblems()
    ids = audit_ids(read_events([str(good), str(bad)], problems))
    assert ids[0] == "before"
    assert problems.counts[kinds.CORRUPT_GZIP] == 1


def test_rotated_files_are_read_in_the_order_their_events_happened(fixtures):
    rotated = fixtures / "rotated"
    newest_first = [str(rotated / "audit.log"), str(rotated / "audit-2024-05-01T10-00-00.000.log.gz"),
                    str(rotated / "audit-2024-05-01T09-00-00.000.log")]
    assert audit_ids(read_events(newest_first, ReadProblems())) == ["r-0001", "r-0002", "r-0003"]


def test_a_file_named_twice_is_read_once(fixtures):
    path = str(fixtures / "rotated" / "audit.log")
    assert audit_ids(read_events([path, path], ReadProblems())) == ["r-0003"]


def test_stdin_plain_and_gzipped(make_event):
    text = (make_event("s1") + "\n" + make_event("s2") + "\n").encode()
    assert audit_ids(read_events(["-"], ReadProblems(), stdin=io.BytesIO(text))) == ["s1", "s2"]
    assert audit_ids(read_events(["-"], ReadProblems(), stdin=io.BytesIO(gzip.compress(text)))) == ["s1", "s2"]


@pytest.mark.parametrize("paths, message", [
    (["missing.log"], "cannot read missing.log: No such file or directory"),
    (["-", "other.log"], "cannot be combined"),
    ([], "no audit log given"),
])
def test_unreadable_inputs_are_one_clear_error(tmp_path, monkeypatch, paths, message):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(InputError, match=message):
        list(read_events(paths, ReadProblems()))


def test_a_directory_is_refused_with_a_hint(tmp_path):
    with pytest.raises(InputError, match="is a directory"):
        list(read_events([str(tmp_path)], ReadProblems()))


def test_older_versions_are_read_and_noted(fixtures):
    problems = ReadProblems()
    records = list(read_events([str(fixtures / "older-versions.log")], problems))
    assert audit_ids(records) == ["o-0001", "o-0002", "o-0003"]
    assert places(problems) == [("older-versions.log", 1, kinds.OLDER_VERSION),
                                ("older-versions.log", 2, kinds.MISSING_VERSION)]
    assert problems.skipped == 0  # notices: the events were used


def test_securekube_checkpoints_are_skipped_and_its_annotations_are_fine(fixtures):
    problems = ReadProblems()
    records = list(read_events([str(fixtures / "securekube.log")], problems))
    assert [r.event["verb"] for r in records] == ["create", "create", "get", "get"]
    assert all(r.event["user"]["username"] != "system:securekube:audit-log" for r in records)
    assert not problems


def test_lines_across_chunk_boundaries_and_over_long_lines(monkeypatch, write_log, make_event):
    monkeypatch.setattr(reader, "CHUNK_BYTES", 64)  # every line spans several reads
    monkeypatch.setattr(reader, "MAX_LINE_BYTES", 2000)
    long_line = make_event("long", extra={"pad": "x" * 5000})
    path = write_log("audit.log", make_event("a"), long_line, make_event("b"), long_line, newline_at_end=False)
    problems = ReadProblems()
    assert audit_ids(read_events([str(path)], problems)) == ["a", "b"]
    assert places(problems) == [("audit.log", 2, kinds.LINE_TOO_LONG), ("audit.log", 4, kinds.LINE_TOO_LONG)]


def test_gzip_bomb_output_is_bounded_per_step(monkeypatch, tmp_path, make_event):
    monkeypatch.setattr(reader, "CHUNK_BYTES", 4096)
    line = make_event("z", extra={"pad": "0" * 200_000}) + "\n"
    path = tmp_path / "bomb.gz"
    path.write_bytes(gzip.compress(line.encode()))
    seen = []
    with open(path, "rb") as stream:
        for chunk in reader._decoded_chunks(stream):
            seen.append(len(chunk))
    assert max(seen) <= 4096 and sum(seen) == len(line)


def test_filtered_reading_still_reports_damaged_lines_it_skips(fixtures):
    problems = ReadProblems()
    nobody = LineFilter.for_values([["nobody"]])
    list(read_events([str(fixtures / "malformed.log")], problems, nobody))  # the caller's exact check decides
    assert {line for _, line, _ in places(problems)} == {2, 3, 4, 5, 7, 9, 11, 13}


def test_request_received_lines_are_parsed_only_when_needed(fixtures):
    problems = ReadProblems()
    raw = list(read_deferring([str(fixtures / "upstream-kube-apiserver.log")], problems))
    deferred = [r for r in raw if type(r) is PendingLine]
    assert len(deferred) == 9  # every RequestReceived line of the fixture
    eager = list(one_per_request(read_events([str(fixtures / "upstream-kube-apiserver.log")], problems), problems))
    lazy = list(one_per_request(iter(raw), problems))
    assert lazy == eager and not problems


def test_unusual_request_received_lines_are_parsed_as_usual(make_event):
    spaced = make_event("sp", stage="RequestReceived", separators=(", ", ": "))
    nested = make_event("nest", stage="RequestReceived", extra={"requestObject": {"stage": "RequestReceived"}})
    assert reader._intermediate_audit_id(make_event("ok", stage="RequestReceived").encode()) == "ok"
    assert reader._intermediate_audit_id(spaced.encode()) is None
    assert reader._intermediate_audit_id(nested.encode()) is None
    assert reader._intermediate_audit_id(make_event("fin").encode()) is None


def test_multi_member_gzip_split_across_reads(monkeypatch, tmp_path, make_event):
    monkeypatch.setattr(reader, "CHUNK_BYTES", 7)
    members = b"".join(zlib.compress((make_event(f"m{i}") + "\n").encode(), wbits=31) for i in range(3))
    path = tmp_path / "audit.gz"
    path.write_bytes(members)
    problems = ReadProblems()
    assert audit_ids(read_events([str(path)], problems)) == ["m0", "m1", "m2"]
    assert not problems


def test_checkpoints_are_recognised_by_the_annotation_the_recorder_writes():
    from securekube.audit.chain import CHECKPOINT

    assert reader.CHECKPOINT_ANNOTATION == CHECKPOINT
