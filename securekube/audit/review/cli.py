"""`securekube audit query|summary|timeline|rbac-gen|report`: review audit logs from the terminal.

`register(subcommands)` adds the commands to the `audit` group (securekube/cli/audit.py). Each
takes audit.k8s.io/v1 log files — securekube's or kube-apiserver's, plain or gzipped, a rotated set
in any order — or `-` for stdin. Lines that cannot be read are reported on stderr with file and
line and left out; they never stop the review.

This module sits in the audit layer, below `securekube.cli`, so it does not raise the CLI's error
type: user mistakes are printed as the one `securekube: error: ...` line here, with exit code 1.
"""
from __future__ import annotations

import argparse
import functools
import os
import sys
import textwrap
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import TextIO

from securekube.audit.review import event_fields as ef
from securekube.audit.review.output import json_dump, write_event_list, write_lines, write_table
from securekube.audit.review.problems import NOTICE_KINDS, ReadProblems
from securekube.audit.review.query import DECISIONS, CodeRange, QueryError, QueryFilter, ResourceSpec, select
from securekube.audit.review.rbac_gen import Identity, collect, rbac_objects, to_yaml
from securekube.audit.review.reader import InputError, LineFilter, LogLine
from securekube.audit.review.report import render_report
from securekube.audit.review.stages import requests
from securekube.audit.review.summary import TOP, Summary, summarize
from securekube.audit.review.summary_text import write_summary
from securekube.audit.review.timeline import ObjectTarget, TimelineEntry, timeline
from securekube.audit.review.times import TimeFormatError, parse_bound

EXIT_ERROR = 1
_FILES_HELP = ("audit log files (audit.k8s.io/v1 JSON lines; .gz detected by content; rotated files are put in "
               "time order), or - for stdin")
_USER_ERRORS = (InputError, QueryError, TimeFormatError)


def register(subcommands: argparse._SubParsersAction) -> None:
    """Adds query, summary, timeline, rbac-gen and report to the `audit` command group."""
    _register_query(subcommands)
    _register_summary(subcommands)
    _register_timeline(subcommands)
    _register_rbac_gen(subcommands)
    _register_report(subcommands)


