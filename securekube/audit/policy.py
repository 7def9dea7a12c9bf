"""audit.k8s.io/v1 Policy files: which requests are recorded, at what level, in which stages.

The matching is upstream's (k8s.io/apiserver audit policy checker): rules are tried in order and
the first that matches decides; a request no rule matches is not recorded (level None). Within a
rule every non-empty field must match (users, userGroups, verbs, resources or nonResourceURLs,
namespaces); an empty field matches anything. Resource patterns:

    pods            pods itself, not its subresources (as in RBAC)
    pods/log        the log subresource of pods
    pods/*          pods and every subresource of pods
    */scale         the scale subresource of every resource
    *               every resource and subresource of the group

A rule's omitStages is the union of its own and the policy's; a rule's omitManagedFields, when
set, overrides the policy's.

Loading is stricter than upstream in one way: an unknown field is an error, not ignored, because a
misspelt `resource:` would otherwise silently turn a narrow rule into a catch-all.
"""
from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from securekube.audit.errors import AuditPolicyError
from securekube.audit.event import API_VERSION, LEVEL_NONE, LEVELS, STAGES
from securekube.authz.interfaces import Attributes

_POLICY_FIELDS = ("apiVersion", "kind", "metadata", "rules", "omitStages", "omitManagedFields")
_RULE_FIELDS = ("level", "users", "userGroups", "verbs", "resources", "namespaces", "nonResourceURLs",
                "omitStages", "omitManagedFields")
_GROUP_RESOURCE_FIELDS = ("group", "resources", "resourceNames")
_RETIRED_VERSIONS = ("audit.k8s.io/v1beta1", "audit.k8s.io/v1alpha1")


@dataclass(frozen=True)
class RuleDecision:
    """What the policy says about one request: its level, stages not to record, managedFields."""

    level: str
    omit_stages: frozenset[str]
    omit_managed_fields: bool

    def records(self, stage: str) -> bool:
        """Whether an event is written for this request at `stage`."""
        return self.level != LEVEL_NONE and stage not in self.omit_stages


@dataclass(frozen=True)
class GroupResources:
    """Resources of one API group a rule applies to ("" is the core group)."""

    group: str
    resources: tuple[str, ...]
    resource_names: tuple[str, ...]

    def matches(self, attrs: Attributes) -> bool:
        if self.group != attrs.api_group:
            return False
        if not self.resources:
            return True
        if self.resource_names and attrs.name not in self.resource_names:
            return False
        combined = f"{attrs.resource}/{attrs.subresource}" if attrs.subresource else attrs.resource
        for pattern in self.resources:
            if pattern == combined or pattern == "*":
                return True
            if attrs.subresource and pattern.startswith("*/") and pattern[2:] == attrs.subresource:
                return True
            if pattern.endswith("/*") and pattern[:-2] == attrs.resource:
                return True
        return False


@dataclass(frozen=True)
class PolicyRule:
    """One rule of a Policy, with its omitStages already merged with the policy's."""

    level: str
    users: tuple[str, ...] = ()
    user_groups: tuple[str, ...] = ()
    verbs: tuple[str, ...] = ()
    resources: tuple[GroupResources, ...] = ()
    namespaces: tuple[str, ...] = ()
    non_resource_urls: tuple[str, ...] = ()
    omit_stages: frozenset[str] = frozenset()
    omit_managed_fields: bool | None = None

    def matches(self, attrs: Attributes) -> bool:
        if self.users and attrs.user.username not in self.users:
            return False
        if self.user_groups and not any(group in self.user_groups for group in attrs.user.groups):
            return False
        if self.verbs and attrs.verb not in self.verbs:
            return False
        if self.namespaces or self.resources:
            return self._matches_resource(attrs)
        if self.non_resource_urls:
            return self._matches_non_resource(attrs)
        return True

    def _matches_resource(self, attrs: Attributes) -> bool:
        if not attrs.resource_request:
            return False
        if self.namespaces and attrs.namespace not in self.namespaces:  # "" = cluster-scoped
            return False
        return not self.resources or any(gr.matches(attrs) for gr in self.resources)

    def _matches_non_resource(self, attrs: Attributes) -> bool:
        if attrs.resource_request:
            return False
        return any(_path_matches(attrs.path, pattern) for pattern in self.non_resource_urls)


