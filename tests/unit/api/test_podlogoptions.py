"""PodLogOptions from a query: upstream's decoding (400) and validation (422), and the kubelet's query."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from urllib.parse import parse_qs

import pytest

from securekube.api import podlogoptions
from securekube.api.errors import ApiError
from securekube.api.podlogoptions import PodLogOptions


def parse(query: str) -> PodLogOptions:
    return podlogoptions.parse(parse_qs(query, keep_blank_values=True), "web")


def refusal(query: str) -> tuple[int, str, str]:
    with pytest.raises(ApiError) as raised:
        parse(query)
    return raised.value.code, raised.value.reason, raised.value.message


@pytest.mark.parametrize(("query", "follow"), [
    ("", False), ("follow=true", True), ("follow=1", True), ("follow=", True), ("follow=yes", True),
    ("follow=false", False), ("follow=FALSE", False), ("follow=0", False), ("follow=0&follow=1", False),
])
def test_booleans_decode_as_upstream(query: str, follow: bool) -> None:
    assert parse(query).follow is follow


def test_every_option_is_decoded() -> None:
    options = parse("container=main&previous=true&timestamps=true&tailLines=5&limitBytes=100&sinceSeconds=60")
    assert options == PodLogOptions(container="main", previous=True, timestamps=True, tail_lines=5,
                                    limit_bytes=100, since_seconds=60)
    assert parse("sinceTime=2026-01-01T10:00:00%2B02:00").since_time == datetime(2026, 1, 1, 8, tzinfo=timezone.utc)


@pytest.mark.parametrize(("query", "message"), [
    ("tailLines=abc", 'strconv.ParseInt: parsing "abc": invalid syntax'),
    ("limitBytes=1.5", 'strconv.ParseInt: parsing "1.5": invalid syntax'),
    ("sinceSeconds=99999999999999999999", 'strconv.ParseInt: parsing "99999999999999999999": value out of range'),
    ("sinceTime=yesterday", 'sinceTime: Invalid value: "yesterday": must be an RFC 3339 time'),
    ("sinceTime=2026-13-01T00:00:00Z", 'sinceTime: Invalid value: "2026-13-01T00:00:00Z": must be an RFC 3339 time'),
])
def test_values_that_do_not_decode_are_bad_requests(query: str, message: str) -> None:
    assert refusal(query) == (400, "BadRequest", message)


@pytest.mark.parametrize(("query", "message"), [
    ("tailLines=-1", 'PodLogOptions "web" is invalid: tailLines: Invalid value: -1: must be greater than or equal to 0'),
    ("limitBytes=0", 'PodLogOptions "web" is invalid: limitBytes: Invalid value: 0: must be greater than 0'),
    ("limitBytes=-5", 'PodLogOptions "web" is invalid: limitBytes: Invalid value: -5: must be greater than 0'),
    ("sinceSeconds=0", 'PodLogOptions "web" is invalid: sinceSeconds: Invalid value: 0: must be greater than 0'),
    ("sinceSeconds=5&sinceTime=2026-01-01T00:00:00Z",
     'PodLogOptions "web" is invalid: Forbidden: at most one of `sinceTime` or `sinceSeconds` may be specified'),
])
def test_values_that_break_upstreams_rules_are_invalid(query: str, message: str) -> None:
    assert refusal(query) == (422, "Invalid", message)


def test_every_broken_rule_is_named() -> None:
    code, _, message = refusal("tailLines=-1&limitBytes=0")
    assert code == 422 and "tailLines" in message and "limitBytes" in message


def test_the_kubelet_query_carries_the_options_unchanged() -> None:
    options = parse("follow=true&previous=1&timestamps=true&tailLines=0&limitBytes=7&sinceTime=2026-01-01T00:00:00Z")
    assert options.kubelet_query() == ("follow=true&previous=true&timestamps=true&sinceTime=2026-01-01T00%3A00%3A00Z"
                                       "&tailLines=0&limitBytes=7")
    assert podlogoptions.parse(parse_qs(options.kubelet_query()), "web") == PodLogOptions(
        follow=True, previous=True, timestamps=True, since_time=options.since_time, tail_lines=0, limit_bytes=7)
    assert PodLogOptions(container="main").kubelet_query() == ""  # the container is in the kubelet's path


def test_the_earliest_line_is_the_later_of_both_bounds() -> None:
    now = datetime(2026, 1, 1, 12, tzinfo=timezone.utc)
    assert PodLogOptions().earliest(now) is None
    assert PodLogOptions(since_seconds=60).earliest(now) == now - timedelta(seconds=60)
    assert PodLogOptions(since_time=now - timedelta(hours=1)).earliest(now) == now - timedelta(hours=1)
