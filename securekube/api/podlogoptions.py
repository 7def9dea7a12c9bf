"""`PodLogOptions` (core/v1): the query of `GET pods/NAME/log`, decoded and validated as upstream does.

The API server decodes and validates the options a client sends, then passes them on to the
kubelet in the query form upstream's `LogLocation` writes; the kubelet decodes them again (it is
reachable on its own, so it trusts no caller to have validated them).

Decoding follows upstream's query conversion: the first value of a parameter counts; a boolean is
false only when absent, "false" (any case) or "0"; an integer is a base-10 int64. A value that does
not decode is a 400 BadRequest; a decoded value that breaks a rule is a 422 Invalid, with upstream's
field messages.
"""
from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from urllib.parse import urlencode

from securekube.api import errors, validation
from securekube.api.errors import Cause

_INT64 = re.compile(r"[+-]?[0-9]+")
_INT64_MAX = 2**63 - 1
# RFC 3339 as Go's time.RFC3339 parses it: a date, a time, an optional fraction and a zone.
_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})")


@dataclass(frozen=True)
class PodLogOptions:
    """Which container's log, how much of it, and whether to keep streaming what it writes next."""

    container: str = ""
    follow: bool = False
    previous: bool = False
    timestamps: bool = False
    since_seconds: int | None = None
    since_time: datetime | None = None  # always timezone-aware
    tail_lines: int | None = None
    limit_bytes: int | None = None

    def earliest(self, now: datetime) -> datetime | None:
        """The time before which lines are left out (upstream's kubelet: the later of both bounds)."""
        bounds = [bound for bound in (
            now - timedelta(seconds=self.since_seconds) if self.since_seconds is not None else None,
            self.since_time) if bound is not None]
        return max(bounds) if bounds else None

    def kubelet_query(self) -> str:
        """The options as the query of the kubelet's /containerLogs request (upstream's LogLocation)."""
        params: list[tuple[str, str]] = []
        for name, enabled in (("follow", self.follow), ("previous", self.previous),
                              ("timestamps", self.timestamps)):
            if enabled:
                params.append((name, "true"))
        if self.since_seconds is not None:
            params.append(("sinceSeconds", str(self.since_seconds)))
        if self.since_time is not None:
            params.append(("sinceTime", format_rfc3339(self.since_time)))
        for name, number in (("tailLines", self.tail_lines), ("limitBytes", self.limit_bytes)):
            if number is not None:
                params.append((name, str(number)))
        return urlencode(params)


def format_rfc3339(moment: datetime) -> str:
    """A time in metav1.Time's wire form: whole seconds, UTC, "Z"."""
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _first(query: Mapping[str, Sequence[str]], name: str) -> str | None:
    values = query.get(name)
    return values[0] if values else None


def _boolean(query: Mapping[str, Sequence[str]], name: str) -> bool:
    value = _first(query, name)
    return value is not None and value != "0" and value.lower() != "false"


def _int64(query: Mapping[str, Sequence[str]], name: str) -> int | None:
    value = _first(query, name)
    if value is None:
        return None
    if not _INT64.fullmatch(value):
        raise errors.bad_request(f'strconv.ParseInt: parsing "{value}": invalid syntax')
    number = int(value)
    if not -_INT64_MAX - 1 <= number <= _INT64_MAX:
        raise errors.bad_request(f'strconv.ParseInt: parsing "{value}": value out of range')
    return number


def _time(query: Mapping[str, Sequence[str]], name: str) -> datetime | None:
    value = _first(query, name)
    if not value:
        return None
    if not _RFC3339.fullmatch(value):
        raise errors.bad_request(f'{name}: Invalid value: "{value}": must be an RFC 3339 time')
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:  # well-formed but impossible, such as month 13
        raise errors.bad_request(f'{name}: Invalid value: "{value}": must be an RFC 3339 time') from None


def decode(query: Mapping[str, Sequence[str]]) -> PodLogOptions:
    """The options in a parsed query string (`urllib.parse.parse_qs(..., keep_blank_values=True)`).

    Raises a 400 ApiError for a value that is not of its parameter's type.
    """
    return PodLogOptions(
        container=_first(query, "container") or "",
        follow=_boolean(query, "follow"),
        previous=_boolean(query, "previous"),
        timestamps=_boolean(query, "timestamps"),
        since_seconds=_int64(query, "sinceSeconds"),
        since_time=_time(query, "sinceTime"),
        tail_lines=_int64(query, "tailLines"),
        limit_bytes=_int64(query, "limitBytes"),
    )


def validate(options: PodLogOptions, pod_name: str) -> None:
    """Upstream's ValidatePodLogOptions: a 422 Invalid naming every broken rule, or nothing."""
    causes: list[Cause] = []
    if options.tail_lines is not None and options.tail_lines < 0:
        causes.append(validation.invalid("tailLines", options.tail_lines, "must be greater than or equal to 0"))
    if options.limit_bytes is not None and options.limit_bytes < 1:
        causes.append(validation.invalid("limitBytes", options.limit_bytes, "must be greater than 0"))
    if options.since_seconds is not None and options.since_time is not None:
        causes.append(validation.forbidden("", "at most one of `sinceTime` or `sinceSeconds` may be specified"))
    elif options.since_seconds is not None and options.since_seconds < 1:
        causes.append(validation.invalid("sinceSeconds", options.since_seconds, "must be greater than 0"))
    if causes:
        raise errors.invalid("PodLogOptions", pod_name, causes)


def parse(query: Mapping[str, Sequence[str]], pod_name: str) -> PodLogOptions:
    """Decoded and validated options (400 or 422 ApiError otherwise)."""
    options = decode(query)
    validate(options, pod_name)
    return options