@dataclass(frozen=True)
class AuditPolicy:
    """A loaded audit.k8s.io/v1 Policy; `evaluate` answers for one request."""

    rules: tuple[PolicyRule, ...]
    omit_stages: frozenset[str] = frozenset()
    omit_managed_fields: bool = False
    source: str = ""

    @classmethod
    def load(cls, path: Path | str) -> "AuditPolicy":
        """Reads a Policy from a YAML or JSON file; raises AuditPolicyError naming every bad field."""
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise AuditPolicyError(f"cannot read audit policy {path}: {exc.strerror}") from None
        except UnicodeDecodeError:
            raise AuditPolicyError(f"audit policy {path} is not UTF-8 text") from None
        try:
            doc = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" at line {mark.line + 1}" if mark is not None else ""
            raise AuditPolicyError(f"audit policy {path} is not valid YAML{where}") from None
        return cls.parse(doc, str(path))

    @classmethod
    def parse(cls, doc: Any, source: str = "<policy>") -> "AuditPolicy":
        """Builds a Policy from a decoded document; raises AuditPolicyError naming every bad field."""
        errors: list[str] = []
        if not isinstance(doc, dict):
            raise AuditPolicyError(f"{source}: an audit policy must be a mapping with apiVersion, kind and rules")
        api_version, kind = doc.get("apiVersion"), doc.get("kind")
        if api_version in _RETIRED_VERSIONS:
            errors.append(f"apiVersion: {api_version} is no longer served; use {API_VERSION}")
        elif api_version != API_VERSION:
            errors.append(f"apiVersion: must be {API_VERSION}, got {api_version!r}")
        if kind != "Policy":
            errors.append(f"kind: must be Policy, got {kind!r}")
        _unknown_fields(doc, _POLICY_FIELDS, "", errors)
        if doc.get("metadata") is not None and not isinstance(doc.get("metadata"), dict):
            errors.append("metadata: must be a mapping")
        omit_stages = frozenset(_stages(doc.get("omitStages"), "omitStages", errors))
        omit_managed = _bool(doc.get("omitManagedFields"), "omitManagedFields", errors)
        raw_rules = doc.get("rules")
        rules: list[PolicyRule] = []
        if raw_rules is None or raw_rules == []:
            errors.append("rules: a policy needs at least one rule (upstream refuses an empty policy)")
        elif not isinstance(raw_rules, list):
            errors.append("rules: must be a list")
        else:
            for index, raw in enumerate(raw_rules):
                rule = _parse_rule(raw, f"rules[{index}]", omit_stages, errors)
                if rule is not None:
                    rules.append(rule)
        if errors:
            raise AuditPolicyError(f"{source}: invalid audit policy: " + "; ".join(errors))
        return cls(tuple(rules), omit_stages, bool(omit_managed), source)

    def evaluate(self, attrs: Attributes) -> RuleDecision:
        """The first matching rule's decision; level None (with the policy's stages) if none matches."""
        for rule in self.rules:
            if rule.matches(attrs):
                omit_managed = self.omit_managed_fields if rule.omit_managed_fields is None else rule.omit_managed_fields
                return RuleDecision(rule.level, rule.omit_stages, omit_managed)
        return RuleDecision(LEVEL_NONE, self.omit_stages, self.omit_managed_fields)


