"""Summaries and markdown for the API server benchmark: medians over rounds, paired ratios, targets.

Every figure is a median over rounds. A ratio between the two configurations is the median of
the per-round ratios: both runs of a round are adjacent in time, so pairing them cancels most of
the drift of a noisy machine, which a ratio of two medians would not.
"""
from __future__ import annotations

import math
import os
import platform
import statistics
import subprocess
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from loadgen import LoadResult

BEGIN_MARKER = "<!-- bench/apiserver.py: results begin (generated; edits inside are overwritten) -->"
END_MARKER = "<!-- bench/apiserver.py: results end -->"

DOC_INTRO = """\
# Benchmarks

Figures measured on this project's machines, with the command that produced them. Benchmarks are
scripts under `bench/`, not timed tests: each reports medians over several rounds and compares
configurations side by side in one run, because these machines are noisy.

## API server (`bench/apiserver.py`)

Two real API servers (`securekube up`) run at the same time, each in its own process with its own
data directory: **on** is the default (every control on, secrets encrypted at rest with
secretbox), **off** is the same except that the EncryptionConfiguration's only provider is
`identity: {}`. Clients each hold one keep-alive mTLS connection with the admin certificate.
Rounds alternate the two servers (on/off, then off/on, ...).

Run it with:

    .venv/bin/python bench/apiserver.py --out docs/benchmarks.md   # full run, about 8 minutes
    .venv/bin/python bench/apiserver.py --quick                    # smoke run, under a minute

"""


@dataclass(frozen=True)
class Scenario:
    """One workload at one concurrency: GET of one object, or CREATE with generateName."""

    verb: str
    resource: str
    clients: int

    @property
    def operation(self) -> str:
        return f"{self.verb} {self.resource}"

    @property
    def with_clients(self) -> str:
        return f"{self.operation}, {self.clients} client{'' if self.clients == 1 else 's'}"


@dataclass(frozen=True)
class Summary:
    """One scenario against one configuration, over all rounds."""

    requests_per_second: float
    rps_min: float
    rps_max: float
    p50_ms: float
    p99_ms: float
    errors: dict[str, int]
    reconnects: int
    server_cpu: float
    loadgen_cpu: float
    other_cpu: float
    steal_cpu: float

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())


