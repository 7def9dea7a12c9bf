"""Pod Security Admission: the Pod Security Standards enforced per namespace, as upstream does.

A namespace chooses a level for each mode with its labels:

    pod-security.kubernetes.io/enforce: restricted        # violations are denied
    pod-security.kubernetes.io/enforce-version: latest    # or v1.N: the standard as of that release
    pod-security.kubernetes.io/audit: baseline            # violations are recorded in the audit event
    pod-security.kubernetes.io/warn: restricted           # violations are returned as warnings

Levels are privileged (no checks), baseline and restricted; unlabelled modes take the configured
defaults (upstream's: privileged:latest). Upstream semantics throughout:

- A label that does not parse makes enforce `restricted` (fail closed) and audit or warn
  `privileged`; the pod is evaluated anyway and the audit event records the error. A Namespace
  create or update that introduces such a label is refused (422).
- Without a warn label, warn follows an explicitly set, stricter enforce level.
- Pods are checked on CREATE and on UPDATEs that change what the standards look at (images,
  containers, new ephemeral containers); metadata-only updates, status and the connect-style
  subresources (exec, attach, log, ...) are not. pods/ephemeralcontainers is checked.
- Pod-template owners (Deployments, Jobs, ...) get audit annotations and warnings, never a denial:
  their pods are checked when they are created.
- Raising a namespace's enforce level warns about the existing pods that would violate it.
- Exemptions (usernames, namespaces, runtime classes) are configured; none by default.

Messages and annotation keys are upstream's: a denial reads `pods "x" is forbidden: violates
PodSecurity "restricted:latest": allowPrivilegeEscalation != false (...)`, a warning `would violate
PodSecurity "restricted:latest": ...`, and the audit event carries
`pod-security.kubernetes.io/enforce-policy` and `pod-security.kubernetes.io/audit-violations`.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from securekube.admission.interfaces import CREATE, UPDATE, AdmissionError, AdmissionRequest, AdmissionResult
from securekube.admission.podsecurity_checks import (
    BASELINE,
    LATEST_MINOR,
    LEVELS,
    PRIVILEGED,
    RESTRICTED,
    CheckResult,
    evaluate_pod,
)
from securekube.api.errors import Cause, bad_request, forbidden, internal, invalid
from securekube.authz.rbac_model import go_quote

__all__ = [
    "AUDIT_VIOLATIONS_ANNOTATION",
    "ENFORCED_POLICY_ANNOTATION",
    "ERROR_ANNOTATION",
    "EXEMPT_ANNOTATION",
    "LevelVersion",
    "NamespacePolicy",
    "PodSecurityAdmission",
    "PodSecurityConfig",
    "PodSecurityExemptions",
    "aggregate_detail",
    "policy_for_labels",
]

LABEL_PREFIX = "pod-security.kubernetes.io/"
ENFORCE_LABEL, ENFORCE_VERSION_LABEL = LABEL_PREFIX + "enforce", LABEL_PREFIX + "enforce-version"
AUDIT_LABEL, AUDIT_VERSION_LABEL = LABEL_PREFIX + "audit", LABEL_PREFIX + "audit-version"
WARN_LABEL, WARN_VERSION_LABEL = LABEL_PREFIX + "warn", LABEL_PREFIX + "warn-version"
ENFORCED_POLICY_ANNOTATION = LABEL_PREFIX + "enforce-policy"
AUDIT_VIOLATIONS_ANNOTATION = LABEL_PREFIX + "audit-violations"
EXEMPT_ANNOTATION = LABEL_PREFIX + "exempt"
ERROR_ANNOTATION = LABEL_PREFIX + "error"

_VERSION = re.compile(r"^v1\.(0|[1-9][0-9]*)$")
_LEVEL_ERROR = "must be one of " + ", ".join(LEVELS)
_VERSION_ERROR = 'must be "latest" or "v1.x"'
# Subresources that never change a pod's spec; any other one (ephemeralcontainers) is checked.
_IGNORED_POD_SUBRESOURCES = frozenset({"exec", "attach", "binding", "eviction", "log", "portforward", "proxy",
                                       "status"})
# Pod-template owners and where their template is.
_POD_TEMPLATE_PATHS: Mapping[tuple[str, str], tuple[str, ...]] = {
    ("", "replicationcontrollers"): ("spec", "template"),
    ("", "podtemplates"): ("template",),
    ("apps", "replicasets"): ("spec", "template"),
    ("apps", "deployments"): ("spec", "template"),
    ("apps", "statefulsets"): ("spec", "template"),
    ("apps", "daemonsets"): ("spec", "template"),
    ("batch", "jobs"): ("spec", "template"),
    ("batch", "cronjobs"): ("spec", "jobTemplate", "spec", "template"),
}


@dataclass(frozen=True)
class LevelVersion:
    """A level at a policy version; `minor` None is `latest`."""

    level: str
    minor: int | None = None

    def __str__(self) -> str:
        return f"{self.level}:{'latest' if self.minor is None else f'v1.{self.minor}'}"

    @property
    def effective_minor(self) -> int:
        return LATEST_MINOR if self.minor is None else self.minor

    @classmethod
    def parse(cls, text: str) -> LevelVersion:
        """"restricted", "restricted:latest" or "baseline:v1.30"; ValueError otherwise."""
        level, _, version = text.partition(":")
        if level not in LEVELS:
            raise ValueError(f"Pod Security level {level!r} {_LEVEL_ERROR}")
        minor, error = _parse_version(version or "latest")
        if error:
            raise ValueError(f"Pod Security version {version!r} {error}")
        return cls(level, minor)


_PRIVILEGED_LATEST = LevelVersion(PRIVILEGED)


@dataclass(frozen=True)
class NamespacePolicy:
    """The level and version of each mode."""

    enforce: LevelVersion = _PRIVILEGED_LATEST
    audit: LevelVersion = _PRIVILEGED_LATEST
    warn: LevelVersion = _PRIVILEGED_LATEST

    @classmethod
    def uniform(cls, level_version: LevelVersion) -> NamespacePolicy:
        return cls(level_version, level_version, level_version)

    @property
    def fully_privileged(self) -> bool:
        return all(mode.level == PRIVILEGED for mode in (self.enforce, self.audit, self.warn))


@dataclass(frozen=True)
class PodSecurityExemptions:
    """Requests that are never checked (upstream's AdmissionConfiguration exemptions)."""

    usernames: frozenset[str] = frozenset()
    namespaces: frozenset[str] = frozenset()
    runtime_classes: frozenset[str] = frozenset()


@dataclass(frozen=True)
class PodSecurityConfig:
    """Defaults for unlabelled namespaces, exemptions, and the bound on the existing-pods check."""

    defaults: NamespacePolicy = field(default_factory=NamespacePolicy)
    exemptions: PodSecurityExemptions = field(default_factory=PodSecurityExemptions)
    max_pods_to_check: int = 3000  # when a namespace's enforce level is raised

    def __post_init__(self) -> None:
        if self.max_pods_to_check < 1:
            raise ValueError("max_pods_to_check must be at least 1")


@dataclass(frozen=True)
class _LabelError:
    label: str
    value: str
    message: str

    def cause(self) -> Cause:
        return Cause("FieldValueInvalid", f"Invalid value: {go_quote(self.value)}: {self.message}",
                     f"metadata.labels[{self.label}]")

    def __str__(self) -> str:
        cause = self.cause()
        return f"{cause.field}: {cause.message}"


def _parse_version(value: str) -> tuple[int | None, str]:
    if value == "latest":
        return None, ""
    match = _VERSION.match(value)
    return (int(match.group(1)), "") if match else (None, _VERSION_ERROR)


def policy_for_labels(labels: Mapping[str, Any] | None,
                      defaults: NamespacePolicy = NamespacePolicy()) -> tuple[NamespacePolicy, tuple[_LabelError, ...]]:
    """The policy a namespace's labels choose, and the labels that do not parse (upstream's rules)."""
    labels = labels if isinstance(labels, Mapping) else {}
    errors: list[_LabelError] = []

    def level(label: str, current: str, on_error: str) -> tuple[str, bool]:
        if label not in labels:
            return current, False
        value = str(labels[label])
        if value in LEVELS:
            return value, True
        errors.append(_LabelError(label, value, _LEVEL_ERROR))
        return on_error, False

    def version(label: str, current: int | None) -> tuple[int | None, bool]:
        if label not in labels:
            return current, False
        minor, error = _parse_version(str(labels[label]))
        if error:
            errors.append(_LabelError(label, str(labels[label]), error))
        return minor, True

    enforce_level, enforce_set = level(ENFORCE_LABEL, defaults.enforce.level, RESTRICTED)  # fail closed
    enforce_minor, _ = version(ENFORCE_VERSION_LABEL, defaults.enforce.minor)
    audit_level, _ = level(AUDIT_LABEL, defaults.audit.level, PRIVILEGED)
    audit_minor, _ = version(AUDIT_VERSION_LABEL, defaults.audit.minor)
    warn_set = WARN_LABEL in labels
    warn_level, _ = level(WARN_LABEL, defaults.warn.level, PRIVILEGED)
    warn_minor, warn_version_set = version(WARN_VERSION_LABEL, defaults.warn.minor)
    if not warn_set and enforce_set and LEVELS.index(enforce_level) > LEVELS.index(warn_level):
        warn_level = enforce_level
        if not warn_version_set:
            warn_minor = enforce_minor
    policy = NamespacePolicy(LevelVersion(enforce_level, enforce_minor), LevelVersion(audit_level, audit_minor),
                             LevelVersion(warn_level, warn_minor))
    return policy, tuple(errors)


def aggregate_detail(failures: Sequence[CheckResult]) -> str:
    """Upstream's aggregate message: `reason (detail), reason, reason (detail)`."""
    return ", ".join(f"{f.reason} ({f.detail})" if f.detail else f.reason for f in failures)


def _aggregate_errors(errors: Sequence[_LabelError]) -> str:
    texts = [str(e) for e in errors]
    return texts[0] if len(texts) == 1 else f"[{', '.join(texts)}]"


def _labels(obj: Mapping[str, Any] | None) -> Mapping[str, Any]:
    metadata = obj.get("metadata") if isinstance(obj, Mapping) else None
    labels = metadata.get("labels") if isinstance(metadata, Mapping) else None
    return labels if isinstance(labels, Mapping) else {}


def _at(obj: Any, path: Sequence[str]) -> Any:
    for key in path:
        if not isinstance(obj, Mapping):
            return None
        obj = obj.get(key)
    return obj


class PodSecurityAdmission:
    """The PodSecurity validating stage. Holds only its configuration; safe to share between threads.

    `list_pods(namespace)` returns the pods of a namespace (for the warning about existing pods
    when its enforce level is raised); without it that warning is left out.
    """

    name = "PodSecurity"

    def __init__(self, config: PodSecurityConfig = PodSecurityConfig(),
                 list_pods: Callable[[str], Iterable[Mapping[str, Any]]] | None = None) -> None:
        self._config = config
        self._list_pods = list_pods

    @property
    def config(self) -> PodSecurityConfig:
        return self._config

    def policy_for_namespace(self, namespace: Mapping[str, Any] | None
                             ) -> tuple[NamespacePolicy, tuple[_LabelError, ...]]:
        return policy_for_labels(_labels(namespace), self._config.defaults)

    def validate(self, request: AdmissionRequest) -> AdmissionResult:
        if request.operation not in (CREATE, UPDATE):
            return AdmissionResult(request.object)
        group_resource = request.group_resource
        if group_resource == ("", "namespaces"):
            return self._validate_namespace(request)
        if group_resource == ("", "pods"):
            return self._validate_pod(request)
        if group_resource in _POD_TEMPLATE_PATHS:
            return self._validate_pod_template_owner(request, _POD_TEMPLATE_PATHS[group_resource])
        return AdmissionResult(request.object)

    # -- namespaces ----------------------------------------------------------------------

    def _validate_namespace(self, request: AdmissionRequest) -> AdmissionResult:
        if request.sub_resource:
            return AdmissionResult(request.object)
        if not isinstance(request.object, Mapping):
            raise AdmissionError.from_api_error(bad_request("failed to decode namespace"))
        namespace_name = request.namespace or str(_at(request.object, ("metadata", "name")) or "")
        new_policy, new_errors = self.policy_for_namespace(request.object)
        result = AdmissionResult(request.object)
        if request.operation == CREATE:
            if new_errors:
                raise self._invalid_labels(request, new_errors)
            self._warn_if_exempt(namespace_name, new_policy, request.object, result)
            return result
        old_policy, old_errors = self.policy_for_namespace(request.old_object)
        if new_errors and (not old_errors or new_errors != old_errors):
            raise self._invalid_labels(request, new_errors)
        # Existing pods only matter when the enforce level got stricter (or changed version).
        if new_policy.enforce == old_policy.enforce or new_policy.enforce.level == PRIVILEGED:
            return result
        if new_policy.enforce.minor == old_policy.enforce.minor and \
                LEVELS.index(new_policy.enforce.level) <= LEVELS.index(old_policy.enforce.level):
            return result
        if namespace_name in self._config.exemptions.namespaces:
            self._warn_if_exempt(namespace_name, new_policy, request.object, result)
            return result
        result.warnings.extend(self._check_existing_pods(namespace_name, new_policy.enforce))
        return result

    def _invalid_labels(self, request: AdmissionRequest, errors: Sequence[_LabelError]) -> AdmissionError:
        name = request.name or str(_at(request.object, ("metadata", "name")) or "")
        return AdmissionError.from_api_error(invalid("Namespace", name, [e.cause() for e in errors]))

    def _warn_if_exempt(self, namespace: str, policy: NamespacePolicy, obj: Mapping[str, Any],
                        result: AdmissionResult) -> None:
        if namespace not in self._config.exemptions.namespaces:
            return
        if policy.fully_privileged or policy == self._config.defaults:
            return
        labels = _labels(obj)
        parts = []
        for mode, level_label, version_label, level_version in (
                ("enforce", ENFORCE_LABEL, ENFORCE_VERSION_LABEL, policy.enforce),
                ("audit", AUDIT_LABEL, AUDIT_VERSION_LABEL, policy.audit),
                ("warn", WARN_LABEL, WARN_VERSION_LABEL, policy.warn)):
            if level_version.level != PRIVILEGED and (level_label in labels or version_label in labels):
                parts.append(f"{mode}={level_version}")
        result.warnings.append(f"namespace {go_quote(namespace)} is exempt from Pod Security, and the policy "
                               f"({', '.join(parts)}) will be ignored")

    def _check_existing_pods(self, namespace: str, enforce: LevelVersion) -> list[str]:
        if self._list_pods is None:
            return []
        try:
            pods = [p for p in self._list_pods(namespace) if isinstance(p, Mapping)]
        except Exception:  # the namespace update itself is fine; only the advice is missing
            return ["failed to list pods while checking new PodSecurity enforce level"]
        ordered = self._prioritized(pods)
        total = len(ordered)
        checked = ordered[:self._config.max_pods_to_check]
        counts: dict[str, tuple[str, int]] = {}  # warning -> (first pod name, pods)
        order: list[str] = []
        for pod in checked:
            failures = evaluate_pod(enforce.level, enforce.effective_minor, _map(pod.get("metadata")),
                                    _map(pod.get("spec")))
            if not failures:
                continue
            warning = ", ".join(f.reason for f in failures)
            name = str(_at(pod, ("metadata", "name")) or "")
            if warning not in counts:
                order.append(warning)
                counts[warning] = (name, 1)
            else:
                first, count = counts[warning]
                counts[warning] = (min(first, name), count + 1)
        warnings = []
        if len(checked) < total:
            warnings.append(f"new PodSecurity enforce level only checked against the first {len(checked)} "
                            f"of {total} existing pods")
        if order:
            warnings.append(f"existing pods in namespace {go_quote(namespace)} violate the new PodSecurity enforce "
                            f"level {go_quote(str(enforce))}")
        decorated = []
        for warning in order:
            name, count = counts[warning]
            if count == 1:
                decorated.append(f"{name}: {warning}")
            elif count == 2:
                decorated.append(f"{name} (and 1 other pod): {warning}")
            else:
                decorated.append(f"{name} (and {count - 1} other pods): {warning}")
        return warnings + sorted(decorated)

    def _prioritized(self, pods: list[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
        """One pod per controller first (they are usually alike), then the rest; exempt runtime classes out."""
        first, duplicates, seen = [], [], set()
        for pod in pods:
            if _map(pod.get("spec")).get("runtimeClassName") in self._config.exemptions.runtime_classes:
                continue
            owner = next((o for o in _list(_at(pod, ("metadata", "ownerReferences")))
                          if isinstance(o, Mapping) and o.get("controller") is True), None)
            if owner is None:
                first.append(pod)
            elif owner.get("uid") in seen:
                duplicates.append(pod)
            else:
                seen.add(owner.get("uid"))
                first.append(pod)
        return first + duplicates

    # -- pods and their owners -----------------------------------------------------------

    def _validate_pod(self, request: AdmissionRequest) -> AdmissionResult:
        if request.sub_resource in _IGNORED_POD_SUBRESOURCES:
            return AdmissionResult(request.object)
        exempt = self._exemption(request)
        if exempt:
            return AdmissionResult(request.object, audit_annotations={EXEMPT_ANNOTATION: exempt})
        if request.namespace_object is None:
            error = AdmissionError.from_api_error(internal(f"failed to lookup namespace {go_quote(request.namespace)}"))
            error.audit_annotations = {ERROR_ANNOTATION: error.message}
            raise error
        policy, errors = self.policy_for_namespace(request.namespace_object)
        if not errors and policy.fully_privileged:
            return AdmissionResult(request.object,
                                   audit_annotations={ENFORCED_POLICY_ANNOTATION: str(_PRIVILEGED_LATEST)})
        pod = request.object
        if not isinstance(pod, Mapping) or not isinstance(pod.get("spec"), Mapping):
            raise AdmissionError.from_api_error(bad_request("failed to decode pod"))
        if request.operation == UPDATE:
            if not isinstance(request.old_object, Mapping):
                raise AdmissionError.from_api_error(bad_request("failed to decode old pod"))
            if not _significant_pod_update(pod, request.old_object):
                return AdmissionResult(request.object)
        return self._evaluate(request, policy, errors, _map(pod.get("metadata")), _map(pod.get("spec")), enforce=True)

    def _validate_pod_template_owner(self, request: AdmissionRequest, path: Sequence[str]) -> AdmissionResult:
        if request.sub_resource:
            return AdmissionResult(request.object)
        exempt = self._exemption(request)
        if exempt:
            return AdmissionResult(request.object, audit_annotations={EXEMPT_ANNOTATION: exempt})
        if request.namespace_object is None:
            # Never denied: the pods themselves are checked when they are created.
            return AdmissionResult(request.object, audit_annotations={
                ERROR_ANNOTATION: f"failed to lookup namespace {go_quote(request.namespace)}"})
        policy, errors = self.policy_for_namespace(request.namespace_object)
        if not errors and policy.warn.level == PRIVILEGED and policy.audit.level == PRIVILEGED:
            return AdmissionResult(request.object)
        template = _at(request.object, path)
        if not isinstance(template, Mapping):
            return AdmissionResult(request.object)
        return self._evaluate(request, policy, errors, _map(template.get("metadata")), _map(template.get("spec")),
                              enforce=False)

    def _exemption(self, request: AdmissionRequest) -> str:
        exemptions = self._config.exemptions
        if request.namespace and request.namespace in exemptions.namespaces:
            return "namespace"
        if request.user_info.username and request.user_info.username in exemptions.usernames:
            return "user"
        return ""

    def _evaluate(self, request: AdmissionRequest, policy: NamespacePolicy, errors: Sequence[_LabelError],
                  metadata: Mapping[str, Any], spec: Mapping[str, Any], *, enforce: bool) -> AdmissionResult:
        runtime_class = spec.get("runtimeClassName")
        if runtime_class and runtime_class in self._config.exemptions.runtime_classes:
            return AdmissionResult(request.object, audit_annotations={EXEMPT_ANNOTATION: "runtimeClass"})
        annotations: dict[str, str] = {}
        if errors:
            annotations[ERROR_ANNOTATION] = f"Failed to parse policy: {_aggregate_errors(errors)}"
        cache: dict[LevelVersion, tuple[CheckResult, ...]] = {}

        def failures_for(level_version: LevelVersion) -> tuple[CheckResult, ...]:
            if level_version not in cache:
                cache[level_version] = evaluate_pod(level_version.level, level_version.effective_minor,
                                                    metadata, spec)
            return cache[level_version]

        denial = ""
        if enforce:
            annotations[ENFORCED_POLICY_ANNOTATION] = str(policy.enforce)
            failures = failures_for(policy.enforce)
            if failures:
                denial = f"violates PodSecurity {go_quote(str(policy.enforce))}: {aggregate_detail(failures)}"
        audit_failures = failures_for(policy.audit)
        if audit_failures:
            annotations[AUDIT_VIOLATIONS_ANNOTATION] = (f"would violate PodSecurity {go_quote(str(policy.audit))}: "
                                                        f"{aggregate_detail(audit_failures)}")
        if denial:
            group, resource = request.group_resource
            error = AdmissionError.from_api_error(forbidden(resource, request.name, denial, group))
            error.audit_annotations = annotations
            raise error
        warnings = []
        warn_failures = failures_for(policy.warn)
        if warn_failures:  # a request already denied gets no warnings, as upstream
            warnings.append(f"would violate PodSecurity {go_quote(str(policy.warn))}: "
                            f"{aggregate_detail(warn_failures)}")
        return AdmissionResult(request.object, warnings, annotations)


def _map(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _significant_pod_update(pod: Mapping[str, Any], old: Mapping[str, Any]) -> bool:
    """Whether an update changes what the standards judge (upstream: container lists and images)."""
    spec, old_spec = _map(pod.get("spec")), _map(old.get("spec"))
    for field_name in ("containers", "initContainers"):
        new_list, old_list = _list(spec.get(field_name)), _list(old_spec.get(field_name))
        if len(new_list) != len(old_list):
            return True
        if any(_map(a).get("image") != _map(b).get("image") for a, b in zip(new_list, old_list)):
            return True
    old_ephemeral = {_map(c).get("name"): _map(c) for c in _list(old_spec.get("ephemeralContainers"))}
    for container in _list(spec.get("ephemeralContainers")):
        previous = old_ephemeral.get(_map(container).get("name"))
        if previous is None or previous.get("image") != _map(container).get("image"):
            return True
    return False


# Re-exported for callers that build policies by level name.
BASELINE_LATEST = LevelVersion(BASELINE)
RESTRICTED_LATEST = LevelVersion(RESTRICTED)
