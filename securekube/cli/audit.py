"""`securekube audit`: verify that audit logs are complete and unaltered (and, via review/, query them).

`audit verify FILES...` exits 0 when the files are intact and 1 when anything was tampered with
(or cannot be read), printing one line per problem: FILE:LINE: what is wrong [seq, auditID].
"""
from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path
from typing import Any

from securekube.audit.errors import AuditKeyError
from securekube.audit.keys import PUBLIC_KEY_NAME, load_audit_public_key
from securekube.audit.verify import verify
from securekube.cli.datadir import DataDir
from securekube.cli.errors import CliError

EXIT_INTACT, EXIT_TAMPERED = 0, 1
WITNESS_SUFFIX = ".checkpoint"
REVIEW_CLI_MODULE = "securekube.audit.review.cli"


def register(groups: Any) -> None:
    """Adds the `audit` command group to the top-level subparsers `groups`."""
    audit = groups.add_parser(
        "audit", help="verify and review audit logs",
        description="Work with audit.k8s.io/v1 audit logs: prove a securekube log complete and unaltered "
                    "(verify), and review logs from securekube or kube-apiserver.")
    commands = audit.add_subparsers(dest="audit_command", metavar="COMMAND", required=True)
    _register_verify(commands)
    _register_review(commands)


def _register_review(commands: Any) -> None:
    # HOOK for the review commands (query, summary, timeline, rbac-gen, report): they live in
    # securekube/audit/review/cli.py, which adds its subcommands with `register(commands)`.
    # Only its absence is tolerated; a review module that fails to import is a real error.
    try:
        review_cli = importlib.import_module(REVIEW_CLI_MODULE)
    except ModuleNotFoundError as exc:
        if exc.name in (REVIEW_CLI_MODULE, REVIEW_CLI_MODULE.rpartition(".")[0]):
            return
        raise
    review_cli.register(commands)


def _register_verify(commands: Any) -> None:
    parser = commands.add_parser(
        "verify", help="check that audit log files are complete and unaltered",
        description="Check securekube audit log files (plain or .gz, rotated ones included, in any order): "
                    "every record's hash, the chain between records and across files, the Ed25519 signatures "
                    "of the checkpoints, and that nothing is missing at the start or the end. Prints one line "
                    "per problem; exit status 0 = intact, 1 = tampered or unreadable. The latest checkpoint "
                    f"kept next to a log (LOG{WITNESS_SUFFIX}) is used automatically to detect truncation.")
    parser.add_argument("files", nargs="+", type=Path, metavar="FILE", help="audit log files")
    key = parser.add_mutually_exclusive_group(required=True)
    key.add_argument("--key", type=Path, metavar="PUB",
                     help=f"the audit signing public key ({PUBLIC_KEY_NAME} from the cluster's PKI directory)")
    key.add_argument("--data-dir", type=Path, metavar="DIR",
                     help=f"a `securekube up` data directory: use DIR/pki/{PUBLIC_KEY_NAME}")
    parser.add_argument("--witness", type=Path, action="append", default=[], metavar="FILE",
                        help="a copy of checkpoints kept elsewhere (e.g. received by the webhook); repeatable")
    parser.add_argument("--quiet", "-q", action="store_true", help="print problems only, no summary")
    parser.set_defaults(run=run_verify)


def run_verify(args: argparse.Namespace) -> int:
    key_path = args.key if args.key is not None else DataDir(args.data_dir).pki / PUBLIC_KEY_NAME
    try:
        public_key = load_audit_public_key(key_path)
    except AuditKeyError as exc:
        raise CliError(str(exc)) from None
    files = [Path(f) for f in args.files]
    witnesses = list(args.witness)
    for path in files:
        witness = path.with_name(path.name + WITNESS_SUFFIX)
        if witness.is_file() and witness not in witnesses and path not in witnesses:
            witnesses.append(witness)
    # A witness named among the files (e.g. by a glob) is used as a witness, not read as a log.
    files = [f for f in files if f not in witnesses]
    report = verify(files, public_key, witnesses=witnesses)
    for problem in report.problems:
        print(problem)
    if report.more_problems:
        print(f"... and {report.more_problems} more problem(s)")
    if not args.quiet:
        for note in report.notes:
            print(f"note: {note}", file=sys.stderr)
        span = (f"seq {report.first_seq}..{report.last_seq}" if report.last_seq is not None else "no records")
        sealed = (f", signed through seq {report.sealed_through}" if report.sealed_through is not None else "")
        verdict = "intact" if report.intact else f"TAMPERED ({len(report.problems) + report.more_problems} problem(s))"
        print(f"audit verify: {report.records} record(s) in {len(report.files)} file(s), {span}{sealed}: {verdict}",
              file=sys.stderr)
    return EXIT_INTACT if report.intact else EXIT_TAMPERED
