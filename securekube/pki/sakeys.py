"""ServiceAccount signing key rotation with a grace period.

`rotate_sa_key` retires the current public key to `sa-<UTC time>.pub` (still accepted for
verification, so tokens already issued keep working) and writes a new key pair; the API server
picks the change up within seconds. `retire_sa_keys` removes retired public keys older than the
longest token lifetime, after which no token they signed can still be valid.
"""
from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

from securekube.pki import files, keys
from securekube.pki.layout import PkiPaths

# securekube caps token lifetimes at 48 h (authn/serviceaccount.py), so a key retired longer
# ago than that has no valid token left.
MAX_TOKEN_LIFETIME = dt.timedelta(hours=48)


def rotate_sa_key(root: Path, *, now: dt.datetime | None = None) -> Path:
    """Retires the current public key (kept for verification) and writes a new pair. Returns the retired file."""
    paths = PkiPaths(Path(root))
    now = now or dt.datetime.now(dt.timezone.utc)
    retired = paths.root / f"sa-{now.strftime('%Y%m%dT%H%M%S%fZ')}.pub"
    files.write_new(retired, paths.sa_pub.read_bytes(), files.PUBLIC_MODE)
    key = keys.generate_private_key()
    # Public first: a server that reloads in between verifies with both keys and signs with the old one.
    files.replace(paths.sa_pub, keys.public_key_pem(key.public_key()), files.PUBLIC_MODE)
    files.replace(paths.sa_key, keys.private_key_pem(key), files.PRIVATE_MODE)
    return retired


def retire_sa_keys(root: Path, *, now: dt.datetime | None = None,
                   older_than: dt.timedelta = MAX_TOKEN_LIFETIME) -> list[Path]:
    """Removes retired public keys older than `older_than`; returns what was removed."""
    paths = PkiPaths(Path(root))
    now = now or dt.datetime.now(dt.timezone.utc)
    removed = []
    for path in sorted(paths.root.glob("sa-*.pub")):
        retired_at = dt.datetime.fromtimestamp(path.stat().st_mtime, dt.timezone.utc)
        if now - retired_at > older_than:
            os.unlink(path)
            removed.append(path)
    return removed
