"""Serving a CRI log file as the kubelet API does: follow, tail, since, timestamps, byte limit."""
from __future__ import annotations

import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest

from securekube.kubelet.crilog import (ContainerLogStream, FollowPace, LogReadOptions, fixed_timestamp,
                                       nanos_since_epoch, record_nanos, tail_start)

FAST = FollowPace(poll_seconds=0.01, status_seconds=0.02)


def record(text: str, second: int = 0, stream: str = "stdout", tag: str = "F") -> str:
    return f"2026-01-01T00:00:{second:02d}.000000001Z {stream} {tag} {text}\n"


def append(path: Path, text: str) -> None:
    with open(path, "a") as log:
        log.write(text)


def read_all(path: Path, options: LogReadOptions = LogReadOptions(), **kwargs) -> bytes:
    with ContainerLogStream(path, options, pace=FAST, **kwargs) as stream:
        return b"".join(stream.chunks())


class Container:
    """A container on paper: writes records to its log file from a thread, then stops."""

    def __init__(self, path: Path, lines: list[str], interval: float) -> None:
        self.path, self.lines, self.interval = path, lines, interval
        self.running = True
        self.finished_at = 0.0
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        for second, line in enumerate(self.lines):
            append(self.path, record(line, second))
            time.sleep(self.interval)
        self.finished_at = time.monotonic()
        self.running = False

    def __enter__(self) -> Container:
        self.path.touch()
        self.thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.thread.join(timeout=5)


def test_a_follow_delivers_lines_as_they_are_written_and_ends_once_the_container_stopped(tmp_path: Path) -> None:
    path = tmp_path / "0.log"
    arrivals: list[tuple[float, bytes]] = []
    with Container(path, [f"line {n}" for n in range(5)], interval=0.1) as container:
        with ContainerLogStream(path, LogReadOptions(follow=True), lambda: container.running, FAST) as stream:
            for chunk in stream.chunks():
                arrivals.append((time.monotonic(), chunk))
        ended_at = time.monotonic()
    assert b"".join(chunk for _, chunk in arrivals) == b"".join(f"line {n}\n".encode() for n in range(5))
    assert arrivals[0][0] < container.finished_at - 0.2  # the first line came while it still ran
    assert 0 <= ended_at - container.finished_at < 1.0  # and the stream ended soon after it stopped


def test_what_the_container_wrote_as_it_stopped_is_still_delivered(tmp_path: Path) -> None:
    path = tmp_path / "0.log"
    path.write_text(record("first"))

    def stops_after_a_last_line() -> bool:
        append(path, record("last words", 1))  # the runtime flushes this just as the container exits
        return False

    assert read_all(path, LogReadOptions(follow=True), still_running=stops_after_a_last_line) == b"first\nlast words\n"


def test_without_follow_the_log_is_what_the_file_holds_now(tmp_path: Path) -> None:
    path = tmp_path / "0.log"
    path.write_text(record("one") + record("two"))
    assert read_all(path, still_running=lambda: True) == b"one\ntwo\n"


def test_partial_lines_and_torn_records_come_out_whole(tmp_path: Path) -> None:
    path = tmp_path / "0.log"
    path.write_text("")
    pieces = [record("a very ", 1, tag="P"), record("long ", 2, tag="P"), record("line", 3)[:20],
              record("line", 3)[20:], record("next", 4)]
    running = [True]

    def writer() -> None:
        for piece in pieces:
            append(path, piece)
            time.sleep(0.03)
        running[0] = False

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        output = read_all(path, LogReadOptions(follow=True, timestamps=True), still_running=lambda: running[0])
    finally:
        thread.join()
    # One timestamp per line, at its start, in upstream's fixed nine-digit form.
    assert output == (b"2026-01-01T00:00:01.000000001Z a very long line\n"
                      b"2026-01-01T00:00:04.000000001Z next\n")


def test_streams_keep_their_own_line_starts(tmp_path: Path) -> None:
    path = tmp_path / "0.log"
    path.write_text(record("out ", 1, tag="P") + record("err", 2, stream="stderr") + record("done", 3))
    assert read_all(path, LogReadOptions(timestamps=True)) == (
        b"2026-01-01T00:00:01.000000001Z out "
        b"2026-01-01T00:00:02.000000001Z err\n"
        b"done\n")


