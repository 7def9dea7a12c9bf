"""core/v1 kinds other than Pod: Namespace, Secret, ConfigMap, ServiceAccount, Event and Node."""
from __future__ import annotations

from securekube.api.schema import (BOOLEAN, BYTES, INT32, INT64, MICRO_TIME, QUANTITY, STRING, TIME,
                                   GroupVersionKind, array, field, map_of, obj, string)
from securekube.api.schemas.meta import kind_object
from securekube.api.schemas.pod import TAINT_EFFECT
from securekube.api.schemas.volumes import LOCAL_OBJECT_REFERENCE

CORE = "io.k8s.api.core.v1"


def _gvk(kind: str) -> GroupVersionKind:
    return GroupVersionKind("", "v1", kind)


# --- Namespace --------------------------------------------------------------------------------

NAMESPACE_CONDITION = obj(
    f"{CORE}.NamespaceCondition", "One aspect of a namespace's state, such as a failed content deletion.",
    field("lastTransitionTime", TIME, "When the status last changed."),
    field("message", STRING, "Detail in words."),
    field("reason", STRING, "One-word reason for the last change."),
    field("status", STRING, "True, False or Unknown.", required=True),
    field("type", STRING, "Which condition this is.", required=True),
)

NAMESPACE = kind_object(
    f"{CORE}.Namespace", "A scope for names, policies and quotas.", _gvk("Namespace"),
    field("spec", obj(f"{CORE}.NamespaceSpec", "The desired state of a namespace.",
                      field("finalizers", array(STRING), "Cleanups that must finish before the namespace goes.")),
          "Desired state of the namespace."),
    field("status", obj(f"{CORE}.NamespaceStatus", "The observed state of a namespace.",
                        field("conditions", array(NAMESPACE_CONDITION), "Aspects of the namespace's state."),
                        field("phase", string("Active", "Terminating"), "Active, or Terminating while its content "
                                                                        "is deleted.")),
          "Observed state of the namespace."),
)

# --- Secret, ConfigMap, ServiceAccount -----------------------------------------------------------

SECRET = kind_object(
    f"{CORE}.Secret", "Confidential data such as passwords, tokens and keys; encrypted at rest in this lab.",
    _gvk("Secret"),
    field("data", map_of(BYTES), "The secret values, base64-encoded."),
    field("immutable", BOOLEAN, "When true, data cannot change after creation."),
    field("stringData", map_of(STRING), "Write-only plain-text values merged into data on write."),
    field("type", STRING, "What the secret holds, such as Opaque or kubernetes.io/tls."),
)

CONFIG_MAP = kind_object(
    f"{CORE}.ConfigMap", "Non-confidential configuration data for pods.", _gvk("ConfigMap"),
    field("binaryData", map_of(BYTES), "Binary values, base64-encoded."),
    field("data", map_of(STRING), "UTF-8 values."),
    field("immutable", BOOLEAN, "When true, the data cannot change after creation."),
)

OBJECT_REFERENCE = obj(
    f"{CORE}.ObjectReference", "A reference to an object of any kind, or to a field inside it.",
    field("apiVersion", STRING, "Group and version of the target, such as v1 or apps/v1."),
    field("fieldPath", STRING, "A field inside the object, such as spec.containers{app}."),
    field("kind", STRING, "Kind of the referenced object."),
    field("name", STRING, "Name of the referenced object."),
    field("namespace", STRING, "Namespace of the referenced object."),
    field("resourceVersion", STRING, "Version of the object the reference was made to."),
    field("uid", STRING, "UID of the referenced object."),
)

SERVICE_ACCOUNT = kind_object(
    f"{CORE}.ServiceAccount", "An identity for processes that run in pods.", _gvk("ServiceAccount"),
    field("automountServiceAccountToken", BOOLEAN, "Whether pods of this account get a token mounted by default."),
    field("imagePullSecrets", array(LOCAL_OBJECT_REFERENCE), "Registry credentials added to pods of this account."),
    field("secrets", array(OBJECT_REFERENCE), "Deprecated list of token secrets of this account."),
)

# --- Event ------------------------------------------------------------------------------------

