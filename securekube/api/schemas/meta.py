"""meta/v1 shapes every kind shares: TypeMeta's two fields, ObjectMeta, ListMeta, LabelSelector."""
from __future__ import annotations

from securekube.api.schema import (BOOLEAN, INT64, STRING, TIME, Field, GroupVersionKind, Object, array, field,
                                   free_form, map_of, obj)

META = "io.k8s.apimachinery.pkg.apis.meta.v1"

OWNER_REFERENCE = obj(
    f"{META}.OwnerReference", "A pointer to an object that owns this one, for garbage collection.",
    field("apiVersion", STRING, "Group and version of the owner, such as apps/v1.", required=True),
    field("blockOwnerDeletion", BOOLEAN, "When true, the owner cannot be deleted in the foreground until this "
                                         "object is gone."),
    field("controller", BOOLEAN, "True when the owner is the managing controller."),
    field("kind", STRING, "Kind of the owner.", required=True),
    field("name", STRING, "Name of the owner.", required=True),
    field("uid", STRING, "UID of the owner.", required=True),
)

MANAGED_FIELDS_ENTRY = obj(
    f"{META}.ManagedFieldsEntry", "Which fields one manager set, and through which operation.",
    field("apiVersion", STRING, "API version the field set is expressed in."),
    field("fieldsType", STRING, "Format of fieldsV1; only FieldsV1 exists."),
    field("fieldsV1", free_form(f"{META}.FieldsV1", "A set of field paths in upstream's trie format."),
          "The fields this manager owns."),
    field("manager", STRING, "Name of the manager (usually the client's name)."),
    field("operation", STRING, "Apply or Update: how the fields were set."),
    field("subresource", STRING, "Subresource the write went through, empty for the main resource."),
    field("time", TIME, "When this manager last changed its fields."),
)

OBJECT_META = obj(
    f"{META}.ObjectMeta", "Metadata every persisted object has: name, namespace, labels and bookkeeping.",
    field("annotations", map_of(STRING), "Free-form key/value notes that tools keep on the object."),
    field("creationTimestamp", TIME, "When the server created the object; set by the server."),
    field("deletionGracePeriodSeconds", INT64, "Seconds the object has left to stop gracefully once deletion began."),
    field("deletionTimestamp", TIME, "When the object will be removed; set by the server once deletion is asked."),
    field("finalizers", array(STRING), "Names of cleanups that must finish before the object is removed."),
    field("generateName", STRING, "Prefix the server completes into a unique name when name is empty."),
    field("generation", INT64, "Number of the desired-state revision; set by the server."),
    field("labels", map_of(STRING), "Key/value pairs that selectors match on."),
    field("managedFields", array(MANAGED_FIELDS_ENTRY), "Which manager set which fields; kept by the server."),
    field("name", STRING, "Name, unique among objects of the kind in its namespace."),
    field("namespace", STRING, "Namespace the object lives in; empty for cluster-scoped kinds."),
    field("ownerReferences", array(OWNER_REFERENCE), "Objects this one depends on, for garbage collection."),
    field("resourceVersion", STRING, "Opaque version of the object, for optimistic concurrency and watches."),
    field("selfLink", STRING, "Deprecated; never set."),
    field("uid", STRING, "Unique ID of this incarnation of the object; set by the server."),
)

SHARD_INFO = obj(
    f"{META}.ShardInfo", "Which shard of a sharded list this response covers.",
    field("selector", STRING, "The shard selector the list was filtered with.", required=True),
)

LIST_META = obj(
    f"{META}.ListMeta", "Metadata of a list response: its version and where to continue.",
    field("continue", STRING, "Token for the next page; empty on the last page."),
    field("remainingItemCount", INT64, "Estimate of the items left after this page."),
    field("resourceVersion", STRING, "Version of the collection this list reflects."),
    field("selfLink", STRING, "Deprecated; never set."),
    field("shardInfo", SHARD_INFO, "The shard this list covers, when the list was sharded."),
)

LABEL_SELECTOR_REQUIREMENT = obj(
    f"{META}.LabelSelectorRequirement", "One condition on a label: a key, an operator and values.",
    field("key", STRING, "The label key the condition tests.", required=True),
    field("operator", STRING, "One of In, NotIn, Exists or DoesNotExist.", required=True),
    field("values", array(STRING), "Values for In and NotIn; empty for Exists and DoesNotExist."),
)

LABEL_SELECTOR = obj(
    f"{META}.LabelSelector", "A query over labels; all of its conditions must hold, and an empty one selects all.",
    field("matchExpressions", array(LABEL_SELECTOR_REQUIREMENT), "Conditions that must all hold."),
    field("matchLabels", map_of(STRING), "Labels that must be present with exactly these values."),
)


def type_meta(api_version: str, kind: str) -> tuple[Field, Field]:
    """TypeMeta's apiVersion and kind, which every top-level object starts with."""
    return (field("apiVersion", STRING, f"Schema version of this object ({api_version})."),
            field("kind", STRING, f"Kind of this object ({kind})."))


def kind_object(name: str, description: str, gvk: GroupVersionKind, *fields: Field,
                metadata: Object = OBJECT_META) -> Object:
    """The top-level object of a kind: TypeMeta, metadata, then the kind's own fields, tagged with its GVK."""
    api_version = f"{gvk.group}/{gvk.version}" if gvk.group else gvk.version
    meta = field("metadata", metadata, "Standard list metadata: the collection's version and continue token."
                 if metadata is LIST_META else "Standard object metadata: name, namespace, labels and annotations.")
    ordered = sorted((*type_meta(api_version, gvk.kind), meta, *fields), key=lambda f: f.name)
    return Object(name, description, tuple(ordered), gvk=gvk)


def list_object(item: Object) -> Object:
    """The `<Kind>List` object a list request returns for `item`'s kind."""
    if item.gvk is None:
        raise ValueError(f"{item.name} is not a kind")
    gvk = GroupVersionKind(item.gvk.group, item.gvk.version, f"{item.gvk.kind}List")
    return kind_object(f"{item.name}List", f"A list of {item.gvk.kind} objects.", gvk,
                       field("items", array(item), f"The {item.gvk.kind} objects.", required=True),
                       metadata=LIST_META)
