"""The loader for `policies/`: every policy folder read, checked, then loaded into an engine at once.

A policy folder (the layout of gatekeeper-library) is

    policies/<name>/policy.rego          one Rego v1 package defining `deny` (admission policies
                                         may also define `warn` and `patch`)
    policies/<name>/policy_test.rego     its `test_*` rules (run by `testing.py`)
    policies/<name>/samples/allowed/*.yaml, samples/disallowed/*.yaml

Before anything reaches the serving engine, every folder must have a policy.rego and a
policy_test.rego (when present) that parse, the policy must define `deny` in a package no other
policy uses, and neither file may call a builtin that reaches outside the process (network,
the process environment): a policy is a function of its input and data, and an environment
variable or a network answer has no place in an authorization decision or a denial message.
Only then are the policy modules loaded, all at once; a compile error leaves the engine with the
modules it had. Every error names the file, and for syntax errors the line.

Files are parsed with OPA's own parser (the `rego.parse_module` builtin, through the engine),
so what is checked here is exactly what OPA will run.
"""
from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from securekube.policy.interfaces import PolicyCompileError, PolicyEngine, PolicyError

__all__ = [
    "ADMISSION_PACKAGE",
    "AUTHORIZATION_PACKAGE",
    "DENY_RULE",
    "FORBIDDEN_BUILTINS",
    "PATCH_RULE",
    "POLICY_FILE",
    "Policy",
    "PolicyLoadError",
    "RegoModule",
    "TEST_FILE",
    "WARN_RULE",
    "load_policies",
    "parse_module",
    "policy_from_file",
    "read_policies",
    "read_policy",
]

POLICY_FILE = "policy.rego"
TEST_FILE = "policy_test.rego"
SAMPLES_DIR = "samples"
ALLOWED_SAMPLES = "allowed"
DISALLOWED_SAMPLES = "disallowed"
DENY_RULE = "deny"
WARN_RULE = "warn"  # admission policies: messages returned to the client as warnings
PATCH_RULE = "patch"  # admission policies: JSON patch operations applied to the object
# Authorization policies are the packages directly below this one (securekube.authz.<name>).
AUTHORIZATION_PACKAGE = ("securekube", "authz")
# Admission policies likewise (securekube.admission.<name>); their inputs are AdmissionReviews.
ADMISSION_PACKAGE = ("securekube", "admission")
TEST_RULE_PREFIX = "test_"
# Builtins whose answers come from outside the process: the network, DNS, the environment.
FORBIDDEN_BUILTINS = ("http.send", "net.lookup_ip_addr", "opa.runtime")
# Parsing is quick; this only bounds a pathological file.
PARSE_TIMEOUT = 5.0

_PARSE_QUERY = "module := rego.parse_module(input.name, input.source)"
_PARSE_ERROR_MARKER = "rego.parse_module: "


class PolicyLoadError(PolicyError):
    """A policy folder is incomplete or breaks a convention; the message names the folder or file."""


@dataclass(frozen=True)
class RegoModule:
    """One parsed Rego file: its text, its package and the rules it defines."""

    path: Path
    source: str
    package: tuple[str, ...]  # the package path below `data`, e.g. ("securekube", "authz", "x")
    rules: tuple[str, ...]  # names of the plain rules it defines (no functions), first mention first
    # Every dotted reference prefix the module mentions (`data`, `data.inventory`, `http.send`, ...).
    references: frozenset[str] = frozenset()

    @property
    def module_name(self) -> str:
        """The module's name in the engine: its path, so engine errors name the file."""
        return str(self.path)

    @property
    def package_ref(self) -> str:
        """A Rego reference to the package, quoted so any segment (even `a-b`) is valid."""
        return "data" + "".join(f"[{json.dumps(segment)}]" for segment in self.package)

    @property
    def package_name(self) -> str:
        return ".".join(self.package)

    def rule_ref(self, rule: str) -> str:
        return f"{self.package_ref}[{json.dumps(rule)}]"

    def mentions(self, reference: str) -> bool:
        """Whether the module refers to `reference` (e.g. `data.inventory`) or something below it."""
        return reference in self.references


@dataclass(frozen=True)
class Policy:
    """One folder of `policies/`, read and checked."""

    name: str  # the folder name; denial reasons start with it
    directory: Path
    module: RegoModule
    tests: RegoModule | None
    allowed_samples: tuple[Path, ...]
    disallowed_samples: tuple[Path, ...]

    @property
    def deny_ref(self) -> str:
        return self.module.rule_ref(DENY_RULE)

    @property
    def is_authorization(self) -> bool:
        """Whether this is an authorization policy (its inputs are SubjectAccessReviews)."""
        return _directly_below(self.module.package, AUTHORIZATION_PACKAGE)

    @property
    def is_admission(self) -> bool:
        """Whether this is an admission policy (its inputs are admission.k8s.io/v1 AdmissionReviews)."""
        return _directly_below(self.module.package, ADMISSION_PACKAGE)

    def defines(self, rule: str) -> bool:
        return rule in self.module.rules


def _directly_below(package: tuple[str, ...], parent: tuple[str, ...]) -> bool:
    return len(package) == len(parent) + 1 and package[:-1] == parent


def load_policies(root: Path, engine: PolicyEngine, *, timeout: float = PARSE_TIMEOUT) -> tuple[Policy, ...]:
    """Read every policy folder under `root` and load their policy.rego files into `engine`.

    All or nothing: on any error (`PolicyError`) the engine keeps the modules it had.
    """
    policies = read_policies(root, engine, timeout=timeout)
    engine.load({policy.module.module_name: policy.module.source for policy in policies})
    return policies