def _command(subcommands: argparse._SubParsersAction, name: str, help_text: str, description: str,
             epilog: str) -> argparse.ArgumentParser:
    # Raw formatting keeps the examples' lines; the description is wrapped here instead.
    parser = subcommands.add_parser(name, help=help_text, description=textwrap.fill(description, 79), epilog=epilog,
                                    formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("files", nargs="+", metavar="FILE", help=_FILES_HELP)
    return parser


def _add_window(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--since", metavar="TIME",
                        help="only requests received at or after TIME: RFC 3339 (2024-05-01T10:00:00Z), a date, "
                             "or a duration ago (30m, 1h, 2d)")
    parser.add_argument("--until", metavar="TIME", help="only requests received before TIME (same forms as --since)")


def _register_query(subcommands: argparse._SubParsersAction) -> None:
    parser = _command(
        subcommands, "query", "find the requests that match filters",
        "Find the requests that match every given filter; a filter given several times (or with commas) matches "
        "any of its values. One row per request (its final stage), unless --all-stages.",
        "examples:\n"
        "  securekube audit query audit.log --user alice --verb get --resource secrets\n"
        "  securekube audit query audit*.log* --decision forbid --since 1h -o jsonl\n"
        "  securekube audit query - --resource pods/exec -n team-a < audit.log\n"
        "  securekube audit query audit.log --code 5xx --user-agent kubectl -o json")
    parser.add_argument("--user", action="append", default=[], metavar="USER",
                        help="user name, matched against the user and the impersonated user "
                             "(e.g. alice, system:serviceaccount:team-a:deployer)")
    parser.add_argument("--group", action="append", default=[], metavar="GROUP", help="a group of the user")
    parser.add_argument("--verb", action="append", default=[], metavar="VERB",
                        help="API verb (get, list, watch, create, update, patch, delete, deletecollection, ...)")
    parser.add_argument("--resource", action="append", default=[], metavar="RESOURCE",
                        help="resource plural, optionally with API group and subresource: pods, pods/exec, "
                             "deployments.apps; without a subresource also matches its subresources")
    parser.add_argument("--subresource", action="append", default=[], metavar="SUBRESOURCE",
                        help="subresource, e.g. exec, log, status")
    parser.add_argument("-n", "--namespace", action="append", default=[], metavar="NAMESPACE", help="namespace")
    parser.add_argument("--name", action="append", default=[], metavar="NAME", help="object name")
    _add_window(parser)
    parser.add_argument("--code", action="append", default=[], metavar="CODE",
                        help="response code or class: 403, 404, 4xx, 5xx")
    parser.add_argument("--decision", action="append", default=[], metavar="DECISION",
                        help=f"authorization decision annotation: {' or '.join(DECISIONS)}")
    parser.add_argument("--source-ip", action="append", default=[], metavar="IP", help="a source IP of the request")
    parser.add_argument("--user-agent", metavar="TEXT", help="text the user agent contains, e.g. kubectl")
    parser.add_argument("--all-stages", action="store_true",
                        help="every matching event (RequestReceived, ResponseStarted, ...), not one per request")
    parser.add_argument("-o", "--output", choices=("table", "json", "jsonl"), default="table",
                        help="table (default); json: an audit.k8s.io/v1 EventList; jsonl: the log lines as they are")
    parser.set_defaults(run=run_query)


def _register_summary(subcommands: argparse._SubParsersAction) -> None:
    parser = _command(
        subcommands, "summary", "who did what: top identities, denials, sensitive actions",
        "Summarise the requests: top users and service accounts, denials (403 or a forbid decision), secret reads, "
        "exec/attach/port-forward, RBAC and policy changes, failed authentication (401) and requests by source IP.",
        "examples:\n  securekube audit summary audit.log audit-2024-05-01T10-00-00.000.log.gz\n"
        "  securekube audit summary audit.log --since 24h -o json")
    _add_window(parser)
    parser.add_argument("--top", type=_positive_int, default=TOP, metavar="N", help=f"rows per ranking (default {TOP})")
    parser.add_argument("-o", "--output", choices=("text", "json"), default="text", help="text (default) or json")
    parser.set_defaults(run=run_summary)


def _register_timeline(subcommands: argparse._SubParsersAction) -> None:
    parser = _command(
        subcommands, "timeline", "the ordered story of one object or one identity",
        "Every request on one object (with its subresources) or by one identity, oldest first: time, user, verb, "
        "object, response code and authorization decision.",
        "examples:\n  securekube audit timeline audit.log --object pods/team-a/web-1\n"
        "  securekube audit timeline audit.log --object Secret/team-a/db-password\n"
        "  securekube audit timeline audit.log --object nodes/node-1\n"
        "  securekube audit timeline audit.log --user system:serviceaccount:ci:deployer --since 2h")
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--object", metavar="KIND/NS/NAME",
                        help="KIND/NAMESPACE/NAME, or KIND/NAME for a cluster-scoped object; KIND as resource or "
                             "kind name (pods, Pod, pod, deployments.apps)")
    target.add_argument("--user", metavar="NAME", help="user name (also matches requests impersonating it)")
    _add_window(parser)
    parser.add_argument("-o", "--output", choices=("table", "json"), default="table", help="table (default) or json")
    parser.set_defaults(run=run_timeline)


