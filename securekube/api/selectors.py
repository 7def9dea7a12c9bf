"""Label and field selectors, parsed from the query-string syntax kubectl sends.

Label selectors: `a=b`, `a==b`, `a!=b`, `a in (x,y)`, `a notin (x)`, `a`, `!a`, comma-separated (AND).
Field selectors: `path=value`, `path==value`, `path!=value`, comma-separated; which paths a kind
supports is the kind's decision (its strategy lists them), unknown paths are a 400 as upstream.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, Mapping

from securekube.api.errors import bad_request

_KEY = r"[A-Za-z0-9]([-A-Za-z0-9_./]*[A-Za-z0-9])?"
_VALUE = r"([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?"


@dataclass(frozen=True)
class Requirement:
    key: str
    op: str  # "=", "!=", "in", "notin", "exists", "!"
    values: frozenset[str] = frozenset()

    def matches(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        if self.op == "exists":
            return present
        if self.op == "!":
            return not present
        if self.op in ("=", "in"):
            return present and labels[self.key] in self.values
        # "!=" and "notin" match objects that lack the key, as upstream.
        return not present or labels[self.key] not in self.values


def _split_top_level(text: str) -> list[str]:
    """Splits on commas that are not inside parentheses."""
    parts, depth, cur = [], 0, []
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur))
    return [p.strip() for p in parts if p.strip()]


def _check(kind: str, text: str, pattern: str, selector: str) -> str:
    if not re.fullmatch(pattern, text):
        raise bad_request(f"unable to parse requirement: invalid label {kind} {text!r} in selector {selector!r}")
    return text


def parse_label_selector(selector: str | None) -> tuple[Requirement, ...]:
    """Parses a label selector string; an empty or absent selector matches everything."""
    if not selector:
        return ()
    reqs = []
    for part in _split_top_level(selector):
        m = re.fullmatch(r"(\S+)\s+(in|notin)\s*\((.*)\)", part)
        if m:
            key = _check("key", m.group(1), _KEY, selector)
            values = [v.strip() for v in m.group(3).split(",")]
            reqs.append(Requirement(key, m.group(2), frozenset(_check("value", v, _VALUE, selector) for v in values)))
            continue
        m = re.fullmatch(r"([^=!\s]+)\s*(==|=|!=)\s*(\S*)", part)
        if m:
            op = "=" if m.group(2) in ("=", "==") else "!="
            reqs.append(Requirement(_check("key", m.group(1), _KEY, selector), op,
                                    frozenset([_check("value", m.group(3), _VALUE, selector)])))
            continue
        if part.startswith("!"):
            reqs.append(Requirement(_check("key", part[1:].strip(), _KEY, selector), "!"))
            continue
        reqs.append(Requirement(_check("key", part, _KEY, selector), "exists"))
    return tuple(reqs)


def label_selector_from_object(selector: Mapping | None) -> tuple[Requirement, ...]:
    """Converts a metav1.LabelSelector object (matchLabels/matchExpressions) into requirements."""
    if not selector:
        return ()
    reqs = [Requirement(k, "=", frozenset([v])) for k, v in (selector.get("matchLabels") or {}).items()]
    ops = {"In": "in", "NotIn": "notin", "Exists": "exists", "DoesNotExist": "!"}
    for expr in selector.get("matchExpressions") or []:
        op = ops.get(expr.get("operator", ""))
        if op is None:
            raise bad_request(f"{expr.get('operator')!r} is not a valid label selector operator")
        reqs.append(Requirement(expr.get("key", ""), op, frozenset(expr.get("values") or [])))
    return tuple(reqs)


def labels_match(reqs: tuple[Requirement, ...], labels: Mapping[str, str] | None) -> bool:
    labels = labels or {}
    return all(r.matches(labels) for r in reqs)


@dataclass(frozen=True)
class FieldRequirement:
    path: str
    equal: bool
    value: str


def parse_field_selector(selector: str | None, supported: Mapping[str, Callable[[dict], str]]) -> tuple[FieldRequirement, ...]:
    """Parses a field selector; paths the kind does not support are refused as upstream does."""
    if not selector:
        return ()
    reqs = []
    for part in _split_top_level(selector):
        m = re.fullmatch(r"([^=!\s]+)\s*(==|=|!=)\s*(.*)", part)
        if not m:
            raise bad_request(f"invalid selector: {selector!r}; can't understand {part!r}")
        if m.group(1) not in supported:
            raise bad_request(f'field label not supported: {m.group(1)}')
        reqs.append(FieldRequirement(m.group(1), m.group(2) != "!=", m.group(3).strip()))
    return tuple(reqs)


def fields_match(reqs: tuple[FieldRequirement, ...], obj: dict, supported: Mapping[str, Callable[[dict], str]]) -> bool:
    return all((supported[r.path](obj) == r.value) == r.equal for r in reqs)
