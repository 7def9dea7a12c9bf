"""The exceptions of audit recording: policy files, the signing key and the log itself.

Messages name files, fields and line numbers, never event contents or key material: a caller may
print them, and an audit event can carry anything a client sent.
"""


class AuditError(Exception):
    """Base of every audit recording error."""


class AuditPolicyError(AuditError):
    """An audit.k8s.io/v1 Policy file that cannot be used; the message lists every bad field."""


class AuditKeyError(AuditError):
    """The audit signing key is missing, unreadable, readable by others, or not Ed25519."""


class AuditLogError(AuditError):
    """Events could not be made durable (or the log cannot be opened); the request must fail."""