EVENT = kind_object(
    f"{CORE}.Event", "A report of something that happened to an object.", _gvk("Event"),
    field("action", STRING, "What was done, or failed, about the object."),
    field("count", INT32, "How many times the event occurred."),
    field("eventTime", MICRO_TIME, "When the event was first observed, with microseconds."),
    field("firstTimestamp", TIME, "When the event was first recorded."),
    field("involvedObject", OBJECT_REFERENCE, "The object the event is about.", required=True),
    field("lastTimestamp", TIME, "When the event was last recorded."),
    field("message", STRING, "What happened, in words."),
    field("reason", STRING, "Short machine-readable reason, such as Scheduled."),
    field("related", OBJECT_REFERENCE, "A second object the event involves."),
    field("reportingComponent", STRING, "Which controller emitted the event, such as kubernetes.io/kubelet."),
    field("reportingInstance", STRING, "Instance of the controller that emitted the event."),
    field("series", obj(f"{CORE}.EventSeries", "A run of repeats of one event.",
                        field("count", INT32, "Occurrences in the series so far."),
                        field("lastObservedTime", MICRO_TIME, "When the last occurrence was seen.")),
          "Repeats of this event, when it recurs."),
    field("source", obj(f"{CORE}.EventSource", "The component that reported an event.",
                        field("component", STRING, "Component that reported the event."),
                        field("host", STRING, "Node the component runs on.")),
          "Component that reported the event."),
    field("type", STRING, "Normal or Warning."),
)

# --- Node -------------------------------------------------------------------------------------

TAINT = obj(
    f"{CORE}.Taint", "A mark on a node that repels pods which do not tolerate it.",
    field("effect", TAINT_EFFECT, "What the taint does to pods that do not tolerate it.", required=True),
    field("key", STRING, "Key of the taint.", required=True),
    field("timeAdded", TIME, "When a NoExecute taint was added."),
    field("value", STRING, "Value of the taint."),
)

CONFIG_MAP_NODE_CONFIG_SOURCE = obj(
    f"{CORE}.ConfigMapNodeConfigSource", "A ConfigMap holding kubelet configuration (a removed feature).",
    field("kubeletConfigKey", STRING, "Key holding the configuration.", required=True),
    field("name", STRING, "Name of the ConfigMap.", required=True),
    field("namespace", STRING, "Namespace of the ConfigMap.", required=True),
    field("resourceVersion", STRING, "Version of the ConfigMap in use."),
    field("uid", STRING, "UID of the ConfigMap."),
)

NODE_CONFIG_SOURCE = obj(
    f"{CORE}.NodeConfigSource", "Where a node's kubelet configuration came from (a removed feature).",
    field("configMap", CONFIG_MAP_NODE_CONFIG_SOURCE, "The ConfigMap holding it."),
)

NODE_SPEC = obj(
    f"{CORE}.NodeSpec", "How a node is to be used: taints, schedulability and addressing.",
    field("configSource", NODE_CONFIG_SOURCE, "Deprecated; no longer used by the kubelet."),
    field("externalID", STRING, "Deprecated; not used."),
    field("podCIDR", STRING, "Pod address range assigned to the node."),
    field("podCIDRs", array(STRING), "Pod address ranges assigned to the node, one per IP family."),
    field("podPreemptionPolicy", obj(f"{CORE}.NodePodPreemptionPolicy", "When pods on the node may be preempted.",
                                     field("disableResizePreemption", array(STRING),
                                           "Priority classes whose pods an in-place resize never preempts.")),
          "When pods on the node may be preempted."),
    field("providerID", STRING, "ID of the node at its cloud provider."),
    field("taints", array(TAINT), "Taints that repel pods without a matching toleration."),
    field("unschedulable", BOOLEAN, "When true, no new pods are scheduled here (kubectl cordon)."),
)

NODE_ADDRESS = obj(
    f"{CORE}.NodeAddress", "An address of a node.",
    field("address", STRING, "An IP address or DNS name.", required=True),
    field("type", STRING, "Hostname, InternalIP, ExternalIP, InternalDNS or ExternalDNS.", required=True),
)

NODE_CONDITION = obj(
    f"{CORE}.NodeCondition", "One aspect of a node's health, such as Ready or MemoryPressure.",
    field("lastHeartbeatTime", TIME, "When the kubelet last reported the condition."),
    field("lastTransitionTime", TIME, "When the status last changed."),
    field("message", STRING, "Detail in words."),
    field("reason", STRING, "One-word reason for the last change."),
    field("status", STRING, "True, False or Unknown.", required=True),
    field("type", STRING, "Which condition this is.", required=True),
)

NODE_CONFIG_STATUS = obj(
    f"{CORE}.NodeConfigStatus", "Which kubelet configuration a node uses (a removed feature).",
    field("active", NODE_CONFIG_SOURCE, "The configuration in use."),
    field("assigned", NODE_CONFIG_SOURCE, "The configuration the node was told to use."),
    field("error", STRING, "Why the assigned configuration could not be used."),
    field("lastKnownGood", NODE_CONFIG_SOURCE, "The configuration to fall back to."),
)