def read_policies(root: Path, engine: PolicyEngine, *, timeout: float = PARSE_TIMEOUT) -> tuple[Policy, ...]:
    """Read and check every policy folder under `root`, in name order, without loading them.

    `engine` is used only to parse (its loaded modules are untouched).
    """
    if not root.is_dir():
        raise PolicyLoadError(f"{root}: the policies directory does not exist")
    policies = tuple(_read_policy(directory, engine, timeout) for directory in policy_dirs(root))
    packages: dict[tuple[str, ...], str] = {}
    for policy in policies:
        other = packages.setdefault(policy.module.package, policy.name)
        if other != policy.name:
            raise PolicyLoadError(
                f"{policy.module.path}: package {policy.module.package_name} is also the package of policy {other}"
            )
    return policies


def read_policy(directory: Path, engine: PolicyEngine, *, timeout: float = PARSE_TIMEOUT) -> Policy:
    """Read and check one policy folder (as `read_policies` does for each), without loading it."""
    if not directory.is_dir():
        raise PolicyLoadError(f"{directory}: the policy folder does not exist")
    return _read_policy(directory, engine, timeout)


def policy_from_file(path: Path, engine: PolicyEngine, *, timeout: float = PARSE_TIMEOUT) -> Policy:
    """A single Rego file as a policy (any package defining `deny`), named after the file.

    For trying a policy written elsewhere - say one from OPA's Kubernetes tutorials - as it is;
    it has no tests or samples.
    """
    module = parse_module(engine, path, _read_text(path), timeout=timeout)
    if DENY_RULE not in module.rules:
        raise PolicyLoadError(f"{path}: package {module.package_name} does not define {DENY_RULE!r}")
    return Policy(name=path.stem, directory=path.parent, module=module, tests=None, allowed_samples=(),
                  disallowed_samples=())


def parse_module(engine: PolicyEngine, path: Path, source: str, *, timeout: float = PARSE_TIMEOUT) -> RegoModule:
    """Parse one Rego file with OPA's parser; `PolicyCompileError` names the file and line."""
    try:
        rows = engine.evaluate(_PARSE_QUERY, {"name": str(path), "source": source}, timeout=timeout)
    except PolicyCompileError:
        raise
    except PolicyError as exc:
        message = str(exc)
        if _PARSE_ERROR_MARKER not in message:
            raise
        raise PolicyCompileError(message.rsplit(_PARSE_ERROR_MARKER, 1)[1]) from None
    if len(rows) != 1 or not isinstance(rows[0].get("module"), dict):
        raise PolicyCompileError(f"{path}: the parser gave no module")
    ast = rows[0]["module"]
    references = frozenset(_refs(ast))
    forbidden = sorted(references.intersection(FORBIDDEN_BUILTINS))
    if forbidden:
        raise PolicyLoadError(f"{path}: calls {', '.join(forbidden)}, which policies may not use")
    return RegoModule(path=path, source=source, package=_package(path, ast), rules=_rule_names(ast),
                      references=references)


def policy_dirs(root: Path) -> list[Path]:
    """The policy folders under `root` (each policy's name is its folder's)."""
    # Hidden and private entries (".git", "__pycache__") are not policies.
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith((".", "_")))


def _read_policy(directory: Path, engine: PolicyEngine, timeout: float) -> Policy:
    policy_path = directory / POLICY_FILE
    if not policy_path.is_file():
        raise PolicyLoadError(f"{directory}: a policy folder needs a {POLICY_FILE}")
    module = parse_module(engine, policy_path, _read_text(policy_path), timeout=timeout)
    if DENY_RULE not in module.rules:
        raise PolicyLoadError(f"{policy_path}: package {module.package_name} does not define {DENY_RULE!r}")
    test_path = directory / TEST_FILE
    tests = parse_module(engine, test_path, _read_text(test_path), timeout=timeout) if test_path.is_file() else None
    samples = directory / SAMPLES_DIR
    return Policy(
        name=directory.name,
        directory=directory,
        module=module,
        tests=tests,
        allowed_samples=tuple(sorted((samples / ALLOWED_SAMPLES).glob("*.yaml"))),
        disallowed_samples=tuple(sorted((samples / DISALLOWED_SAMPLES).glob("*.yaml"))),
    )


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PolicyLoadError(f"{path}: cannot be read: {exc}") from None


def _package(path: Path, ast: dict[str, Any]) -> tuple[str, ...]:
    terms = ast.get("package", {}).get("path", [])
    segments = [term.get("value") for term in terms[1:]]
    if not segments or not all(isinstance(s, str) for s in segments):
        raise PolicyLoadError(f"{path}: cannot read the package name")
    return tuple(segments)


def _rule_names(ast: dict[str, Any]) -> tuple[str, ...]:
    names: dict[str, None] = {}
    for rule in ast.get("rules", []):
        head = rule.get("head", {})
        ref = head.get("ref", [])
        # Only plain rules `name ...`: functions (args) and ref heads (`a.b if`) are no test or deny.
        if len(ref) == 1 and ref[0].get("type") == "var" and not head.get("args"):
            names.setdefault(ref[0]["value"], None)
    return tuple(names)


def _refs(node: Any) -> Iterator[str]:
    """The dotted names of every reference in a parsed module (`http.send`, `data.x.y`, ...)."""
    if isinstance(node, dict):
        if node.get("type") == "ref" and isinstance(node.get("value"), list):
            parts = []
            for term in node["value"]:
                if term.get("type") not in ("var", "string") or not isinstance(term.get("value"), str):
                    break
                parts.append(term["value"])
            for end in range(1, len(parts) + 1):
                yield ".".join(parts[:end])
        for value in node.values():
            yield from _refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _refs(item)
