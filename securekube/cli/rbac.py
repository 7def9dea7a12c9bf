"""`securekube rbac who-can|explain`: review who holds an access right, and why a user does or does not.

Both commands read the RBAC objects either from a live cluster (the kubeconfig kubectl would
use: --kubeconfig, else KUBECONFIG, else ~/.kube/config; --context) or from a directory of
YAML/JSON files (--from-dir), and answer with the RBAC authorizer's own semantics.

Without -n the question is asked at the cluster scope (a request across all namespaces or on a
cluster-scoped resource), which only ClusterRoleBindings can grant; unlike `kubectl auth can-i`
no namespace is taken from the kubeconfig, so the same command means the same on files.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from securekube.authz.access_review import (
    Explanation,
    Finding,
    Grant,
    InvalidTarget,
    Target,
    dangling_bindings,
    explain,
    parse_target,
    render_rule,
    who_can,
)
from securekube.authz.rbac_model import (
    BINDING_KINDS,
    RBAC_GROUP,
    ROLE_KINDS,
    InvalidRBACObject,
    go_quote,
    parse_binding,
    parse_role,
)
from securekube.cli.errors import CliError

RBAC_KINDS = ROLE_KINDS | BINDING_KINDS
MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")
EXIT_ALLOWED, EXIT_DENIED = 0, 1  # as `kubectl auth can-i`: 0 yes, 1 no
# Shown as-is in the table; anything else is quoted so a stored name cannot hide in the layout.
_PLAIN_CELL = re.compile(r"^[A-Za-z0-9._:@/*-]+$")


def register(groups: argparse._SubParsersAction) -> None:
    rbac = groups.add_parser(
        "rbac", help="review RBAC: who can do something, and why a user can or cannot",
        description="Review RBAC on a live cluster or on a directory of manifests, with upstream semantics "
                    "(aggregated ClusterRoles, RoleBindings to ClusterRoles, ServiceAccounts, groups).")
    commands = rbac.add_subparsers(dest="rbac_command", metavar="COMMAND", required=True)

    who = commands.add_parser(
        "who-can", help="every subject allowed a request, and through which binding",
        description="List every subject (user, group, ServiceAccount) that may make the request, once per binding "
                    "that grants it. Exit code 0 when the answer is computed, also when nobody may.")
    who.add_argument("verb", metavar="VERB", help="API verb, e.g. get, list, create, delete, impersonate, *")
    _add_resource_arguments(who)
    who.set_defaults(run=run_who_can)

    why = commands.add_parser(
        "explain", help="whether a user may make a request, and which binding and rule decide",
        description="Explain whether USER may make the request: the binding, its role, and the rule that grant it "
                    "(with its index in the role), or the bindings that apply to the user when none does. The "
                    "groups every authenticated user has (system:authenticated; system:serviceaccounts[:NS] for "
                    "ServiceAccounts) are added. Exit code 0 if allowed, 1 if not, as `kubectl auth can-i`.")
    why.add_argument("user", metavar="USER", help="user name, e.g. alice or system:serviceaccount:NS:NAME")
    why.add_argument("verb", metavar="VERB", help="API verb, e.g. get, list, create, delete, impersonate, *")
    _add_resource_arguments(why)
    why.add_argument("--group", action="append", default=[], metavar="GROUP",
                     help="a group of the user (repeatable)")
    why.set_defaults(run=run_explain)


def _add_resource_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("resource", metavar="RESOURCE",
                        help="RESOURCE[.GROUP][/SUBRESOURCE] (pods, pods/log, deployments.apps) or a non-resource "
                             "URL starting with / (/healthz); a bare resource is in the core group")
    parser.add_argument("-n", "--namespace", default="",
                        help="namespace of the request (default: the cluster scope, i.e. all namespaces)")
    parser.add_argument("--name", default="", help="name of the object, for rules with resourceNames")
    parser.add_argument("-o", "--output", choices=("text", "json"), default="text", help="output format")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--kubeconfig", default=None,
                        help="kubeconfig file (default: KUBECONFIG, else ~/.kube/config)")
    source.add_argument("--from-dir", type=Path, default=None, metavar="DIR",
                        help="read RBAC objects from the .yaml/.yml/.json files under DIR instead of a cluster")
    parser.add_argument("--context", default=None, help="kubeconfig context (default: its current-context)")
    parser.add_argument("--with-bootstrap-policy", action="store_true",
                        help="with --from-dir: also load the default roles and bindings a new cluster starts with "
                             "(cluster-admin, admin, edit, view, system:basic-user, ...)")


# ---------------------------------------------------------------------------------- commands


def run_who_can(args: argparse.Namespace) -> int:
    target = _target(args)
    objects, source = _load_objects(args)
    try:
        findings = who_can(objects, args.verb, target)
        dangling = dangling_bindings(objects, target)
    except InvalidRBACObject as exc:
        raise CliError(f"{source}: {exc}") from None
    for ref in dangling:
        print(f"warning: {ref.describe()} refers to {ref.describe_role()}, which does not exist; it grants nothing",
              file=sys.stderr)
    if args.output == "json":
        print(json.dumps({
            "verb": args.verb,
            "request": target.to_dict(),
            "findings": [finding.to_dict() for finding in findings],
            "bindingsWithMissingRoles": [ref.to_dict() for ref in dangling],
        }, indent=2))
    elif findings:
        print(format_table(findings))
    else:
        print(f"no subject may {target.describe(args.verb)}")
    return 0


def run_explain(args: argparse.Namespace) -> int:
    target = _target(args)
    objects, source = _load_objects(args)
    try:
        explanation = explain(objects, args.user, args.group, args.verb, target)
    except InvalidRBACObject as exc:
        raise CliError(f"{source}: {exc}") from None
    except InvalidTarget as exc:
        raise CliError(str(exc)) from None
    if args.output == "json":
        print(json.dumps(explanation.to_dict(), indent=2))
    else:
        print(format_explanation(explanation))
    return EXIT_ALLOWED if explanation.allowed else EXIT_DENIED


def _target(args: argparse.Namespace) -> Target:
    """The request asked about, after checking the options fit together."""
    if args.context is not None and args.from_dir is not None:
        raise CliError("--context selects a kubeconfig context; it cannot be combined with --from-dir")
    if args.with_bootstrap_policy and args.from_dir is None:
        raise CliError("--with-bootstrap-policy only applies to --from-dir (a cluster has its own)")
    if not args.verb:
        raise CliError("the verb must not be empty")
    try:
        return parse_target(args.resource, args.namespace, args.name)
    except InvalidTarget as exc:
        raise CliError(str(exc)) from None


# ---------------------------------------------------------------------------------- output


def format_table(findings: list[Finding]) -> str:
    """who-can's table: SUBJECT KIND, SUBJECT, NAMESPACE (of a ServiceAccount), BINDING, ROLE."""
    rows = [("SUBJECT KIND", "SUBJECT", "NAMESPACE", "BINDING", "ROLE")]
    for finding in findings:
        ref = finding.binding
        # A RoleBinding listed is always in the namespace asked about, so its name suffices.
        binding = f"{ref.kind}/{_cell(ref.name)}"
        rows.append((finding.subject_kind, _cell(finding.subject_name), _cell(finding.subject_namespace), binding,
                     f"{ref.role_kind}/{_cell(ref.role_name)}"))
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]) - 1)]
    return "\n".join(
        "   ".join([cell.ljust(width) for cell, width in zip(row, widths)] + [row[-1]]).rstrip() for row in rows
    )


