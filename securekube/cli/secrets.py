"""`securekube secrets encryption status|rotate|reencrypt`: encryption at rest, operated without downtime.

These commands work on a data directory while its API server runs: they edit the
EncryptionConfiguration file (the server reloads it within seconds) and rewrite stored
values with compare-and-swap, so no concurrent write is lost.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from securekube.cli.datadir import DataDir
from securekube.cli.errors import CliError

# The server polls the file every RELOAD_CHECK_SECONDS; waiting a few periods between stages
# makes sure it reads with a key before anything is written with it.
STAGE_WAIT_FACTOR = 2.5


def register(groups: argparse._SubParsersAction) -> None:
    secrets = groups.add_parser("secrets", help="operate encryption at rest of secrets",
                                description="Operate encryption at rest of secrets in a lab cluster's data directory.")
    secrets_groups = secrets.add_subparsers(dest="secrets_command", metavar="COMMAND", required=True)
    encryption = secrets_groups.add_parser("encryption", help="status, key rotation and re-encryption",
                                           description="Show, rotate and re-apply the encryption of stored secrets.")
    commands = encryption.add_subparsers(dest="encryption_command", metavar="COMMAND", required=True)

    status = commands.add_parser("status", help="providers, keys, and how many stored secrets use each key")
    rotate = commands.add_parser("rotate", help="staged rotation to a new key: add, promote, re-encrypt, prune",
                                 description="Add a new key (readable first), make it the write key, re-encrypt every "
                                             "secret with it, then remove keys no value uses any more. The running "
                                             "server picks up each stage; nothing is lost.")
    rotate.add_argument("--provider", default="secretbox", choices=["secretbox", "aesgcm", "aescbc"],
                        help="provider of the new key (default: secretbox)")
    reencrypt = commands.add_parser("reencrypt", help="rewrite every secret not written with the current write key")
    for parser, run in ((status, run_status), (rotate, run_rotate), (reencrypt, run_reencrypt)):
        parser.add_argument("--data-dir", required=True, type=Path, help="the cluster's data directory")
        parser.set_defaults(run=run)


def _open(data_dir: Path):
    from securekube.storage.interfaces import StorageError
    from securekube.storage.sqlite import SqliteStorage
    from securekube.storage.transform.config import load_encryption_config
    from securekube.storage.transform.model import EncryptionConfigError

    paths = DataDir(data_dir.resolve())
    if not paths.database.exists():
        raise CliError(f"{paths.root} holds no cluster database (run `securekube up --data-dir {data_dir}` first)")
    try:
        config = load_encryption_config(paths.encryption_config)
        storage = SqliteStorage(paths.database)
    except (EncryptionConfigError, StorageError) as exc:
        raise CliError(str(exc)) from None
    return paths, config, storage


def run_status(args: argparse.Namespace) -> int:
    from securekube.storage.transform.config import describe
    from securekube.storage.transform.rotation import key_usage

    paths, config, storage = _open(args.data_dir)
    try:
        for entry in describe(config):
            print(f"resources: {', '.join(entry['resources'])}")
            print(f"  writes with: {entry['writes_with']}")
            for provider in entry["providers"]:
                keys = ", ".join(provider["keys"]) or "-"
                print(f"  reads with:  {provider['type']} ({keys})")
            for note in entry.get("notes", []):
                print(f"  note: {note}")
        print("stored secrets by key:")
        for key, count in sorted(key_usage(storage, config).items()):
            print(f"  {key}: {count}")
    finally:
        storage.close()
    return 0


def _wait_for_reload(message: str) -> None:
    from securekube.apiserver.controlplane import RELOAD_CHECK_SECONDS

    print(f"securekube: {message}; waiting for the API server to reload it", flush=True)
    time.sleep(RELOAD_CHECK_SECONDS * STAGE_WAIT_FACTOR)


def _reencrypt(storage, paths: DataDir) -> None:
    from securekube.storage.transform.config import load_encryption_config
    from securekube.storage.transform.interfaces import DecryptionError
    from securekube.storage.transform.rotation import ReencryptError, reencrypt

    try:
        result = reencrypt(storage, load_encryption_config(paths.encryption_config))
    except (ReencryptError, DecryptionError) as exc:
        raise CliError(str(exc)) from None
    print(f"securekube: re-encrypted {result.rewritten} of {result.examined} secrets "
          f"({result.current} already current, {result.conflicts} concurrent writes retried)", flush=True)


def run_reencrypt(args: argparse.Namespace) -> int:
    paths, _config, storage = _open(args.data_dir)
    try:
        _reencrypt(storage, paths)
    finally:
        storage.close()
    return 0


def run_rotate(args: argparse.Namespace) -> int:
    from securekube.storage.transform.config import load_encryption_config
    from securekube.storage.transform.rotation import RotationError, add_key, key_usage, promote_key, prune_key

    paths, config, storage = _open(args.data_dir)
    try:
        try:
            name = add_key(paths.encryption_config, args.provider)
            _wait_for_reload(f"stage 1: added key {name} (read only)")
            promote_key(paths.encryption_config, name)
            _wait_for_reload(f"stage 2: key {name} now encrypts new writes")
            _reencrypt(storage, paths)
            config = load_encryption_config(paths.encryption_config)
            usage = key_usage(storage, config)
            for provider, key_name in config.configured_keys():
                if key_name != name and not usage.get(f"{provider}:{key_name}"):
                    # prune_key re-checks the whole registry and refuses a key still in use.
                    prune_key(paths.encryption_config, key_name, storage)
                    print(f"securekube: stage 4: removed unused key {key_name} ({provider})", flush=True)
        except RotationError as exc:
            raise CliError(str(exc)) from None
    finally:
        storage.close()
    print(f"securekube: rotation to {name} complete")
    return 0