def test_tail_counts_printed_lines_and_a_follow_goes_on_from_there(tmp_path: Path) -> None:
    path = tmp_path / "0.log"
    path.write_text(record("one") + record("two") + record("thr", tag="P") + record("ee") + "torn rec")
    assert read_all(path, LogReadOptions(tail_lines=2)) == b"two\nthree\n"
    assert read_all(path, LogReadOptions(tail_lines=10)) == b"one\ntwo\nthree\n"
    assert read_all(path, LogReadOptions(tail_lines=0)) == b""

    calls = [0]

    def writes_once_more() -> bool:
        calls[0] += 1
        if calls[0] == 1:
            append(path, "ord\n" + record("four"))  # completes the torn record, then one more line
            return True
        return False

    # The torn record completes into garbage (no CRI line), which is skipped as upstream does.
    assert read_all(path, LogReadOptions(follow=True, tail_lines=0), still_running=writes_once_more) == b"four\n"


def test_tail_only_searches_the_end_of_a_huge_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import securekube.kubelet.crilog as crilog

    path = tmp_path / "0.log"
    path.write_text(record("old") + record("cut through") + record("new"))
    monkeypatch.setattr(crilog, "TAIL_WINDOW_BYTES", len(record("new")) + 10)
    with open(path, "rb") as log:
        assert tail_start(log, 100) == len(record("old")) + len(record("cut through"))


def test_since_leaves_out_earlier_lines(tmp_path: Path) -> None:
    path = tmp_path / "0.log"
    path.write_text(record("early", 1) + record("on time", 5) + "2026-01-01T00:00:09+02:00 stdout F zoned\n")
    since = nanos_since_epoch(datetime(2026, 1, 1, 0, 0, 5, tzinfo=timezone.utc))
    # 00:00:09+02:00 is 22:00:09 the day before: earlier still.
    assert read_all(path, LogReadOptions(since_nanos=since)) == b"on time\n"


def test_timestamps_keep_the_runtimes_zone_with_nine_digits() -> None:
    assert fixed_timestamp(b"2026-01-01T10:00:00.5+02:00") == b"2026-01-01T10:00:00.500000000+02:00"
    assert fixed_timestamp(b"2026-01-01T10:00:00+00:00") == b"2026-01-01T10:00:00.000000000Z"
    assert record_nanos(b"1970-01-01T00:00:01.000000002Z") == 1_000_000_002
    assert record_nanos(b"1970-01-01T01:00:01+01:00") == 1_000_000_000
    assert record_nanos(b"1970-13-01T00:00:01Z") is None


def test_the_byte_limit_cuts_the_output_and_ends_a_follow(tmp_path: Path) -> None:
    path = tmp_path / "0.log"
    path.write_text(record("0123456789") + record("more"))
    assert read_all(path, LogReadOptions(limit_bytes=5)) == b"01234"
    # Reached: the follow ends although the container still runs.
    assert read_all(path, LogReadOptions(follow=True, limit_bytes=13), still_running=lambda: True) == b"0123456789\nmo"


def test_a_follow_ends_when_its_reader_is_gone(tmp_path: Path) -> None:
    path = tmp_path / "0.log"
    path.write_text(record("hello"))
    gone = threading.Event()
    threading.Timer(0.1, gone.set).start()
    started = time.monotonic()
    with ContainerLogStream(path, LogReadOptions(follow=True), lambda: True, FAST) as stream:
        assert b"".join(stream.chunks(cancelled=gone.is_set)) == b"hello\n"
    assert time.monotonic() - started < 2


def test_lines_that_are_no_cri_records_are_skipped(tmp_path: Path) -> None:
    path = tmp_path / "0.log"
    path.write_text("garbage\n" + "2026-01-01 stdout F no time\n" + "2026-01-01T00:00:00Z stdin F wrong stream\n"
                    + record("kept"))
    assert read_all(path) == b"kept\n"


def test_a_missing_file_is_an_empty_log(tmp_path: Path) -> None:
    assert read_all(tmp_path / "never-written.log", LogReadOptions(follow=True), still_running=lambda: True) == b""