DAEMON_ENDPOINT = obj(
    f"{CORE}.DaemonEndpoint", "A port a node daemon listens on.",
    field("Port", INT32, "Port number.", required=True),
)

NODE_DAEMON_ENDPOINTS = obj(
    f"{CORE}.NodeDaemonEndpoints", "Where the daemons of a node listen.",
    field("kubeletEndpoint", DAEMON_ENDPOINT, "Where the kubelet's API listens."),
)

NODE_SYSTEM_INFO = obj(
    f"{CORE}.NodeSystemInfo", "Identifiers and versions of a node's machine and software.",
    field("architecture", STRING, "CPU architecture, such as amd64.", required=True),
    field("bootID", STRING, "ID of the current boot.", required=True),
    field("containerRuntimeVersion", STRING, "Container runtime, as <name>://<version>.", required=True),
    field("kernelVersion", STRING, "Kernel release, as uname -r reports it.", required=True),
    field("kubeProxyVersion", STRING, "Deprecated; not reliable.", required=True),
    field("kubeletVersion", STRING, "Version of the kubelet.", required=True),
    field("machineID", STRING, "Machine ID from /etc/machine-id.", required=True),
    field("operatingSystem", STRING, "Operating system, such as linux.", required=True),
    field("osImage", STRING, "Operating system release, such as Debian GNU/Linux 13.", required=True),
    field("runningInUserNamespace", BOOLEAN, "True when the node's own processes are in a user namespace."),
    field("swap", obj(f"{CORE}.NodeSwapStatus", "Swap memory of a node.",
                      field("capacity", INT64, "Total swap in bytes.")),
          "Swap memory of the node."),
    field("systemUUID", STRING, "System UUID reported by the firmware.", required=True),
)

CONTAINER_IMAGE = obj(
    f"{CORE}.ContainerImage", "An image present on a node.",
    field("names", array(STRING), "Digests and tags the image is known by."),
    field("sizeBytes", INT64, "Size of the image."),
)

NODE_RUNTIME_HANDLER = obj(
    f"{CORE}.NodeRuntimeHandler", "A runtime handler of the node and what it supports.",
    field("features", obj(f"{CORE}.NodeRuntimeHandlerFeatures", "What a runtime handler supports.",
                          field("recursiveReadOnlyMounts", BOOLEAN, "Whether recursive read-only mounts work."),
                          field("userNamespaces", BOOLEAN, "Whether pods can run in user namespaces.")),
          "What the handler supports."),
    field("name", STRING, "Handler name as RuntimeClasses refer to it; empty for the default."),
)

ATTACHED_VOLUME = obj(
    f"{CORE}.AttachedVolume", "A volume attached to a node.",
    field("devicePath", STRING, "Where the device appears on the node.", required=True),
    field("name", STRING, "Identifier of the volume.", required=True),
)

NODE_STATUS = obj(
    f"{CORE}.NodeStatus", "The observed state of a node, reported by its kubelet.",
    field("addresses", array(NODE_ADDRESS), "Addresses the node is reachable at."),
    field("allocatable", map_of(QUANTITY), "Resources available to pods, after system reservations."),
    field("capacity", map_of(QUANTITY), "Total resources of the node."),
    field("conditions", array(NODE_CONDITION), "Aspects of the node's health."),
    field("config", NODE_CONFIG_STATUS, "Deprecated kubelet configuration status."),
    field("daemonEndpoints", NODE_DAEMON_ENDPOINTS, "Ports the node's daemons listen on."),
    field("declaredFeatures", array(STRING), "Features the node declares it supports."),
    field("features", obj(f"{CORE}.NodeFeatures", "Features the node's software supports.",
                          field("supplementalGroupsPolicy", BOOLEAN,
                                "Whether supplementalGroupsPolicy is honoured.")),
          "Features the node's software supports."),
    field("images", array(CONTAINER_IMAGE), "Images present on the node, largest first."),
    field("nodeInfo", NODE_SYSTEM_INFO, "Identifiers and versions of the node."),
    field("phase", string("Pending", "Running", "Terminated"), "Deprecated lifecycle phase."),
    field("runtimeHandlers", array(NODE_RUNTIME_HANDLER), "Runtime handlers available on the node."),
    field("volumesAttached", array(ATTACHED_VOLUME), "Volumes an attach controller has connected to this node."),
    field("volumesInUse", array(STRING), "Volumes in use by pods on the node."),
)

NODE = kind_object(
    f"{CORE}.Node", "A machine that runs pods.", _gvk("Node"),
    field("spec", NODE_SPEC, "How the node is to be used."),
    field("status", NODE_STATUS, "Observed state, reported by the node's kubelet."),
)
