"""The HTML report: self-contained, every log value escaped, charts with sensible time buckets."""
from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

from securekube.audit.review.problems import ReadProblems
from securekube.audit.review.report import activity_columns, bucket_size, render_report
from securekube.audit.review.stages import requests
from securekube.audit.review.summary import ActivityBucket, summarize
from securekube.audit.review.svg_charts import nice_ceiling, short_label

T0 = datetime(2024, 5, 1, tzinfo=timezone.utc)


def page_for(*paths) -> str:
    problems = ReadProblems()
    summary = summarize(r.event for r in requests([str(p) for p in paths], problems))
    return render_report(summary, problems, [p.name for p in paths], generated=T0)


def test_page_is_self_contained(fixtures):
    page = page_for(fixtures / "upstream-kube-apiserver.log")
    assert page.startswith("<!doctype html>") and page.rstrip().endswith("</html>")
    assert "<script" not in page.lower()
    assert not re.search(r"""(src|href)\s*=|@import|url\(""", page)  # nothing fetched from anywhere
    assert page.count("<svg") >= 4  # activity, active and denied identities, sources


def test_page_shows_the_review_sections(fixtures):
    page = page_for(fixtures / "upstream-kube-apiserver.log")
    for heading in ("Activity over time", "Most active identities", "Most denied identities", "Denials (2)",
                    "Sensitive actions", "Secret reads (2)", "Exec, attach and port-forward (1)",
                    "RBAC and policy changes (1)", "Failed authentication (1)", "Requests by source IP"):
        assert heading.upper() in page.upper(), heading
    assert "ci-admin" in page and "203.0.113.7" in page


def test_values_from_the_log_are_escaped(make_event, write_log):
    hostile = "<script>alert(1)</script>"
    path = write_log("audit.log", make_event("x", user=hostile, code=403, decision="forbid",
                                             agent='"><img onerror=alert(1)>'),
                     make_event("y", user="", code=401, decision=None, agent="<b>agent</b>"))
    page = page_for(path)
    assert "<script" not in page and "<img" not in page and "<b>agent" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_input_problems_are_listed(fixtures):
    page = page_for(fixtures / "malformed.log")
    assert "Input problems (8)" in page and "malformed.log:2" in page


def test_bucket_size_grows_with_the_time_span():
    assert bucket_size(T0, T0 + timedelta(minutes=90)) == timedelta(minutes=1)
    assert bucket_size(T0, T0 + timedelta(hours=6)) == timedelta(minutes=5)
    assert bucket_size(T0, T0 + timedelta(hours=24)) == timedelta(minutes=15)
    assert bucket_size(T0, T0 + timedelta(days=4)) == timedelta(hours=1)
    assert bucket_size(T0, T0 + timedelta(days=365)) == timedelta(days=7)


def test_quiet_periods_are_empty_bars_not_missing_ones():
    activity = [ActivityBucket(T0, 3, 1, 0, 0), ActivityBucket(T0 + timedelta(minutes=3), 2, 0, 1, 0)]
    columns = activity_columns(activity)
    assert columns.labels == ("00:00", "00:01", "00:02", "00:03") and columns.bucket == timedelta(minutes=1)
    assert columns.values == ((3, 1, 0, 0), (0, 0, 0, 0), (0, 0, 0, 0), (2, 0, 1, 0))


def test_axis_maximum_is_a_round_number():
    assert [nice_ceiling(v) for v in (0, 7, 10, 11, 230, 4100)] == [1, 10, 10, 20, 250, 5000]


def test_long_labels_keep_their_end():
    shown = short_label("system:serviceaccount:kube-system:replicaset-controller", 28)
    assert len(shown) == 28 and shown.startswith("…") and shown.endswith(":replicaset-controller")
    assert short_label("system:serviceaccount:ci:deployer", 28) == "sa:ci:deployer"
    assert short_label("alice", 28) == "alice"
