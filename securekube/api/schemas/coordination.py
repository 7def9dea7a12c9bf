"""coordination.k8s.io/v1 Lease (node heartbeats, leader election)."""
from __future__ import annotations

from securekube.api.schema import INT32, MICRO_TIME, STRING, GroupVersionKind, field, obj
from securekube.api.schemas.meta import kind_object

LEASE_SPEC = obj(
    "io.k8s.api.coordination.v1.LeaseSpec", "Who holds a lease and until when.",
    field("acquireTime", MICRO_TIME, "When the current holder acquired the lease."),
    field("holderIdentity", STRING, "Identity of the current holder."),
    field("leaseDurationSeconds", INT32, "Seconds the holder's claim lasts after its last renewal."),
    field("leaseTransitions", INT32, "How many times the lease changed holders."),
    field("preferredHolder", STRING, "Holder that should take over, for coordinated leader election."),
    field("renewTime", MICRO_TIME, "When the holder last renewed the lease."),
    field("strategy", STRING, "How a new holder is chosen, for coordinated leader election."),
)

LEASE = kind_object(
    "io.k8s.api.coordination.v1.Lease", "A lease: a lock with a time limit, used for heartbeats and leader election.",
    GroupVersionKind("coordination.k8s.io", "v1", "Lease"),
    field("spec", LEASE_SPEC, "Who holds the lease and until when."),
)
