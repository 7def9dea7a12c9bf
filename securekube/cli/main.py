"""The `securekube` command: one argparse tree, one module per command group."""
from __future__ import annotations

import argparse
import sys

from securekube.cli import errors
from securekube.policy import go_runtime


def build_parser() -> argparse.ArgumentParser:
    """The whole command tree; each group module adds its own subcommands."""
    from securekube.cli import audit as audit_cmd
    from securekube.cli import pki as pki_cmd
    from securekube.cli import policy as policy_cmd
    from securekube.cli import rbac as rbac_cmd
    from securekube.cli import secrets as secrets_cmd
    from securekube.cli import token as token_cmd
    from securekube.cli import up as up_cmd

    parser = argparse.ArgumentParser(
        prog="securekube",
        description="A security-hardened, Kubernetes-API-compatible lab cluster.",
    )
    groups = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    up_cmd.register(groups)
    pki_cmd.register(groups)
    secrets_cmd.register(groups)
    rbac_cmd.register(groups)
    policy_cmd.register(groups)
    audit_cmd.register(groups)
    token_cmd.register(groups)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if argv is None and getattr(args, "runs_policy_engine", False) and go_runtime.needs_restart():
        go_runtime.restart_with_engine_gc()  # only a process started for this command restarts itself
    try:
        return int(args.run(args) or 0)
    except errors.CliError as exc:
        print(f"securekube: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
