"""`securekube token create`: tokens in upstream's format that the bootstrap authenticator accepts."""
from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest

from securekube.authn.bootstrap import BootstrapTokenAuthenticator
from securekube.authn.interfaces import Credentials
from securekube.cli.main import main
from securekube.cli.token import bootstrap_token_secret, new_token
from securekube.registry.kinds.secrets import SecretStrategy
from securekube.registry.store import Store
from securekube.storage.sqlite import SqliteStorage
from securekube.storage.transform.identity import IdentityTransformer


def test_a_new_token_has_the_bootstrap_shape() -> None:
    token_id, secret = new_token()
    assert re.fullmatch(r"[a-z0-9]{6}", token_id) and re.fullmatch(r"[a-z0-9]{16}", secret)
    assert new_token() != (token_id, secret)


def test_the_secret_authenticates_as_a_bootstrapper_until_it_expires(tmp_path: Path) -> None:
    storage = SqliteStorage(tmp_path / "state.db")
    try:
        secrets = Store(storage, SecretStrategy(), IdentityTransformer())
        token_id, token_secret = new_token()
        expires = dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=24)
        secrets.create("kube-system", bootstrap_token_secret(token_id, token_secret, expires))

        def lookup(name: str) -> dict | None:
            return secrets.get("kube-system", name)

        creds = Credentials((), f"Bearer {token_id}.{token_secret}")
        user = BootstrapTokenAuthenticator(lookup).authenticate(creds)
        assert user is not None and user.username == f"system:bootstrap:{token_id}"
        assert user.groups == ("system:bootstrappers",)
        later = BootstrapTokenAuthenticator(lookup, clock=lambda: expires + dt.timedelta(seconds=1))
        with pytest.raises(Exception, match="expired"):
            later.authenticate(creds)
    finally:
        storage.close()


def test_without_a_cluster_the_command_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["token", "create", "--data-dir", str(tmp_path)]) == 1
    assert "holds no admin kubeconfig" in capsys.readouterr().err