def _cell(value: str) -> str:
    return value if not value or _PLAIN_CELL.match(value) else go_quote(value)


def format_explanation(explanation: Explanation) -> str:
    """explain's text: the verdict, then the deciding binding, role and rule, or what applies instead."""
    verdict = "ALLOWED" if explanation.allowed else "DENIED"
    may = "may" if explanation.allowed else "may not"
    lines = [f"{verdict}: user {go_quote(explanation.user)} {may} {explanation.target.describe(explanation.verb)}"]
    groups = ", ".join(go_quote(g) for g in explanation.groups)
    implicit = ", ".join(go_quote(g) for g in explanation.implicit_groups)
    lines.append(f"  groups:   {groups}" + (f" (implicit: {implicit})" if implicit else ""))
    grant = explanation.decided_by
    if grant is not None:
        ref = grant.binding
        lines.append(f"  binding:  {ref.describe()}, subject {grant.subject.describe()}")
        lines.append(f"  role:     {ref.describe_role()}")
        lines.append(f"  rule:     rules[{grant.rule_index}] {render_rule(grant.rule)}")
        if grant.origin is not None:
            lines.append(f"            aggregated from ClusterRole {go_quote(grant.origin.role_name)} "
                         f"rules[{grant.origin.rule_index}]")
        if explanation.also_allowed_by:
            lines.append("  also allowed by:")
            lines.extend(f"    {_grant_line(other)}" for other in explanation.also_allowed_by)
    elif explanation.applicable_bindings:
        lines.append("  no binding grants it; the bindings that apply to this user here:")
        lines.extend(f"    {ref.describe()} ({ref.describe_role()})" for ref in explanation.applicable_bindings)
    else:
        lines.append("  no binding names this user or one of its groups here")
    lines.extend(f"  missing role: {ref.describe()} refers to {ref.describe_role()}, which does not exist"
                 for ref in explanation.missing_roles)
    lines.extend(f"  note: {note}" for note in explanation.notes)
    return "\n".join(lines)


def _grant_line(grant: Grant) -> str:
    return f"{grant.binding.describe()} ({grant.binding.describe_role()} rules[{grant.rule_index}])"


# ---------------------------------------------------------------------------------- sources