def _register_rbac_gen(subcommands: argparse._SubParsersAction) -> None:
    parser = _command(
        subcommands, "rbac-gen", "least-privilege Roles/ClusterRoles covering what an identity did",
        "Generate Roles (per namespace) and a ClusterRole (cluster-scoped resources, requests across all namespaces, "
        "non-resource URLs), with bindings, that allow exactly the verbs and resources the identity requested — "
        "allowed and denied requests alike — per API group, without resourceNames. Output: YAML for "
        "kubectl apply -f.",
        "examples:\n  securekube audit rbac-gen audit.log --serviceaccount ci:deployer > deployer-rbac.yaml\n"
        "  securekube audit rbac-gen audit.log --user alice --name alice-observed | kubectl apply -f -\n"
        "  # only what was allowed:\n"
        "  securekube audit query audit.log --user alice --decision allow -o jsonl | "
        "securekube audit rbac-gen - --user alice")
    who = parser.add_mutually_exclusive_group(required=True)
    who.add_argument("--user", metavar="USER", help="user name, as in the audit events")
    who.add_argument("--serviceaccount", metavar="NS:NAME", help="ServiceAccount as NAMESPACE:NAME")
    parser.add_argument("--name", metavar="NAME",
                        help="name of the generated Roles, ClusterRole and bindings (default rbac-gen:<user name>)")
    parser.set_defaults(run=run_rbac_gen)


def _register_report(subcommands: argparse._SubParsersAction) -> None:
    parser = _command(
        subcommands, "report", "a self-contained HTML page for a review meeting",
        "Write one HTML page (no scripts, no network) with activity over time, denials, sensitive actions, top "
        "identities and sources, as charts and tables.",
        "example:\n  securekube audit report audit.log* --html review.html")
    parser.add_argument("--html", required=True, metavar="OUT.html", help="file to write the page to")
    _add_window(parser)
    parser.add_argument("--top", type=_positive_int, default=TOP, metavar="N", help=f"rows per ranking (default {TOP})")
    parser.set_defaults(run=run_report)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


# ----------------------------------------------------------------------------- running


def _reviewing(run: Callable[[argparse.Namespace, ReadProblems], int]) -> Callable[[argparse.Namespace], int]:
    """Runs a review command: user mistakes as one error line, read problems reported on stderr."""

    @functools.wraps(run)
    def wrapper(args: argparse.Namespace) -> int:
        problems = ReadProblems()
        try:
            code = run(args, problems)
        except _USER_ERRORS as exc:
            report_problems(problems, sys.stderr)  # e.g. "no requests" because every line was unreadable
            print(f"securekube: error: {exc}", file=sys.stderr)
            return EXIT_ERROR
        except BrokenPipeError:
            # The reader of our output (head, less) has gone: stop quietly, as other Unix tools do.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            return 0
        report_problems(problems, sys.stderr)
        return code

    return wrapper


def report_problems(problems: ReadProblems, err: TextIO) -> None:
    if not problems:
        return
    skipped = problems.skipped
    if skipped:
        err.write(f"securekube: warning: {skipped} input line(s) or file part(s) could not be read "
                  f"and were left out:\n")
    else:
        notices = sum(problems.counts[k] for k in NOTICE_KINDS)
        err.write(f"securekube: note: {notices} event(s) read with a caveat:\n")
    for line in problems.report_lines():
        err.write(f"  {line}\n")


def _window(args: argparse.Namespace) -> tuple[datetime | None, datetime | None]:
    now = datetime.now(timezone.utc)  # one "now" for both bounds: --since 2h --until 1h is exactly one hour
    since = parse_bound(args.since, now) if args.since else None
    until = parse_bound(args.until, now) if args.until else None
    return since, until


def _values(options: Iterable[str]) -> tuple[str, ...]:
    """Repeated options and comma-separated values, flattened."""
    return tuple(value.strip() for option in options for value in option.split(","))


@_reviewing
def run_query(args: argparse.Namespace, problems: ReadProblems) -> int:
    since, until = _window(args)
    query = QueryFilter(
        users=_values(args.user), groups=_values(args.group), verbs=_values(args.verb),
        resources=tuple(ResourceSpec.parse(r) for r in _values(args.resource)),
        subresources=_values(args.subresource), namespaces=_values(args.namespace), names=_values(args.name),
        since=since, until=until, codes=tuple(CodeRange.parse(c) for c in _values(args.code)),
        decisions=_values(args.decision), source_ips=_values(args.source_ip), user_agent=args.user_agent)
    records = select(args.files, query, problems, all_stages=args.all_stages)
    if args.output == "jsonl":
        write_lines(sys.stdout.buffer, records)
        sys.stdout.buffer.flush()
    elif args.output == "json":
        write_event_list(sys.stdout, records)
    else:
        written = write_table(sys.stdout, ("TIME", "USER", "VERB", "RESOURCE", "NAMESPACE", "NAME", "CODE", "DECISION"),
                              _query_rows(records))
        if not written:
            print("No matching requests.", file=sys.stderr)
    sys.stdout.flush()
    return 0