def percentile(sorted_values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile of an ascending sequence; NaN when empty."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(fraction * len(sorted_values)))
    return sorted_values[rank - 1]


def _median(values: Sequence[float]) -> float:
    finite = [v for v in values if not math.isnan(v)]
    return statistics.median(finite) if finite else math.nan


def summarize(runs: Sequence[LoadResult]) -> Summary:
    errors: Counter[str] = Counter()
    for run in runs:
        errors.update(run.errors)
    rps = [r.requests_per_second for r in runs]
    return Summary(
        requests_per_second=_median(rps), rps_min=min(rps), rps_max=max(rps),
        p50_ms=_median([percentile(r.latencies, 0.50) * 1000 for r in runs]),
        p99_ms=_median([percentile(r.latencies, 0.99) * 1000 for r in runs]),
        errors=dict(errors), reconnects=sum(r.reconnects for r in runs),
        server_cpu=_median([r.server_cpu for r in runs]), loadgen_cpu=_median([r.loadgen_cpu for r in runs]),
        other_cpu=_median([r.other_cpu for r in runs]), steal_cpu=_median([r.steal_cpu for r in runs]))


def paired_ratio(numerators: Sequence[float], denominators: Sequence[float]) -> float:
    """Median of per-round ratios (round i of one configuration over round i of the other)."""
    return _median([n / d if d else math.nan for n, d in zip(numerators, denominators, strict=True)])


@dataclass(frozen=True)
class Comparison:
    """One scenario, both configurations, and their paired ratios (on / off)."""

    scenario: Scenario
    on: Summary
    off: Summary
    rps_ratio: float
    p50_ratio: float


def compare(scenario: Scenario, on_runs: Sequence[LoadResult], off_runs: Sequence[LoadResult]) -> Comparison:
    return Comparison(
        scenario, summarize(on_runs), summarize(off_runs),
        rps_ratio=paired_ratio([r.requests_per_second for r in on_runs], [r.requests_per_second for r in off_runs]),
        p50_ratio=paired_ratio([percentile(r.latencies, 0.5) for r in on_runs],
                               [percentile(r.latencies, 0.5) for r in off_runs]))


# -- targets from the issue ---------------------------------------------------------------------
@dataclass(frozen=True)
class TargetCheck:
    target: str
    measured: str
    met: bool


def check_targets(comparisons: Sequence[Comparison]) -> list[TargetCheck]:
    """The issue's initial targets, judged on the "on" configuration (every control on)."""
    checks = []
    by_key = {(c.scenario.verb, c.scenario.resource, c.scenario.clients): c for c in comparisons}
    for verb, floor in (("GET", 1500.0), ("CREATE", 500.0)):
        for resource in ("configmaps", "secrets"):
            c = by_key.get((verb, resource, 16))
            if c is not None:
                checks.append(TargetCheck(f"{c.scenario.with_clients}: >= {floor:,.0f} req/s",
                                          f"{c.on.requests_per_second:,.0f} req/s",
                                          c.on.requests_per_second >= floor))
    for c in comparisons:
        if c.scenario.clients == 64:
            checks.append(TargetCheck(f"{c.scenario.with_clients}: p99 < 100 ms",
                                      f"{c.on.p99_ms:.1f} ms", c.on.p99_ms < 100.0))
    for c in comparisons:
        if c.scenario.resource == "secrets":
            overhead = 1.0 - c.rps_ratio
            checks.append(TargetCheck(f"{c.scenario.with_clients}: encryption overhead <= 10 %", f"{overhead * 100:+.1f} %", overhead <= 0.10))
    return checks


# -- markdown -----------------------------------------------------------------------------------
def _ms(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.1f}"


def _rps(s: Summary) -> str:
    return f"{s.requests_per_second:,.0f} ({s.rps_min:,.0f}–{s.rps_max:,.0f})"


def _errors(s: Summary) -> str:
    if not s.errors:
        return "0"
    return f"**{s.error_count}** (" + ", ".join(f"{k}: {v}" for k, v in sorted(s.errors.items())) + ")"


def results_table(comparisons: Sequence[Comparison]) -> str:
    rows = ["| operation | clients | on: req/s (min–max) | on: p50 ms | on: p99 ms | off: req/s (min–max) "
            "| off: p50 ms | off: p99 ms | on/off req/s | on/off p50 | errors on / off |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for c in comparisons:
        rows.append(f"| {c.scenario.operation} | {c.scenario.clients} | {_rps(c.on)} | {_ms(c.on.p50_ms)} "
                    f"| {_ms(c.on.p99_ms)} | {_rps(c.off)} | {_ms(c.off.p50_ms)} | {_ms(c.off.p99_ms)} "
                    f"| {c.rps_ratio:.2f} | {c.p50_ratio:.2f} | {_errors(c.on)} / {_errors(c.off)} |")
    return "\n".join(rows)


def cpu_table(comparisons: Sequence[Comparison]) -> str:
    rows = ["| operation | clients | server on | server off | load generator (on / off run) "
            "| other processes (on / off run) | hypervisor steal (on / off run) |",
            "|---|---:|---:|---:|---:|---:|---:|"]
    for c in comparisons:
        rows.append(f"| {c.scenario.operation} | {c.scenario.clients} | {c.on.server_cpu * 100:.0f} % "
                    f"| {c.off.server_cpu * 100:.0f} % | {c.on.loadgen_cpu * 100:.0f} / {c.off.loadgen_cpu * 100:.0f} % "
                    f"| {c.on.other_cpu * 100:.0f} / {c.off.other_cpu * 100:.0f} % "
                    f"| {c.on.steal_cpu * 100:.0f} / {c.off.steal_cpu * 100:.0f} % |")
    return "\n".join(rows)


def targets_table(checks: Sequence[TargetCheck]) -> str:
    rows = ["| target | measured | met |", "|---|---:|---|"]
    rows += [f"| {t.target} | {t.measured} | {'yes' if t.met else '**no**'} |" for t in checks]
    return "\n".join(rows)


# -- the machine --------------------------------------------------------------------------------
def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _filesystem_of(path: Path) -> str:
    """The filesystem type of the mount holding `path` (longest matching mount point)."""
    best, fs_type = "", "unknown"
    try:
        with open("/proc/mounts", encoding="utf-8") as mounts:
            for line in mounts:
                _, mount_point, kind = line.split()[:3]
                if str(path).startswith(mount_point) and len(mount_point) > len(best):
                    best, fs_type = mount_point, kind
    except OSError:
        pass
    return fs_type


def source_revision(repo: Path) -> str:
    try:
        out = subprocess.run(["git", "-C", str(repo), "describe", "--always", "--dirty"], capture_output=True,
                             text=True, timeout=10, check=True)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip()


def machine_lines(data_root: Path) -> list[str]:
    return [f"- CPU: {os.cpu_count()} × {_cpu_model()} (`nproc` = {len(os.sched_getaffinity(0))})",
            f"- Python {platform.python_version()} ({platform.python_implementation()}), "
            f"Linux {platform.release()}",
            f"- data directories under `{data_root}` on {_filesystem_of(data_root)} "
            "(SQLite in WAL mode with synchronous=FULL: every write is fsynced)"]


# -- the document -------------------------------------------------------------------------------
def results_section(comparisons: Sequence[Comparison], checks: Sequence[TargetCheck], *, command: str,
                    started: str, revision: str, machine: Sequence[str], settings: str, loadgen: str,
                    server: str) -> str:
    notes = []
    reconnects = [(c, label, s) for c in comparisons for label, s in (("on", c.on), ("off", c.off)) if s.reconnects]
    if reconnects:
        notes.append("- Keep-alive was broken (reconnects) in: " + ", ".join(
            f"{c.scenario.operation} ×{c.scenario.clients} {label}: {s.reconnects}" for c, label, s in reconnects))
    if any(c.on.error_count or c.off.error_count for c in comparisons):
        notes.append("- **Some requests failed** (non-2xx or transport errors): see the last column.")
    return "\n".join([
        "### Results", "",
        f"Command: `{command}` — started {started}, source `{revision}`.", "",
        *machine, f"- servers: `{server}`", f"- load generator: {loadgen}", f"- schedule: {settings}", "",
        "req/s counts 2xx responses only; latencies are from writing the request to reading the whole "
        "response; each figure is the median over rounds (min–max of req/s in brackets); ratios are the "
        "median of per-round on/off ratios. Config maps are stored unencrypted by both servers, so their "
        "on/off ratio shows the noise level of the comparison.", "",
        results_table(comparisons), "",
        *notes, *([""] if notes else []),
        f"CPU during the measurement window (median; 100 % = one core, the machine has {os.cpu_count()}). "
        "\"Other processes\" is everything else on the machine (work sharing it during the run, and "
        "kernel time not charged to a process); \"hypervisor steal\" is time this virtual machine's CPUs "
        "were given to other guests. Both depress the absolute figures, not the on/off ratios, whose runs "
        "are adjacent.", "",
        cpu_table(comparisons), "",
        "Initial targets from the issue, on the **on** configuration:", "",
        targets_table(checks), ""])


def write_document(path: Path, section: str) -> None:
    """Puts the generated section between the markers; creates the file with its intro if missing.

    Text outside the markers (the intro, hand-written analysis) is kept as it is.
    """
    block = f"{BEGIN_MARKER}\n{section}\n{END_MARKER}\n"
    text = path.read_text(encoding="utf-8") if path.exists() else DOC_INTRO
    begin, end = text.find(BEGIN_MARKER), text.find(END_MARKER)
    if begin >= 0 and end > begin:
        rest = text[end + len(END_MARKER):].lstrip("\n")
        text = text[:begin] + block + ("\n" + rest if rest else "")
    else:
        text = text.rstrip("\n") + "\n\n" + block
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
