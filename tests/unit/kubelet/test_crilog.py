"""Container logs are read back from the CRI log format as the container printed them."""
from __future__ import annotations

from pathlib import Path

import pytest

from securekube.kubelet.crilog import parse_cri_log, read_container_log

LOG = (
    "2026-01-01T00:00:00.000000001Z stdout F hello\n"
    "2026-01-01T00:00:00.000000002Z stderr F unshare: Operation not permitted\n"
    "2026-01-01T00:00:00.000000003Z stdout P a very long \n"
    "2026-01-01T00:00:00.000000004Z stdout F line\n"
    "2026-01-01T00:00:00.000000005Z stdout F \n"
    "2026-01-01T00:00:00.0000000"  # torn write at the end
)


@pytest.fixture
def log_file(tmp_path: Path) -> Path:
    path = tmp_path / "0.log"
    path.write_text(LOG)
    return path


def test_partial_lines_are_joined_and_streams_kept() -> None:
    lines = parse_cri_log(LOG)
    assert [(line.stream, line.text) for line in lines] == [
        ("stdout", "hello"), ("stderr", "unshare: Operation not permitted"),
        ("stdout", "a very long line"), ("stdout", "")]


def test_reading_the_whole_log(log_file: Path) -> None:
    assert read_container_log(log_file) == (
        "hello\nunshare: Operation not permitted\na very long line\n\n")


def test_tail_and_stream_selection(log_file: Path) -> None:
    assert read_container_log(log_file, tail_lines=2) == "a very long line\n\n"
    assert read_container_log(log_file, stream="stderr") == "unshare: Operation not permitted\n"
    assert read_container_log(log_file, tail_lines=0) == ""


def test_only_the_end_of_a_huge_log_is_read(log_file: Path) -> None:
    assert read_container_log(log_file, max_bytes=120) == "line\n\n"


def test_unknown_stream_is_refused(log_file: Path) -> None:
    with pytest.raises(ValueError, match="stream must be one of"):
        read_container_log(log_file, stream="stdin")