def _parse_rule(raw: Any, path: str, policy_stages: frozenset[str], errors: list[str]) -> PolicyRule | None:
    if not isinstance(raw, dict):
        errors.append(f"{path}: must be a mapping")
        return None
    before = len(errors)
    _unknown_fields(raw, _RULE_FIELDS, path, errors)
    level = raw.get("level")
    if level is None or level == "":
        errors.append(f"{path}.level: required")
    elif level not in LEVELS:
        errors.append(f"{path}.level: unsupported value {level!r}; supported: {', '.join(LEVELS)}")
    urls = _strings(raw.get("nonResourceURLs"), f"{path}.nonResourceURLs", errors)
    for index, url in enumerate(urls):
        if url == "*":
            continue
        if not url.startswith("/"):
            errors.append(f"{path}.nonResourceURLs[{index}]: {url!r} must begin with '/'")
        if "*" in url[:-1]:
            errors.append(f"{path}.nonResourceURLs[{index}]: {url!r} may use '*' only as its final character")
    resources = _group_resources(raw.get("resources"), f"{path}.resources", errors)
    namespaces = _strings(raw.get("namespaces"), f"{path}.namespaces", errors)
    if urls and (resources or namespaces):
        errors.append(f"{path}.nonResourceURLs: rules cannot apply to both regular resources and non-resource URLs")
    rule = PolicyRule(
        level=level if isinstance(level, str) else "",
        users=_strings(raw.get("users"), f"{path}.users", errors),
        user_groups=_strings(raw.get("userGroups"), f"{path}.userGroups", errors),
        verbs=_strings(raw.get("verbs"), f"{path}.verbs", errors),
        resources=resources,
        namespaces=namespaces,
        non_resource_urls=urls,
        omit_stages=policy_stages | frozenset(_stages(raw.get("omitStages"), f"{path}.omitStages", errors)),
        omit_managed_fields=_bool(raw.get("omitManagedFields"), f"{path}.omitManagedFields", errors),
    )
    return rule if len(errors) == before else None


def _group_resources(raw: Any, path: str, errors: list[str]) -> tuple[GroupResources, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        errors.append(f"{path}: must be a list of {{group, resources, resourceNames}}")
        return ()
    out = []
    for index, item in enumerate(raw):
        item_path = f"{path}[{index}]"
        if not isinstance(item, dict):
            errors.append(f"{item_path}: must be a mapping with group, resources, resourceNames")
            continue
        _unknown_fields(item, _GROUP_RESOURCE_FIELDS, item_path, errors)
        group = item.get("group")
        if group is None:
            group = ""
        if not isinstance(group, str):
            errors.append(f"{item_path}.group: must be a string")
            continue
        if group and not _is_dns_subdomain(group):
            # e.g. "rbac.authorization.k8s.io/v1": the version must not be part of the group.
            errors.append(f"{item_path}.group: {group!r} is not a lower-case DNS subdomain (no version)")
        resources = _strings(item.get("resources"), f"{item_path}.resources", errors)
        names = _strings(item.get("resourceNames"), f"{item_path}.resourceNames", errors)
        if names and not resources:
            errors.append(f"{item_path}.resourceNames: using resourceNames requires at least one resource")
        out.append(GroupResources(group, resources, names))
    return tuple(out)


def _strings(raw: Any, path: str, errors: list[str]) -> tuple[str, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list) or not all(isinstance(item, str) for item in raw):
        errors.append(f"{path}: must be a list of strings")
        return ()
    return tuple(raw)


def _stages(raw: Any, path: str, errors: list[str]) -> tuple[str, ...]:
    stages = _strings(raw, path, errors)
    for index, stage in enumerate(stages):
        if stage not in STAGES:
            errors.append(f"{path}[{index}]: unknown stage {stage!r}; allowed stages are {', '.join(STAGES)}")
    return stages


def _bool(raw: Any, path: str, errors: list[str]) -> bool | None:
    if raw is None or isinstance(raw, bool):
        return raw
    errors.append(f"{path}: must be true or false")
    return None


def _unknown_fields(raw: Mapping[str, Any], known: tuple[str, ...], path: str, errors: list[str]) -> None:
    for key in raw:
        if key in known:
            continue
        where = f"{path}.{key}" if path else str(key)
        close = difflib.get_close_matches(str(key), known, n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        errors.append(f"{where}: unknown field{hint}")


def _path_matches(path: str, pattern: str) -> bool:
    if pattern == "*" or pattern == path:
        return True
    return pattern.endswith("*") and path.startswith(pattern.rstrip("*"))


def _is_dns_subdomain(value: str) -> bool:
    if len(value) > 253:
        return False
    for label in value.split("."):
        if not label or len(label) > 63 or label[0] == "-" or label[-1] == "-":
            return False
        if not all(c.isascii() and (c.islower() or c.isdigit() or c == "-") for c in label):
            return False
    return True