def _query_rows(records: Iterable[LogLine]) -> Iterator[tuple[object, ...]]:
    for record in records:
        event = record.event
        code = ef.code(event)
        yield (ef.timestamp_text(event), ef.user_label(event), ef.verb(event), ef.resource_label(event),
               ef.namespace(event) or "-", ef.name(event) or "-", code if code is not None else "-",
               ef.decision(event) or "-")


def _requests(args: argparse.Namespace, problems: ReadProblems) -> Iterator[LogLine]:
    """Every request of the inputs (one event each) inside the --since/--until window."""
    since, until = _window(args)
    return requests(args.files, problems, matches=QueryFilter(since=since, until=until).predicate())


def _summary(args: argparse.Namespace, problems: ReadProblems) -> Summary:
    return summarize((record.event for record in _requests(args, problems)), args.top)


@_reviewing
def run_summary(args: argparse.Namespace, problems: ReadProblems) -> int:
    summary = _summary(args, problems)
    if args.output == "json":
        json_dump(sys.stdout, {**summary.as_dict(), "problems": problems.as_dict()})
    else:
        write_summary(sys.stdout, summary, args.top)
    return 0


@_reviewing
def run_timeline(args: argparse.Namespace, problems: ReadProblems) -> int:
    since, until = _window(args)
    target = ObjectTarget.parse(args.object) if args.object else None
    entries = timeline(args.files, problems, target=target, user=args.user, since=since, until=until)
    if args.output == "json":
        json_dump(sys.stdout, [_entry_dict(e) for e in entries])
        return 0
    if not entries:
        print("No matching requests.", file=sys.stderr)
        return 0
    write_table(sys.stdout, ("TIME", "USER", "VERB", "OBJECT", "CODE", "DECISION", "SOURCE IP"),
                [(e.time, e.user, e.verb, e.object, e.code if e.code is not None else "-", e.decision or "-",
                  e.source_ip or "-") for e in entries])
    return 0


def _entry_dict(entry: TimelineEntry) -> dict[str, object]:
    return {"time": entry.time, "user": entry.user, "verb": entry.verb, "object": entry.object, "code": entry.code,
            "decision": entry.decision, "sourceIP": entry.source_ip, "userAgent": entry.user_agent}


@_reviewing
def run_rbac_gen(args: argparse.Namespace, problems: ReadProblems) -> int:
    identity = Identity.user(args.user) if args.user else Identity.service_account(args.serviceaccount)
    events = (r.event for r in requests(args.files, problems, _identity_filter(identity)))
    access = collect(events, identity)
    if access.empty:
        raise QueryError(f"no requests by {identity.username} in the input; nothing to generate")
    sys.stdout.write(to_yaml(rbac_objects(access, identity, args.name), access, identity))
    return 0


def _identity_filter(identity: Identity) -> LineFilter | None:
    return QueryFilter(users=(identity.username,)).line_filter()


@_reviewing
def run_report(args: argparse.Namespace, problems: ReadProblems) -> int:
    out = Path(args.html)
    if out.is_dir():
        raise InputError(f"{out} is a directory; give a file name for the report, e.g. {out / 'audit-review.html'}")
    summary = _summary(args, problems)
    page = render_report(summary, problems, [Path(f).name if f != "-" else "stdin" for f in args.files])
    try:
        out.write_text(page, encoding="utf-8")
    except OSError as exc:
        raise InputError(f"cannot write {out}: {exc.strerror or exc}") from None
    print(f"wrote {out} ({summary.requests} requests)")
    return 0
