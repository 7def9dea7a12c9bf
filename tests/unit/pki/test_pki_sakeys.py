"""ServiceAccount signing key rotation: the old public key stays for its grace period, then goes."""
from __future__ import annotations

import datetime as dt

from securekube.pki.keys import load_private_key, load_public_key, public_key_pem
from securekube.pki.layout import bootstrap
from securekube.pki.profiles import load_profiles
from securekube.pki.sakeys import MAX_TOKEN_LIFETIME, retire_sa_keys, rotate_sa_key


def test_rotation_keeps_the_old_public_key_then_retires_it(tmp_path):
    paths = bootstrap(tmp_path / "pki", load_profiles())
    old_pub = paths.sa_pub.read_bytes()
    retired = rotate_sa_key(paths.root)
    assert retired.read_bytes() == old_pub and paths.sa_pub.read_bytes() != old_pub
    assert (paths.sa_key.stat().st_mode & 0o777) == 0o600
    new_key = load_private_key(paths.sa_key)
    assert public_key_pem(new_key.public_key()) == public_key_pem(load_public_key(paths.sa_pub))
    now = dt.datetime.now(dt.timezone.utc)
    assert retire_sa_keys(paths.root, now=now) == []  # still in its grace period
    assert retire_sa_keys(paths.root, now=now + MAX_TOKEN_LIFETIME + dt.timedelta(minutes=1)) == [retired]
    assert not retired.exists()
