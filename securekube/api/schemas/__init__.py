"""The field descriptions of every built-in kind, looked up by group, version and kind.

One module per area describes its kinds with the vocabulary of securekube/api/schema.py; the
OpenAPI documents and the fieldValidation maps are derived from these descriptions.
"""
from __future__ import annotations

from securekube.api.schema import Object
from securekube.api.schemas.certificates import CERTIFICATE_SIGNING_REQUEST
from securekube.api.schemas.coordination import LEASE
from securekube.api.schemas.core import CONFIG_MAP, EVENT, NAMESPACE, NODE, SECRET, SERVICE_ACCOUNT
from securekube.api.schemas.gatekeeper import CONSTRAINT_TEMPLATE
from securekube.api.schemas.pod import POD
from securekube.api.schemas.rbac import CLUSTER_ROLE, CLUSTER_ROLE_BINDING, ROLE, ROLE_BINDING

BUILT_IN_KINDS: tuple[Object, ...] = (
    NAMESPACE, POD, SECRET, CONFIG_MAP, SERVICE_ACCOUNT, EVENT, NODE, ROLE, CLUSTER_ROLE, ROLE_BINDING,
    CLUSTER_ROLE_BINDING, CERTIFICATE_SIGNING_REQUEST, LEASE, CONSTRAINT_TEMPLATE,
)


def kind_schema(group: str, version: str, kind: str) -> Object | None:
    """The description of a built-in kind, or None for a kind not described here."""
    for described in BUILT_IN_KINDS:
        gvk = described.gvk
        if gvk is not None and (gvk.group, gvk.version, gvk.kind) == (group, version, kind):
            return described
    return None
