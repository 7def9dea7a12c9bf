"""securekube's default audit policy, read from the same YAML file users are told to copy.

The file is docs/audit-policy.yaml in the source tree, so there is exactly one copy of the default
and the documentation cannot drift from what the server enforces.
"""
from __future__ import annotations

from pathlib import Path

from securekube.audit.errors import AuditPolicyError
from securekube.audit.policy import AuditPolicy

DEFAULT_POLICY_PATH = Path(__file__).resolve().parents[2] / "docs" / "audit-policy.yaml"


def default_policy() -> AuditPolicy:
    """The shipped default policy; raises AuditPolicyError if the file is missing from this installation."""
    if not DEFAULT_POLICY_PATH.is_file():
        raise AuditPolicyError(
            f"the default audit policy {DEFAULT_POLICY_PATH} is missing from this installation; "
            "run from a source checkout or pass an audit policy file explicitly")
    return AuditPolicy.load(DEFAULT_POLICY_PATH)
