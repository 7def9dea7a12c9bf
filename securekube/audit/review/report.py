"""The HTML review report: one self-contained page (inline CSS and SVG, no script, no network).

Made for a review meeting: headline numbers first, then activity over time, who was most active
and most refused, the sensitive actions one by one, failed authentication and sources. Every
value from the log is HTML-escaped: user names and agents are chosen by whoever sent a request.
"""
from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from html import escape

from securekube.audit.review.event_fields import sortable_time
from securekube.audit.review.problems import ReadProblems
from securekube.audit.review.summary import ActivityBucket, IdentityCount, RequestRow, Summary
from securekube.audit.review.svg_charts import Series, horizontal_bars, legend, stacked_columns

LISTED_ROWS = 25  # single requests listed per sensitive-action table; the count above it is complete
MAX_COLUMNS = 120  # bars in the activity chart; the bucket size grows until they fit
BUCKET_SIZES = (timedelta(minutes=1), timedelta(minutes=5), timedelta(minutes=15), timedelta(hours=1),
                timedelta(hours=6), timedelta(days=1), timedelta(days=7))
OUTCOMES = (Series("allowed", "#4e79a7"), Series("denied", "#e15759"), Series("failed authentication", "#f28e2b"),
            Series("server error", "#9c9c9c"))
IDENTITY_SERIES = (Series("allowed", "#4e79a7"), Series("denied", "#e15759"))

STYLE = """
:root { --ink:#1f2933; --muted:#61707d; --line:#e3e8ee; --bg:#f6f8fa; --card:#fff; --accent:#4e79a7; }
* { box-sizing: border-box; }
body { margin:0; font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;
       color:var(--ink); background:var(--bg); }
main { max-width:1180px; margin:0 auto; padding:28px 28px 48px; }
header h1 { margin:0 0 4px; font-size:26px; }
header p { margin:0; color:var(--muted); }
h2 { font-size:17px; margin:0 0 12px; }
h3 { font-size:14px; margin:18px 0 8px; color:var(--muted); text-transform:uppercase; letter-spacing:.04em; }
section, .panel { background:var(--card); border:1px solid var(--line); border-radius:10px; padding:18px 20px;
                  margin-top:18px; }
.cards { display:grid; grid-template-columns:repeat(auto-fit,minmax(140px,1fr)); gap:12px; margin-top:22px; }
.card { background:var(--card); border:1px solid var(--line); border-radius:10px; padding:14px 16px; }
.card b { display:block; font-size:26px; font-variant-numeric:tabular-nums; }
.card span { color:var(--muted); font-size:13px; }
.card.alert b { color:#c4383a; }
.grid2 { display:grid; grid-template-columns:1fr 1fr; gap:18px; }
.grid2 > .panel { margin-top:18px; }
@media (max-width:900px) { .grid2 { grid-template-columns:1fr; } }
.chart { width:100%; height:auto; display:block; }
.chart .grid { stroke:var(--line); }
.chart text { font-size:12px; fill:var(--muted); }
.chart .label { fill:var(--ink); }
.chart .value { fill:var(--ink); font-variant-numeric:tabular-nums; }
.legend { display:flex; gap:18px; flex-wrap:wrap; margin-bottom:8px; color:var(--muted); font-size:13px; }
.legend i { display:inline-block; width:11px; height:11px; border-radius:2px; margin-right:6px; vertical-align:-1px; }
table { width:100%; border-collapse:collapse; font-size:13.5px; }
th { text-align:left; color:var(--muted); font-weight:600; border-bottom:2px solid var(--line); padding:6px 8px; }
td { border-bottom:1px solid var(--line); padding:6px 8px; vertical-align:top; overflow-wrap:anywhere; }
td.n, th.n { text-align:right; font-variant-numeric:tabular-nums; white-space:nowrap; }
td.t { white-space:nowrap; color:var(--muted); }
td.k { white-space:nowrap; }
.code-4xx { color:#c4383a; font-weight:600; } .code-5xx { color:#7a7a7a; font-weight:600; }
.none { color:var(--muted); font-style:italic; }
.more { color:var(--muted); font-size:13px; margin-top:6px; }
.problems li { font-family:ui-monospace,SFMono-Regular,Menlo,monospace; font-size:13px; }
footer { color:var(--muted); font-size:12.5px; margin-top:22px; text-align:center; }
"""


def bucket_size(first: datetime, last: datetime) -> timedelta:
    """The smallest bucket (1 min, 5 min, ... 1 week) that keeps the chart within MAX_COLUMNS bars."""
    span = last - first
    for size in BUCKET_SIZES:
        if span / size < MAX_COLUMNS:
            return size
    return BUCKET_SIZES[-1]


