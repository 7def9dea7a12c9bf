"""Time bounds as a reviewer types them: RFC 3339 (`2024-05-01T10:00:00Z`), a date, or `90m` / `1h30m` ago."""
from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

from securekube.audit.review.event_fields import parse_time

_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_RELATIVE = re.compile(r"(?:\d+(?:\.\d+)?[smhdw])+")
_PART = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")


class TimeFormatError(ValueError):
    """A time bound that is neither RFC 3339 nor a relative duration."""


def parse_bound(text: str, now: datetime | None = None) -> datetime:
    """The moment `text` names; relative durations count back from `now` (default: the current time).

    A time without an offset, and a bare date, are taken as UTC (audit timestamps are UTC).
    """
    text = text.strip()
    if _RELATIVE.fullmatch(text):
        seconds = sum(float(n) * _UNIT_SECONDS[unit] for n, unit in _PART.findall(text))
        return (now or datetime.now(timezone.utc)) - timedelta(seconds=seconds)
    moment = parse_time(text)
    if moment is None:
        raise TimeFormatError(f"cannot read time {text!r}: use RFC 3339 (2024-05-01T10:00:00Z), "
                              f"a date (2024-05-01) or a duration ago (30m, 1h, 2d)")
    return moment