def _load_objects(args: argparse.Namespace) -> tuple[list[dict[str, Any]], str]:
    """The RBAC objects to review and a name for where they came from (for error messages)."""
    if args.from_dir is not None:
        loaded = load_rbac_directory(args.from_dir)
        _warn_duplicates(loaded)
        objects = [item.obj for item in loaded]
        if args.with_bootstrap_policy:
            from securekube.authz.bootstrap_policy import bootstrap_objects

            objects = bootstrap_objects() + objects  # the files win over the defaults
        return objects, str(args.from_dir)
    from securekube.cli.kubeconfig import ApiClient, list_rbac_objects, load_kubeconfig

    access = load_kubeconfig(args.kubeconfig, args.context)
    with ApiClient(access) as client:
        return list_rbac_objects(client), access.server


@dataclass(frozen=True)
class LoadedObject:
    """One RBAC object from a directory, with where it was written (`file`, `where` in the file)."""

    file: Path
    where: str  # e.g. "document 2" or "document 1, items[3]"
    obj: dict[str, Any]


def load_rbac_directory(root: Path) -> list[LoadedObject]:
    """Every Role, ClusterRole, RoleBinding and ClusterRoleBinding in the manifests under `root`.

    Files ending .yaml/.yml/.json, recursively, in path order; YAML files may hold several
    documents; `List` (and `RoleBindingList` etc.) items are expanded; documents of other kinds
    are ignored. Every RBAC object is validated here, so an error names its file and document
    (1-based). Parser messages are not shown: a manifest directory may hold Secrets.
    """
    if not root.is_dir():
        raise CliError(f"{root} is not a directory")
    loaded = []
    for path in _manifest_files(root):
        for document_number, document in _documents(path):
            for where, obj in _expand(document, f"document {document_number}"):
                if _is_rbac(obj):
                    _validate(obj, path, where)
                    loaded.append(LoadedObject(path, where, dict(obj)))
    if not loaded:
        raise CliError(f"no RBAC objects (Role, ClusterRole, RoleBinding, ClusterRoleBinding) found under {root}")
    return loaded


def _manifest_files(root: Path) -> list[Path]:
    found: list[Path] = []
    for directory, subdirectories, files in os.walk(root, onerror=_walk_error):
        subdirectories.sort()
        found.extend(Path(directory) / name for name in sorted(files) if name.endswith(MANIFEST_SUFFIXES))
    return found


def _walk_error(exc: OSError) -> None:
    raise CliError(f"cannot read {exc.filename}: {exc.strerror}")


def _documents(path: Path) -> Iterator[tuple[int, Any]]:
    """(1-based document number, document) for each document of a manifest file."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise CliError(f"{path}: not UTF-8 text") from None
    if path.suffix == ".json":
        try:
            yield 1, json.loads(text)
        except json.JSONDecodeError as exc:
            raise CliError(f"{path}: document 1: not valid JSON (line {exc.lineno}, column {exc.colno})") from None
        return
    number = 0
    try:
        for number, document in enumerate(yaml.safe_load_all(text), start=1):
            if document is not None:
                yield number, document
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        position = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        raise CliError(f"{path}: document {number + 1}: not valid YAML{position}") from None


def _expand(document: Any, where: str) -> Iterator[tuple[str, Any]]:
    """The document, or the items of a List document (item kinds filled in from a typed list)."""
    if not isinstance(document, Mapping):
        return
    kind = document.get("kind")
    items = document.get("items")
    if isinstance(kind, str) and kind.endswith("List") and isinstance(items, list):
        item_kind = kind[: -len("List")]
        for index, item in enumerate(items):
            if isinstance(item, Mapping) and item_kind in RBAC_KINDS and "kind" not in item:
                item = {**item, "kind": item_kind}
            yield from _expand(item, f"{where}, items[{index}]")
        return
    yield where, document


def _is_rbac(obj: Mapping[str, Any]) -> bool:
    api_version = obj.get("apiVersion")
    in_rbac_group = isinstance(api_version, str) and api_version.startswith(f"{RBAC_GROUP}/")
    return obj.get("kind") in RBAC_KINDS or in_rbac_group


def _validate(obj: Mapping[str, Any], path: Path, where: str) -> None:
    kind = obj.get("kind")
    try:
        if kind in ROLE_KINDS:
            parse_role(kind, obj)
        elif kind in BINDING_KINDS:
            parse_binding(kind, obj)
        else:
            raise InvalidRBACObject(f"kind {go_quote(str(kind))} is not a Role, ClusterRole, RoleBinding or "
                                    "ClusterRoleBinding")
    except InvalidRBACObject as exc:
        raise CliError(f"{path}: {where}: {exc}") from None


def _warn_duplicates(loaded: list[LoadedObject]) -> None:
    """Says when two documents define the same object: only the later one counts, as when applied in order."""
    first: dict[tuple[str, str, str], LoadedObject] = {}
    for item in loaded:
        metadata = item.obj["metadata"]
        key = (item.obj["kind"], metadata.get("namespace") or "", metadata["name"])
        if key in first:
            earlier = first[key]
            print(f"warning: {key[0]} {go_quote(key[2])} is defined in {earlier.file} ({earlier.where}) and again "
                  f"in {item.file} ({item.where}); the later one is used", file=sys.stderr)
        first[key] = item
