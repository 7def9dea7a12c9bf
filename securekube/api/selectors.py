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
from securekube.api.validation import label_key_errors, label_value_errors


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


def _split_top_level(text: str, *, allow_empty: bool) -> list[str]:
    """Splits on commas that are not inside parentheses.

    Upstream's label selector parser refuses an empty term (",a", "a,,b", "a,"); its field
    selector parser skips them.
    """
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
    parts = [p.strip() for p in parts]
    if not allow_empty and any(not p for p in parts):
        raise bad_request(f"unable to parse requirement: empty term in selector {text!r}")
    return [p for p in parts if p]


def _check_key(text: str, selector: str) -> str:
    # The same rules as a label key on an object: a selector that could never match is a mistake, not a no-op.
    if label_key_errors(text):
        raise bad_request(f"unable to parse requirement: invalid label key {text!r} in selector {selector!r}")
    return text


def _check_value(text: str, selector: str) -> str:
    if label_value_errors(text):
        raise bad_request(f"unable to parse requirement: invalid label value {text!r} in selector {selector!r}")
    return text


def parse_label_selector(selector: str | None) -> tuple[Requirement, ...]:
    """Parses a label selector string; an empty or absent selector matches everything."""
    if not selector or not selector.strip():
        return ()
    reqs = []
    for part in _split_top_level(selector, allow_empty=False):
        m = re.fullmatch(r"(\S+)\s+(in|notin)\s*\((.*)\)", part)
        if m:
            key = _check_key(m.group(1), selector)
            values = [v.strip() for v in m.group(3).split(",")]
            reqs.append(Requirement(key, m.group(2), frozenset(_check_value(v, selector) for v in values)))
            continue
        m = re.fullmatch(r"([^=!\s]+)\s*(==|=|!=)\s*(\S*)", part)
        if m:
            op = "=" if m.group(2) in ("=", "==") else "!="
            reqs.append(Requirement(_check_key(m.group(1), selector), op,
                                    frozenset([_check_value(m.group(3), selector)])))
            continue
        if part.startswith("!"):
            reqs.append(Requirement(_check_key(part[1:].strip(), selector), "!"))
            continue
        reqs.append(Requirement(_check_key(part, selector), "exists"))
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
    for part in _split_top_level(selector, allow_empty=True):
        m = re.fullmatch(r"([^=!\s]+)\s*(==|=|!=)\s*(.*)", part)
        if not m:
            raise bad_request(f"invalid selector: {selector!r}; can't understand {part!r}")
        if m.group(1) not in supported:
            raise bad_request(f'field label not supported: {m.group(1)}')
        reqs.append(FieldRequirement(m.group(1), m.group(2) != "!=", m.group(3).strip()))
    return tuple(reqs)


def fields_match(reqs: tuple[FieldRequirement, ...], obj: dict, supported: Mapping[str, Callable[[dict], str]]) -> bool:
    return all((supported[r.path](obj) == r.value) == r.equal for r in reqs)
