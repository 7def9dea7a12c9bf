"""The two ways the kubelet refuses to run something, as upstream reports them.

- `PodAdmissionError`: the whole pod is rejected before anything runs (upstream: the pod goes to
  phase Failed with this `reason` and `message`, e.g. reason "AppArmor").
- `ContainerConfigError`: one container cannot be configured; it stays Waiting with reason
  `CreateContainerConfigError` and this message, and is never started.
"""
from __future__ import annotations


class PodAdmissionError(Exception):
    """The node refuses the pod; `reason` is upstream's CamelCase reason, the message its text."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


class ContainerConfigError(Exception):
    """A container's configuration cannot be turned into a runtime config (CreateContainerConfigError)."""

    reason = "CreateContainerConfigError"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
