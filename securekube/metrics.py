"""Metrics in the Prometheus text exposition format (version 0.0.4), as kube-apiserver serves /metrics."""
from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_KINDS = frozenset({"counter", "gauge"})


@dataclass(frozen=True)
class Metric:
    """One metric family: its name, type, help text and samples (labels, value)."""

    name: str
    kind: str
    help: str
    samples: tuple[tuple[Mapping[str, str], float], ...]

    def __post_init__(self) -> None:
        if self.kind not in _KINDS:
            raise ValueError(f"metric kind must be counter or gauge, not {self.kind!r}")


def _escape(value: str, quote: bool) -> str:
    value = value.replace("\\", "\\\\").replace("\n", "\\n")
    return value.replace('"', '\\"') if quote else value


def _number(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def render(metrics: Iterable[Metric]) -> str:
    """The exposition text: HELP and TYPE lines, then one line per sample."""
    lines = []
    for metric in metrics:
        lines.append(f"# HELP {metric.name} {_escape(metric.help, quote=False)}")
        lines.append(f"# TYPE {metric.name} {metric.kind}")
        for labels, value in metric.samples:
            label_text = ",".join(f'{k}="{_escape(v, quote=True)}"' for k, v in sorted(labels.items()))
            lines.append(f"{metric.name}{{{label_text}}} {_number(value)}" if label_text
                         else f"{metric.name} {_number(value)}")
    return "\n".join(lines) + "\n"
