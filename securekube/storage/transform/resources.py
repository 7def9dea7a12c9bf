"""Resource names in an EncryptionConfiguration: parsing, lookup order and upstream's name rules.

A resource entry is `<resource>` (core group), `<resource>.<group>`, `*.` (every core resource),
`*.<group>` or `*.*`. Upstream looks a resource up as: exact match, then `*.<group>`, then `*.*`,
else identity; a later entry that an earlier wildcard would mask is a configuration error.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class GroupResource:
    """A resource in an API group ("" is the core group; "*" is a wildcard in either part)."""

    group: str
    resource: str

    def __str__(self) -> str:
        # Written the way a user writes it in the file.
        if self.group == "":
            return "*." if self.resource == "*" else self.resource
        return f"{self.resource}.{self.group}"


ANY_GROUP_ANY_RESOURCE = GroupResource("*", "*")

# Upstream refuses these: they have no REST API, so nothing would ever be encrypted.
_NON_REST_RESOURCES = frozenset(
    {"apiserveripinfo", "serviceipallocations", "servicenodeportallocations"}
)


def parse_group_resource(text: str) -> GroupResource:
    """Splits at the first dot, as upstream's schema.ParseGroupResource does."""
    resource, dot, group = text.partition(".")
    return GroupResource(group if dot else "", resource)


def lookup_order(resource: str, group: str = "") -> tuple[GroupResource, ...]:
    """The configuration entries that may govern a resource, most specific first."""
    return (
        GroupResource(group, resource),
        GroupResource(group, "*"),
        ANY_GROUP_ANY_RESOURCE,
    )


def name_problem(text: str) -> str | None:
    """Upstream's complaint about one resource entry, or None if it is acceptable."""
    if text.lower() != text:
        return "resource name should not contain capital letters"
    if text == "*":
        return (
            "use '*.' to encrypt all the resources from core API group "
            "or *.* to encrypt all resources"
        )
    if text in _NON_REST_RESOURCES:
        return "resources which do not have REST API/s cannot be encrypted"
    parsed = parse_group_resource(text)
    if parsed.group == "events.k8s.io":
        return (
            "'*.events.k8s.io' objects are stored using the 'events' API group in etcd. "
            "Use 'events' instead in the config file"
        )
    if parsed.group == "extensions":
        return "'extensions' group has been removed and cannot be used for encryption"
    if parsed.group == "*" and parsed.resource != "*":
        return "encrypting the same resource across groups is not supported"
    return None


def list_problems(texts: list[str]) -> list[str]:
    """Upstream's complaints about duplicates and wildcard overlap inside one resources list."""
    parsed = [parse_group_resource(text) for text in texts]
    duplicate = overlap = False
    for i, first in enumerate(parsed):
        for j, second in enumerate(parsed):
            if i == j:
                continue
            # Like upstream, only the first equal pair counts as "duplicate"; a repeated
            # wildcard is then also reported as an overlap.
            if first == second and not duplicate:
                duplicate = True
                continue
            same_group_wildcard = first.group == second.group and "*" in (
                first.resource,
                second.resource,
            )
            if first == ANY_GROUP_ANY_RESOURCE or same_group_wildcard:
                overlap = True
    problems = []
    if duplicate:
        problems.append("the same resource cannot be specified multiple times")
    if overlap:
        problems.append(
            "using overlapping resources such as 'secrets' and '*.' in the same resource list "
            "is not allowed as they will be masked"
        )
    return problems


def masking_rule(candidate: GroupResource, earlier: set[GroupResource]) -> GroupResource | None:
    """The earlier wildcard entry that would hide `candidate`, if any (upstream refuses it)."""
    for wildcard in (GroupResource(candidate.group, "*"), ANY_GROUP_ANY_RESOURCE):
        if wildcard in earlier:
            return wildcard
    return None
