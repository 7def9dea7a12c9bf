"""The summary as terminal text: one titled section per question, each a small aligned table."""
from __future__ import annotations

from collections.abc import Sequence
from typing import TextIO

from securekube.audit.review.output import safe_text, write_table
from securekube.audit.review.summary import TOP, RequestRow, Summary


def write_summary(out: TextIO, summary: Summary, rows: int = TOP) -> None:
    """The summary; the lists of single requests (exec, policy changes) show their first `rows`."""
    span = f" from {summary.first} to {summary.last}" if summary.first else ""
    out.write(f"{summary.requests} requests by {summary.identities} identities{span}\n")
    _section(out, "Top users", ("USER", "REQUESTS", "DENIED"),
             [(u.name, u.requests, u.denied) for u in summary.users])
    _section(out, "Top service accounts", ("SERVICE ACCOUNT", "REQUESTS", "DENIED"),
             [(u.name, u.requests, u.denied) for u in summary.service_accounts])
    _section(out, f"Denials ({summary.denials_total})", ("USER", "VERB", "RESOURCE", "NAMESPACE", "COUNT"),
             [(d.user, d.verb, d.resource, d.namespace or "-", d.count) for d in summary.denials])
    _section(out, f"Secret reads ({summary.secret_reads_total})", ("USER", "NAMESPACE", "VERBS", "READS", "DENIED"),
             [(r.user, r.namespace or "(all)", ",".join(r.verbs), r.requests, r.denied) for r in summary.secret_reads])
    _requests(out, f"Exec/attach/port-forward ({summary.exec_attach_total})", summary.exec_attach[:rows],
              summary.exec_attach_total)
    _requests(out, f"RBAC and policy changes ({summary.policy_changes_total})", summary.policy_changes[:rows],
              summary.policy_changes_total)
    _section(out, f"Failed authentication ({summary.failed_authentication_total})",
             ("SOURCE IP", "COUNT", "USER AGENTS"),
             [(f.ip, f.count, ", ".join(safe_text(a) or "-" for a in f.user_agents))
              for f in summary.failed_authentication])
    _section(out, "Requests by source IP", ("SOURCE IP", "REQUESTS", "USERS", "FAILED AUTHN"),
             [(s.ip, s.requests, s.users, s.failed_authentication) for s in summary.source_ips])


def _section(out: TextIO, title: str, headers: Sequence[str], rows: list[Sequence[object]]) -> None:
    out.write(f"\n{title}\n")
    if rows:
        write_table(out, headers, rows)
    else:
        out.write("  none\n")


def _requests(out: TextIO, title: str, rows: Sequence[RequestRow], total: int) -> None:
    _section(out, title, ("TIME", "USER", "VERB", "RESOURCE", "NAMESPACE", "NAME", "CODE"),
             [(r.time, r.user, r.verb, r.resource, r.namespace or "-", r.name or "-", r.code if r.code else "-")
              for r in rows])
    if total > len(rows):
        out.write(f"  ... and {total - len(rows)} more (list them with `securekube audit query`)\n")
