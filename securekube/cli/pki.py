"""`securekube pki`: create, inspect and rotate the cluster's certificates and keys."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from securekube.cli.errors import CliError
from securekube.pki.breakglass import issue_breakglass
from securekube.pki.certs import utcnow
from securekube.pki.errors import PkiError
from securekube.pki.inspect import CertInfo, inspect
from securekube.pki.kubeconfig import check_server_url, write_admin_kubeconfig
from securekube.pki.layout import bootstrap
from securekube.pki.profiles import PkiProfiles, load_profiles, parse_duration
from securekube.pki.revocation import format_serial, parse_serial, revoke
from securekube.pki.rotate import rotate_leaves
from securekube.pki.sakeys import retire_sa_keys, rotate_sa_key

DEFAULT_SERVER_URL = "https://127.0.0.1:6443"


def register(groups: Any) -> None:
    """Adds the `pki` command group to the top-level subparsers `groups`."""
    pki = groups.add_parser(
        "pki",
        help="create, inspect and rotate certificates and keys",
        description=(
            "Manage the cluster's PKI: a cluster CA, a separate etcd CA, a ServiceAccount "
            "signing key and the certificates they issue (all ECDSA P-256). Private keys "
            "are written mode 0600 and never printed."
        ),
    )
    commands = pki.add_subparsers(dest="pki_command", metavar="SUBCOMMAND", required=True)

    init = commands.add_parser(
        "init",
        help="create the PKI directory (reuses whatever already exists)",
        description=(
            "Create every CA, certificate and key the cluster needs in DIR, plus "
            "DIR/admin.kubeconfig. Safe to run again: existing files are checked and reused, "
            "only missing ones are created. The admin identity is user securekube-admin in "
            "group securekube:cluster-admins, not system:masters."
        ),
    )
    _add_common(init)
    _add_san(
        init,
        "extra DNS name or IP address for the API serving certificate "
        "(e.g. this machine's host name); repeatable",
    )
    init.add_argument(
        "--server",
        default=DEFAULT_SERVER_URL,
        metavar="URL",
        help=f"API server URL written into admin.kubeconfig (default: {DEFAULT_SERVER_URL})",
    )
    init.set_defaults(run=run_init)

    show = commands.add_parser(
        "inspect",
        help="list certificates with subjects, SANs and expiry",
        description="Show every certificate in DIR (never the keys): subject, issuer, "
        "SANs, validity and serial.",
    )
    show.add_argument("--dir", required=True, type=Path, metavar="DIR", help="PKI directory")
    show.add_argument("--json", action="store_true", help="print JSON instead of a table")
    show.set_defaults(run=run_inspect)

    revoke_cmd = commands.add_parser(
        "revoke",
        help="revoke a client certificate by serial (checked on every request)",
        description="Add a certificate serial to the cluster's revocation list (crl.pem, signed by the "
        "cluster CA). A running API server refuses the certificate within seconds, also on open "
        "connections. Serials as `pki inspect` prints them.",
    )
    revoke_cmd.add_argument("--dir", required=True, type=Path, metavar="DIR", help="PKI directory")
    revoke_cmd.add_argument("serial", help="serial number: aa:bb:.. hex, 0x-hex or decimal")
    revoke_cmd.set_defaults(run=run_revoke)

    sa_rotate = commands.add_parser(
        "rotate-sa-key",
        help="new ServiceAccount signing key; the old one still verifies existing tokens",
        description="Write a new ServiceAccount token signing key pair. The previous public key is kept "
        "(sa-<time>.pub) so tokens it signed stay valid until they expire; `retire-sa-keys` removes it later.",
    )
    sa_rotate.add_argument("--dir", required=True, type=Path, metavar="DIR", help="PKI directory")
    sa_rotate.set_defaults(run=run_rotate_sa_key)
    sa_retire = commands.add_parser(
        "retire-sa-keys",
        help="remove retired ServiceAccount public keys older than the longest token lifetime (48h)",
    )
    sa_retire.add_argument("--dir", required=True, type=Path, metavar="DIR", help="PKI directory")
    sa_retire.set_defaults(run=run_retire_sa_keys)

    rotate = commands.add_parser(
        "rotate",
        help="reissue all leaf certificates with new keys (CAs and the SA key stay)",
        description=(
            "Reissue every leaf certificate in DIR with a fresh key from the same CAs. Files "
            "are replaced atomically, so running servers can reload them without downtime; "
            "old certificates stay valid until they expire. CAs and the ServiceAccount key "
            "are not rotated. DIR/admin.kubeconfig, if present, is refreshed."
        ),
    )
    _add_common(rotate)
    _add_san(
        rotate,
        "add a DNS name or IP address to the API serving certificate; repeatable "
        "(names it already has are kept)",
    )
    rotate.set_defaults(run=run_rotate)

    breakglass = commands.add_parser(
        "breakglass",
        help="write a short-lived emergency kubeconfig in system:masters",
        description=(
            "Write an emergency kubeconfig whose user is in system:masters (bypasses RBAC). "
            "Use it only when the admin credential cannot fix the cluster; it is never "
            "stored in DIR, and it expires after --ttl. Delete it when done."
        ),
    )
    _add_common(breakglass)
    breakglass.add_argument("--server", required=True, metavar="URL", help="API server URL (https)")
    breakglass.add_argument(
        "--out",
        required=True,
        type=Path,
        metavar="FILE",
        help="kubeconfig to write (mode 0600); must not exist yet",
    )
    breakglass.add_argument(
        "--ttl",
        metavar="DURATION",
        help="lifetime such as 1h or 30m (default 1h, at most 8h with the shipped profiles)",
    )
    breakglass.set_defaults(run=run_breakglass)


def run_init(args: argparse.Namespace) -> int:
    """Creates or completes the PKI directory and the admin kubeconfig."""
    profiles = _profiles(args)
    _pki_call(check_server_url, args.server)
    paths = _pki_call(bootstrap, args.dir, profiles, extra_sans=args.san)
    kubeconfig_state = "existing, kept"
    if not paths.admin_kubeconfig.exists():
        _pki_call(write_admin_kubeconfig, paths, profiles, server_url=args.server, overwrite=False)
        kubeconfig_state = f"server {args.server}"
    print(f"PKI ready in {paths.root}")
    print(f"admin kubeconfig: {paths.admin_kubeconfig} ({kubeconfig_state})")
    _print_table(_pki_call(inspect, paths.root))
    return 0


def run_inspect(args: argparse.Namespace) -> int:
    """Prints the certificates in the PKI directory."""
    infos = _pki_call(inspect, args.dir)
    if args.json:
        print(json.dumps([_as_json(info) for info in infos], indent=2))
    else:
        _print_table(infos)
    return 0


def run_rotate_sa_key(args: argparse.Namespace) -> int:
    """Rotates the ServiceAccount signing key, keeping the old public key for verification."""
    retired = _pki_call(rotate_sa_key, args.dir)
    print(f"new ServiceAccount signing key written; previous public key kept as {retired.name}")
    return 0


def run_retire_sa_keys(args: argparse.Namespace) -> int:
    """Removes retired ServiceAccount public keys past the grace period."""
    removed = _pki_call(retire_sa_keys, args.dir)
    print(f"removed {len(removed)} retired key(s)" + "".join(f"\n  {p.name}" for p in removed))
    return 0


def run_revoke(args: argparse.Namespace) -> int:
    """Adds a serial to the revocation list."""
    serial = _pki_call(parse_serial, args.serial)
    added = _pki_call(revoke, args.dir, serial)
    print(f"serial {format_serial(serial)} {'revoked' if added else 'was already revoked'}")
    return 0


def run_rotate(args: argparse.Namespace) -> int:
    """Reissues every leaf certificate."""
    profiles = _profiles(args)
    names = _pki_call(rotate_leaves, args.dir, profiles, extra_sans=args.san)
    print(f"reissued: {', '.join(names)}")
    return 0


def run_breakglass(args: argparse.Namespace) -> int:
    """Writes the break-glass kubeconfig."""
    profiles = _profiles(args)
    ttl: timedelta | None = _pki_call(parse_duration, args.ttl) if args.ttl else None
    cert = _pki_call(
        issue_breakglass, args.dir, profiles, server_url=args.server, out=args.out, ttl=ttl
    )
    print(
        f"wrote break-glass kubeconfig {args.out} (mode 0600): {cert.subject.rfc4514_string()}, "
        f"expires {cert.not_valid_after_utc.isoformat()}. It bypasses RBAC; delete it when done."
    )
    return 0


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dir", required=True, type=Path, metavar="DIR", help="PKI directory")
    parser.add_argument(
        "--profiles",
        type=Path,
        metavar="FILE",
        help="certificate profiles YAML (default: the repository's pki/profiles.yaml)",
    )


def _add_san(parser: argparse.ArgumentParser, help_text: str) -> None:
    parser.add_argument("--san", action="append", default=[], metavar="NAME", help=help_text)


def _profiles(args: argparse.Namespace) -> PkiProfiles:
    profiles: PkiProfiles = _pki_call(load_profiles, args.profiles)
    return profiles


def _pki_call(function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    # PkiError messages name files and certificates only, so they are safe to print.
    try:
        return function(*args, **kwargs)
    except PkiError as exc:
        raise CliError(str(exc)) from exc
    except OSError as exc:
        raise CliError(f"{exc.filename or 'PKI directory'}: {exc.strerror}") from exc


def _print_table(infos: list[CertInfo]) -> None:
    now = utcnow()
    rows = [("NAME", "SERIAL", "SUBJECT", "ISSUER", "NOT AFTER", "SANS")]
    for info in infos:
        expiry = info.not_after.strftime("%Y-%m-%dT%H:%M:%SZ")
        if info.expired(now):
            expiry += " (EXPIRED)"
        rows.append((info.name, format_serial(info.serial), info.subject, info.issuer, expiry,
                     ",".join(info.sans) or "-"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        print("  ".join([*cells, row[-1]]))


def _as_json(info: CertInfo) -> dict[str, Any]:
    return {
        "name": info.name,
        "path": str(info.path),
        "subject": info.subject,
        "issuer": info.issuer,
        "sans": list(info.sans),
        "notBefore": info.not_before.isoformat(),
        "notAfter": info.not_after.isoformat(),
        "serial": format(info.serial, "x"),
        "isCA": info.is_ca,
        "extendedKeyUsages": list(info.extended_key_usages),
    }