@dataclass(frozen=True)
class ActivityColumns:
    """The activity chart's data: one label and (allowed, denied, failed authn, 5xx) per bucket."""

    labels: tuple[str, ...]
    values: tuple[tuple[int, int, int, int], ...]
    bucket: timedelta


def activity_columns(activity: Sequence[ActivityBucket]) -> ActivityColumns:
    """Per-minute counts regrouped into buckets, empty buckets included (a gap in activity is news)."""
    if not activity:
        return ActivityColumns((), (), BUCKET_SIZES[0])
    first, last = activity[0].start, activity[-1].start
    size = bucket_size(first, last)
    epoch = datetime(1970, 1, 5, tzinfo=timezone.utc)  # a Monday: weekly buckets start on Mondays
    start = epoch + ((first - epoch) // size) * size
    count = int((last - start) // size) + 1
    sums = [[0, 0, 0, 0] for _ in range(count)]
    for bucket in activity:
        row = sums[int((bucket.start - start) // size)]
        for i, value in enumerate((bucket.allowed, bucket.denied, bucket.failed_authentication, bucket.errors)):
            row[i] += value
    if size >= timedelta(days=1):
        fmt = "%Y-%m-%d"
    else:
        fmt = "%H:%M" if last - first < timedelta(days=1) else "%m-%d %H:%M"
    labels = tuple((start + i * size).strftime(fmt) for i in range(count))
    return ActivityColumns(labels, tuple((a, d, f, e) for a, d, f, e in sums), size)


def render_report(summary: Summary, problems: ReadProblems, sources: Sequence[str],
                  generated: datetime | None = None) -> str:
    generated = generated or datetime.now(timezone.utc)
    span = f"{escape(_when(summary.first))} → {escape(_when(summary.last))} UTC" if summary.first else "no timestamps"
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>Audit review: {escape(', '.join(sources))}</title>",
        f"<style>{STYLE}</style></head><body><main>",
        "<header><h1>Audit review</h1>",
        f"<p>{summary.requests:,} requests · {span} · {escape(', '.join(sources))}</p></header>",
        _cards(summary),
        _activity(summary),
        '<div class="grid2">',
        _panel("Most active identities", _identity_bars(_most_active(summary))),
        _panel("Most denied identities", _denied_bars(summary.most_denied)),
        "</div>",
        _panel(f"Denials ({summary.denials_total:,})", _table(
            ("User", "Verb", "Resource", "Namespace", "Count"),
            [(d.user, d.verb, d.resource, d.namespace or "—", d.count) for d in summary.denials],
            numeric={4}, nowrap={1}), tag="section"),
        _sensitive(summary),
        '<div class="grid2">',
        _panel(f"Failed authentication ({summary.failed_authentication_total:,})", _failed_authn(summary)),
        _panel("Requests by source IP", _sources(summary)),
        "</div>",
        _problems(problems),
        f"<footer>Generated by securekube audit report on {generated:%Y-%m-%d %H:%M} UTC. Times are UTC.</footer>",
        "</main></body></html>",
    ]
    return "\n".join(parts) + "\n"


def _cards(summary: Summary) -> str:
    cards = [("Requests", summary.requests, False), ("Identities", summary.identities, False),
             ("Denials", summary.denials_total, summary.denials_total > 0),
             ("Secret reads", summary.secret_reads_total, False),
             ("Exec / attach", summary.exec_attach_total, summary.exec_attach_total > 0),
             ("RBAC & policy changes", summary.policy_changes_total, summary.policy_changes_total > 0),
             ("Failed authentication", summary.failed_authentication_total, summary.failed_authentication_total > 0)]
    items = "".join(f'<div class="card{" alert" if alert else ""}"><b>{value:,}</b><span>{label}</span></div>'
                    for label, value, alert in cards)
    return f'<div class="cards">{items}</div>'


def _activity(summary: Summary) -> str:
    if not summary.activity:
        return _panel("Activity over time", '<p class="none">No timestamps in the input.</p>', tag="section")
    columns = activity_columns(summary.activity)
    minutes = int(columns.bucket.total_seconds() // 60)
    unit = f"{minutes} min" if minutes < 60 else (f"{minutes // 60} h" if minutes < 1440 else f"{minutes // 1440} d")
    note = f'<p class="more">Requests per {unit} (UTC), by outcome.</p>'
    chart = stacked_columns(columns.labels, columns.values, OUTCOMES)
    return _panel("Activity over time", legend(OUTCOMES) + chart + note, tag="section")


def _most_active(summary: Summary) -> list[IdentityCount]:
    everyone = sorted((*summary.users, *summary.service_accounts), key=lambda c: (-c.requests, c.name))
    return everyone[:len(summary.users) or 10]


def _identity_bars(counts: Sequence[IdentityCount]) -> str:
    if not counts:
        return '<p class="none">No requests.</p>'
    rows = [(c.name, (c.requests - c.denied, c.denied)) for c in counts]
    return legend(IDENTITY_SERIES) + horizontal_bars(rows, IDENTITY_SERIES)


def _denied_bars(counts: Sequence[IdentityCount]) -> str:
    if not counts:
        return '<p class="none">No denials.</p>'
    series = (IDENTITY_SERIES[1],)
    return legend(series) + horizontal_bars([(c.name, (c.denied,)) for c in counts], series)


def _sensitive(summary: Summary) -> str:
    secret_rows = [(r.user, r.namespace or "(all namespaces)", ", ".join(r.verbs), r.requests, r.denied)
                   for r in summary.secret_reads]
    body = [
        f"<h3>Secret reads ({summary.secret_reads_total:,})</h3>",
        _table(("User", "Namespace", "Verbs", "Reads", "Denied"), secret_rows, numeric={3, 4}),
        f"<h3>Exec, attach and port-forward ({summary.exec_attach_total:,})</h3>",
        _request_table(summary.exec_attach, summary.exec_attach_total),
        f"<h3>RBAC and policy changes ({summary.policy_changes_total:,})</h3>",
        _request_table(summary.policy_changes, summary.policy_changes_total),
    ]
    return _panel("Sensitive actions", "".join(body), tag="section")


def _request_table(rows: Sequence[RequestRow], total: int) -> str:
    rows = rows[:LISTED_ROWS]
    table = _table(("Time", "User", "Verb", "Resource", "Namespace / name", "Code"),
                   [(_when(r.time), r.user, r.verb, r.resource,
                     "/".join(p for p in (r.namespace, r.name) if p) or "—",
                     r.code if r.code is not None else "—") for r in rows], nowrap={2}, time_column=0)
    if total > len(rows):
        table += f'<p class="more">… and {total - len(rows):,} more (list them with <code>audit query</code>).</p>'
    return table


def _when(text: str) -> str:
    """A timestamp as a person reads it in a table: `2024-05-01 10:02:38` (UTC)."""
    sortable = sortable_time(text)
    return f"{sortable[:10]} {sortable[11:19]}" if sortable else text


def _failed_authn(summary: Summary) -> str:
    return _table(("Source IP", "Count", "User agents"),
                  [(f.ip, f.count, ", ".join(a or "—" for a in f.user_agents))
                   for f in summary.failed_authentication],
                  numeric={1})


def _sources(summary: Summary) -> str:
    if not summary.source_ips:
        return '<p class="none">No requests.</p>'
    rows = [(s.ip, (s.requests - s.failed_authentication, s.failed_authentication)) for s in summary.source_ips]
    series = (Series("authenticated", "#4e79a7"), Series("failed authentication", "#f28e2b"))
    return legend(series) + horizontal_bars(rows, series)


def _problems(problems: ReadProblems) -> str:
    if not problems:
        return ""
    items = "".join(f"<li>{escape(line.strip())}</li>" for line in problems.report_lines())
    return _panel(f"Input problems ({problems.total:,})",
                  '<p>Lines that could not be read are left out of everything above.</p>'
                  f'<ul class="problems">{items}</ul>',
                  tag="section")


def _panel(title: str, body: str, tag: str = "div") -> str:
    css = "" if tag == "section" else ' class="panel"'
    return f"<{tag}{css}><h2>{escape(title)}</h2>{body}</{tag}>"


def _table(headers: Sequence[str], rows: Sequence[Sequence[object]], numeric: Collection[int] = (),
           nowrap: Collection[int] = (), time_column: int | None = None) -> str:
    """A table; `numeric` columns right-aligned with thousands separators, `nowrap` ones kept on one line."""
    if not rows:
        return '<p class="none">None.</p>'
    head = "".join(f'<th{" class=n" if i in numeric else ""}>{escape(h)}</th>' for i, h in enumerate(headers))
    body = []
    for row in rows:
        cells = []
        for i, value in enumerate(row):
            classes = []
            if headers[i] == "Code":
                text = str(value)
                classes.append("n")
                if isinstance(value, int) and value >= 400:
                    classes.append("code-5xx" if value >= 500 else "code-4xx")
            elif i in numeric:
                text = f"{value:,}" if isinstance(value, int) else str(value)
                classes.append("n")
            else:
                text = str(value)
            if i == time_column:
                classes.append("t")
            elif i in nowrap:
                classes.append("k")
            css = f' class="{" ".join(classes)}"' if classes else ""
            cells.append(f"<td{css}>{escape(text)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
