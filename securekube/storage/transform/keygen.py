"""New encryption keys: random key material and unique, time-stamped key names."""

from __future__ import annotations

import base64
from collections.abc import Callable, Collection
from datetime import UTC, datetime

from securekube.storage.transform.interfaces import RandomSource, read_random
from securekube.storage.transform.model import KEY_SIZES

Clock = Callable[[], datetime]

# Every provider accepts 32 bytes, the strongest size each supports.
GENERATED_KEY_SIZE = 32


def utc_now() -> datetime:
    """The current time in UTC (the default clock)."""
    return datetime.now(UTC)


def new_key_name(now: datetime, taken: Collection[str]) -> str:
    """`key-<UTC timestamp>`, with a -2, -3, ... suffix if that name is already in the file."""
    base = "key-" + now.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    name, counter = base, 2
    while name in taken:
        name, counter = f"{base}-{counter}", counter + 1
    return name


def new_key_secret(provider: str, random_bytes: RandomSource) -> str:
    """A fresh key for `provider`, base64-encoded as the file stores it."""
    if provider not in KEY_SIZES:
        raise ValueError(
            f"keys can only be generated for {', '.join(sorted(KEY_SIZES))}, not {provider!r}"
        )
    material = read_random(random_bytes, GENERATED_KEY_SIZE, f"{provider} key")
    return base64.b64encode(material).decode("ascii")
