"""Field tables for the Kubernetes protobuf messages securekube accepts as request bodies.

Each table maps a protobuf field number (from upstream ``generated.proto``) to the JSON name
the same Go field has, the value kind, and how Go's JSON encoder treats the field when it is
zero or unset. The decoder uses that to return exactly the dict the JSON form of the same
object would give:

* ``OMITEMPTY``  -- non-pointer Go field tagged ``omitempty``: dropped when zero.
* ``POINTER``    -- pointer Go field tagged ``omitempty``: present exactly when it was sent,
  even when its value is zero (``runAsUser: 0`` must not vanish).
* ``ALWAYS``     -- Go field without ``omitempty``, or a non-pointer struct: always present,
  its zero value when not sent (``"rules": null``, ``"status": {}``).
* ``NULLABLE``   -- pointer Go field without ``omitempty``: ``null`` when not sent.

Fields a table does not list are unknown and rejected by the decoder (fail closed).
"""
from __future__ import annotations

import enum
from dataclasses import dataclass
from types import MappingProxyType
from typing import Mapping


class Kind(enum.Enum):
    """What a field holds on the wire and in JSON."""

    STRING = "string"
    BYTES = "bytes"  # base64 in JSON
    BOOL = "bool"
    INT32 = "int32"
    INT64 = "int64"
    MESSAGE = "message"
    TIME = "Time"  # metav1.Time -> RFC 3339 string, null when zero
    QUANTITY = "Quantity"  # resource.Quantity -> its string
    INT_OR_STRING = "IntOrString"  # intstr.IntOrString -> int or string
    STRING_LIST = "ExtraValue"  # message wrapping `repeated string items = 1` -> list
    MUST_BE_EMPTY = "must-be-empty"  # accepted only with a zero value (e.g. PodStatus)
    UNSUPPORTED = "unsupported"  # a real upstream field securekube refuses to take


class Presence(enum.Enum):
    """How Go's encoding/json treats the field when it is zero or was not sent."""

    OMITEMPTY = "omitempty"
    POINTER = "pointer"
    ALWAYS = "always"
    NULLABLE = "nullable"


OMITEMPTY = Presence.OMITEMPTY
POINTER = Presence.POINTER
ALWAYS = Presence.ALWAYS
NULLABLE = Presence.NULLABLE

# Kinds that are Go structs: encoding/json never omits them for `omitempty`.
_STRUCT_KINDS = frozenset({Kind.MESSAGE, Kind.QUANTITY, Kind.INT_OR_STRING})


@dataclass(frozen=True)
class Field:
    """One field of a message: its JSON name, kind and presence rule."""

    json_name: str
    kind: Kind
    presence: Presence = OMITEMPTY
    repeated: bool = False
    map_value: Kind | None = None  # set for `map<string, V>` fields
    message: str = ""  # message name for MESSAGE kinds
    inline: bool = False  # Go embedded struct: its keys merge into the parent object
    reason: str = ""  # why an UNSUPPORTED field is refused
    allow_empty: bool = False  # UNSUPPORTED field that old clients send empty; ignored then

    def __post_init__(self) -> None:
        # A non-pointer struct is never dropped by encoding/json, so OMITEMPTY on one would
        # be a table bug that silently loses data.
        if (
            self.kind in _STRUCT_KINDS
            and not self.repeated
            and self.map_value is None
            and self.presence is OMITEMPTY
        ):
            raise ValueError(f"{self.json_name}: struct fields cannot be OMITEMPTY")
        if (self.kind is Kind.MESSAGE) != bool(self.message) and self.map_value is None:
            raise ValueError(f"{self.json_name}: message kind and message name go together")


@dataclass(frozen=True)
class Message:
    """A protobuf message: field number -> Field."""

    name: str
    fields: Mapping[int, Field]


# --- helpers that keep the tables readable -------------------------------------------------


def text(name: str, presence: Presence = OMITEMPTY) -> Field:
    return Field(name, Kind.STRING, presence)


def flag(name: str, presence: Presence = OMITEMPTY) -> Field:
    return Field(name, Kind.BOOL, presence)


def int32(name: str, presence: Presence = OMITEMPTY) -> Field:
    return Field(name, Kind.INT32, presence)


def int64(name: str, presence: Presence = OMITEMPTY) -> Field:
    return Field(name, Kind.INT64, presence)


def blob(name: str, presence: Presence = OMITEMPTY) -> Field:
    return Field(name, Kind.BYTES, presence)


def time(name: str, presence: Presence = ALWAYS) -> Field:
    return Field(name, Kind.TIME, presence)


def quantity(name: str, presence: Presence = ALWAYS) -> Field:
    return Field(name, Kind.QUANTITY, presence)


def int_or_string(name: str, presence: Presence = ALWAYS) -> Field:
    return Field(name, Kind.INT_OR_STRING, presence)


def nested(name: str, message: str, presence: Presence = ALWAYS) -> Field:
    return Field(name, Kind.MESSAGE, presence, message=message)


def inline(message: str) -> Field:
    return Field("", Kind.MESSAGE, ALWAYS, message=message, inline=True)


def text_list(name: str, presence: Presence = OMITEMPTY) -> Field:
    return Field(name, Kind.STRING, presence, repeated=True)


def int32_list(name: str, presence: Presence = OMITEMPTY) -> Field:
    return Field(name, Kind.INT32, presence, repeated=True)


def int64_list(name: str, presence: Presence = OMITEMPTY) -> Field:
    return Field(name, Kind.INT64, presence, repeated=True)


def nested_list(name: str, message: str, presence: Presence = OMITEMPTY) -> Field:
    return Field(name, Kind.MESSAGE, presence, repeated=True, message=message)


def text_map(name: str, presence: Presence = OMITEMPTY) -> Field:
    return Field(name, Kind.STRING, presence, map_value=Kind.STRING)


def bytes_map(name: str, presence: Presence = OMITEMPTY) -> Field:
    return Field(name, Kind.BYTES, presence, map_value=Kind.BYTES)


def quantity_map(name: str, presence: Presence = OMITEMPTY) -> Field:
    return Field(name, Kind.QUANTITY, presence, map_value=Kind.QUANTITY)


def extra_map(name: str, presence: Presence = OMITEMPTY) -> Field:
    return Field(name, Kind.STRING_LIST, presence, map_value=Kind.STRING_LIST)


def empty_only(name: str) -> Field:
    return Field(name, Kind.MUST_BE_EMPTY)


def unsupported(name: str, reason: str, *, allow_empty: bool = False) -> Field:
    return Field(name, Kind.UNSUPPORTED, reason=reason, allow_empty=allow_empty)


def _message(name: str, fields: dict[int, Field]) -> Message:
    return Message(name, MappingProxyType(fields))


_VOLUME_TYPE_UNSUPPORTED = "this volume type is not supported by securekube"

# --- k8s.io/apimachinery meta/v1 -----------------------------------------------------------

_META = [
    _message("ObjectMeta", {
        1: text("name"),
        2: text("generateName"),
        3: text("namespace"),
        4: text("selfLink"),
        5: text("uid"),
        6: text("resourceVersion"),
        7: int64("generation"),
        8: time("creationTimestamp", OMITEMPTY),  # tagged omitzero: dropped when zero
        9: time("deletionTimestamp", POINTER),
        10: int64("deletionGracePeriodSeconds", POINTER),
        11: text_map("labels"),
        12: text_map("annotations"),
        13: nested_list("ownerReferences", "OwnerReference"),
        14: text_list("finalizers"),
        # Clients older than 1.25 always send the removed clusterName field, empty.
        15: unsupported("clusterName", "clusterName was removed in Kubernetes 1.25",
                        allow_empty=True),
        16: unsupported("initializers", "initializers were removed in Kubernetes 1.14"),
        17: unsupported("managedFields", "managedFields are maintained by the server"),
    }),
    _message("OwnerReference", {
        5: text("apiVersion", ALWAYS),
        1: text("kind", ALWAYS),
        3: text("name", ALWAYS),
        4: text("uid", ALWAYS),
        6: flag("controller", POINTER),
        7: flag("blockOwnerDeletion", POINTER),
    }),
    _message("LabelSelector", {
        1: text_map("matchLabels"),
        2: nested_list("matchExpressions", "LabelSelectorRequirement"),
    }),
    _message("LabelSelectorRequirement", {
        1: text("key", ALWAYS),
        2: text("operator", ALWAYS),
        3: text_list("values"),
    }),
    _message("DeleteOptions", {
        1: int64("gracePeriodSeconds", POINTER),
        2: nested("preconditions", "Preconditions", POINTER),
        3: flag("orphanDependents", POINTER),
        4: text("propagationPolicy", POINTER),
        5: text_list("dryRun"),
        6: flag("ignoreStoreReadErrorWithClusterBreakingPotential", POINTER),
    }),
    _message("Preconditions", {
        1: text("uid", POINTER),
        2: text("resourceVersion", POINTER),
    }),
]

# --- k8s.io/api core/v1: Namespace, ConfigMap, Secret, ServiceAccount -----------------------

_CORE_SIMPLE = [
    _message("Namespace", {
        1: nested("metadata", "ObjectMeta"),
        2: nested("spec", "NamespaceSpec"),
        3: nested("status", "NamespaceStatus"),
    }),
    _message("NamespaceSpec", {1: text_list("finalizers")}),
    _message("NamespaceStatus", {
        1: text("phase"),
        2: nested_list("conditions", "NamespaceCondition"),
    }),
    _message("NamespaceCondition", {
        1: text("type", ALWAYS),
        2: text("status", ALWAYS),
        4: time("lastTransitionTime"),
        5: text("reason"),
        6: text("message"),
    }),
    _message("ConfigMap", {
        1: nested("metadata", "ObjectMeta"),
        4: flag("immutable", POINTER),
        2: text_map("data"),
        3: bytes_map("binaryData"),
    }),
    _message("Secret", {
        1: nested("metadata", "ObjectMeta"),
        5: flag("immutable", POINTER),
        2: bytes_map("data"),
        4: text_map("stringData"),
        3: text("type"),
    }),
    _message("ServiceAccount", {
        1: nested("metadata", "ObjectMeta"),
        2: nested_list("secrets", "ObjectReference"),
        3: nested_list("imagePullSecrets", "LocalObjectReference"),
        4: flag("automountServiceAccountToken", POINTER),
    }),
    _message("ObjectReference", {
        1: text("kind"),
        2: text("namespace"),
        3: text("name"),
        4: text("uid"),
        5: text("apiVersion"),
        6: text("resourceVersion"),
        7: text("fieldPath"),
    }),
    _message("LocalObjectReference", {1: text("name")}),
]

# --- k8s.io/api core/v1: Pod ------------------------------------------------------------------

_POD = [
    _message("Pod", {
        1: nested("metadata", "ObjectMeta"),
        2: nested("spec", "PodSpec"),
        3: nested("status", "PodStatus"),
    }),
    # Status is written by the kubelet through the status subresource, never by a create.
    _message("PodStatus", {
        1: empty_only("phase"),
        2: empty_only("conditions"),
        3: empty_only("message"),
        4: empty_only("reason"),
        5: empty_only("hostIP"),
        6: empty_only("podIP"),
        7: empty_only("startTime"),
        8: empty_only("containerStatuses"),
        9: empty_only("qosClass"),
        10: empty_only("initContainerStatuses"),
        11: empty_only("nominatedNodeName"),
        12: empty_only("podIPs"),
        13: empty_only("ephemeralContainerStatuses"),
        14: empty_only("resize"),
        15: empty_only("resourceClaimStatuses"),
        16: empty_only("hostIPs"),
        17: empty_only("observedGeneration"),
        18: empty_only("extendedResourceClaimStatus"),
        19: empty_only("allocatedResources"),
        20: empty_only("resources"),
    }),
    _message("PodSpec", {
        1: nested_list("volumes", "Volume"),
        20: nested_list("initContainers", "Container"),
        2: nested_list("containers", "Container", ALWAYS),
        34: unsupported("ephemeralContainers",
                        "ephemeral containers are added through the ephemeralcontainers subresource"),
        3: text("restartPolicy"),
        4: int64("terminationGracePeriodSeconds", POINTER),
        5: int64("activeDeadlineSeconds", POINTER),
        6: text("dnsPolicy"),
        7: text_map("nodeSelector"),
        8: text("serviceAccountName"),
        9: text("serviceAccount"),
        21: flag("automountServiceAccountToken", POINTER),
        10: text("nodeName"),
        11: flag("hostNetwork"),
        12: flag("hostPID"),
        13: flag("hostIPC"),
        27: flag("shareProcessNamespace", POINTER),
        14: nested("securityContext", "PodSecurityContext", POINTER),
        15: nested_list("imagePullSecrets", "LocalObjectReference"),
        16: text("hostname"),
        17: text("subdomain"),
        18: nested("affinity", "Affinity", POINTER),
        19: text("schedulerName"),
        22: nested_list("tolerations", "Toleration"),
        23: nested_list("hostAliases", "HostAlias"),
        24: text("priorityClassName"),
        25: int32("priority", POINTER),
        26: nested("dnsConfig", "PodDNSConfig", POINTER),
        28: nested_list("readinessGates", "PodReadinessGate"),
        29: text("runtimeClassName", POINTER),
        30: flag("enableServiceLinks", POINTER),
        31: text("preemptionPolicy", POINTER),
        32: quantity_map("overhead"),
        33: nested_list("topologySpreadConstraints", "TopologySpreadConstraint"),
        35: flag("setHostnameAsFQDN", POINTER),
        36: nested("os", "PodOS", POINTER),
        37: flag("hostUsers", POINTER),
        38: nested_list("schedulingGates", "PodSchedulingGate"),
        39: nested_list("resourceClaims", "PodResourceClaim"),
        40: nested("resources", "ResourceRequirements", POINTER),
        41: text("hostnameOverride", POINTER),
    }),
    _message("Container", {
        1: text("name", ALWAYS),
        2: text("image"),
        3: text_list("command"),
        4: text_list("args"),
        5: text("workingDir"),
        6: nested_list("ports", "ContainerPort"),
        19: nested_list("envFrom", "EnvFromSource"),
        7: nested_list("env", "EnvVar"),
        8: nested("resources", "ResourceRequirements"),
        23: nested_list("resizePolicy", "ContainerResizePolicy"),
        24: text("restartPolicy", POINTER),
        25: nested_list("restartPolicyRules", "ContainerRestartRule"),
        9: nested_list("volumeMounts", "VolumeMount"),
        21: nested_list("volumeDevices", "VolumeDevice"),
        10: nested("livenessProbe", "Probe", POINTER),
        11: nested("readinessProbe", "Probe", POINTER),
        22: nested("startupProbe", "Probe", POINTER),
        12: nested("lifecycle", "Lifecycle", POINTER),
        13: text("terminationMessagePath"),
        20: text("terminationMessagePolicy"),
        14: text("imagePullPolicy"),
        15: nested("securityContext", "SecurityContext", POINTER),
        16: flag("stdin"),
        17: flag("stdinOnce"),
        18: flag("tty"),
    }),
    _message("ContainerPort", {
        1: text("name"),
        2: int32("hostPort"),
        3: int32("containerPort", ALWAYS),
        4: text("protocol"),
        5: text("hostIP"),
    }),
    _message("EnvVar", {
        1: text("name", ALWAYS),
        2: text("value"),
        3: nested("valueFrom", "EnvVarSource", POINTER),
    }),
    _message("EnvVarSource", {
        1: nested("fieldRef", "ObjectFieldSelector", POINTER),
        2: nested("resourceFieldRef", "ResourceFieldSelector", POINTER),
        3: nested("configMapKeyRef", "ConfigMapKeySelector", POINTER),
        4: nested("secretKeyRef", "SecretKeySelector", POINTER),
        5: nested("fileKeyRef", "FileKeySelector", POINTER),
    }),
    _message("ObjectFieldSelector", {
        1: text("apiVersion"),
        2: text("fieldPath", ALWAYS),
    }),
    _message("ResourceFieldSelector", {
        1: text("containerName"),
        2: text("resource", ALWAYS),
        3: quantity("divisor"),
    }),
    _message("ConfigMapKeySelector", {
        1: inline("LocalObjectReference"),
        2: text("key", ALWAYS),
        3: flag("optional", POINTER),
    }),
    _message("SecretKeySelector", {
        1: inline("LocalObjectReference"),
        2: text("key", ALWAYS),
        3: flag("optional", POINTER),
    }),
    _message("FileKeySelector", {
        1: text("volumeName", ALWAYS),
        2: text("path", ALWAYS),
        3: text("key", ALWAYS),
        4: flag("optional", POINTER),
    }),
    _message("EnvFromSource", {
        1: text("prefix"),
        2: nested("configMapRef", "ConfigMapEnvSource", POINTER),
        3: nested("secretRef", "SecretEnvSource", POINTER),
    }),
    _message("ConfigMapEnvSource", {
        1: inline("LocalObjectReference"),
        2: flag("optional", POINTER),
    }),
    _message("SecretEnvSource", {
        1: inline("LocalObjectReference"),
        2: flag("optional", POINTER),
    }),
    _message("ResourceRequirements", {
        1: quantity_map("limits"),
        2: quantity_map("requests"),
        3: nested_list("claims", "ResourceClaim"),
    }),
    _message("ResourceClaim", {
        1: text("name", ALWAYS),
        2: text("request"),
    }),
    _message("ContainerResizePolicy", {
        1: text("resourceName", ALWAYS),
        2: text("restartPolicy", ALWAYS),
    }),
    _message("ContainerRestartRule", {
        1: text("action"),
        2: nested("exitCodes", "ContainerRestartRuleOnExitCodes", POINTER),
    }),
    _message("ContainerRestartRuleOnExitCodes", {
        1: text("operator"),
        2: int32_list("values"),
    }),
    _message("VolumeMount", {
        1: text("name", ALWAYS),
        2: flag("readOnly"),
        7: text("recursiveReadOnly", POINTER),
        3: text("mountPath", ALWAYS),
        4: text("subPath"),
        5: text("mountPropagation", POINTER),
        6: text("subPathExpr"),
    }),
    _message("VolumeDevice", {
        1: text("name", ALWAYS),
        2: text("devicePath", ALWAYS),
    }),
    _message("Probe", {
        1: inline("ProbeHandler"),
        2: int32("initialDelaySeconds"),
        3: int32("timeoutSeconds"),
        4: int32("periodSeconds"),
        5: int32("successThreshold"),
        6: int32("failureThreshold"),
        7: int64("terminationGracePeriodSeconds", POINTER),
    }),
    _message("ProbeHandler", {
        1: nested("exec", "ExecAction", POINTER),
        2: nested("httpGet", "HTTPGetAction", POINTER),
        3: nested("tcpSocket", "TCPSocketAction", POINTER),
        4: nested("grpc", "GRPCAction", POINTER),
    }),
    _message("ExecAction", {1: text_list("command")}),
    _message("HTTPGetAction", {
        1: text("path"),
        2: int_or_string("port"),
        3: text("host"),
        4: text("scheme"),
        5: nested_list("httpHeaders", "HTTPHeader"),
    }),
    _message("HTTPHeader", {
        1: text("name", ALWAYS),
        2: text("value", ALWAYS),
    }),
    _message("TCPSocketAction", {
        1: int_or_string("port"),
        2: text("host"),
    }),
    _message("GRPCAction", {
        1: int32("port", ALWAYS),
        2: text("service", NULLABLE),
    }),
    _message("Lifecycle", {
        1: nested("postStart", "LifecycleHandler", POINTER),
        2: nested("preStop", "LifecycleHandler", POINTER),
        3: text("stopSignal", POINTER),
    }),
    _message("LifecycleHandler", {
        1: nested("exec", "ExecAction", POINTER),
        2: nested("httpGet", "HTTPGetAction", POINTER),
        3: nested("tcpSocket", "TCPSocketAction", POINTER),
        4: nested("sleep", "SleepAction", POINTER),
    }),
    _message("SleepAction", {1: int64("seconds", ALWAYS)}),
    _message("SecurityContext", {
        1: nested("capabilities", "Capabilities", POINTER),
        2: flag("privileged", POINTER),
        3: nested("seLinuxOptions", "SELinuxOptions", POINTER),
        10: nested("windowsOptions", "WindowsSecurityContextOptions", POINTER),
        4: int64("runAsUser", POINTER),
        8: int64("runAsGroup", POINTER),
        5: flag("runAsNonRoot", POINTER),
        6: flag("readOnlyRootFilesystem", POINTER),
        7: flag("allowPrivilegeEscalation", POINTER),
        9: text("procMount", POINTER),
        11: nested("seccompProfile", "SeccompProfile", POINTER),
        12: nested("appArmorProfile", "AppArmorProfile", POINTER),
    }),
    _message("Capabilities", {
        1: text_list("add"),
        2: text_list("drop"),
    }),
    _message("SELinuxOptions", {
        1: text("user"),
        2: text("role"),
        3: text("type"),
        4: text("level"),
    }),
    _message("WindowsSecurityContextOptions", {
        1: text("gmsaCredentialSpecName", POINTER),
        2: text("gmsaCredentialSpec", POINTER),
        3: text("runAsUserName", POINTER),
        4: flag("hostProcess", POINTER),
    }),
    _message("SeccompProfile", {
        1: text("type", ALWAYS),
        2: text("localhostProfile", POINTER),
    }),
    _message("AppArmorProfile", {
        1: text("type", ALWAYS),
        2: text("localhostProfile", POINTER),
    }),
    _message("PodSecurityContext", {
        1: nested("seLinuxOptions", "SELinuxOptions", POINTER),
        8: nested("windowsOptions", "WindowsSecurityContextOptions", POINTER),
        2: int64("runAsUser", POINTER),
        6: int64("runAsGroup", POINTER),
        3: flag("runAsNonRoot", POINTER),
        4: int64_list("supplementalGroups"),
        12: text("supplementalGroupsPolicy", POINTER),
        5: int64("fsGroup", POINTER),
        7: nested_list("sysctls", "Sysctl"),
        9: text("fsGroupChangePolicy", POINTER),
        10: nested("seccompProfile", "SeccompProfile", POINTER),
        11: nested("appArmorProfile", "AppArmorProfile", POINTER),
        13: text("seLinuxChangePolicy", POINTER),
    }),
    _message("Sysctl", {
        1: text("name", ALWAYS),
        2: text("value", ALWAYS),
    }),
    _message("Toleration", {
        1: text("key"),
        2: text("operator"),
        3: text("value"),
        4: text("effect"),
        5: int64("tolerationSeconds", POINTER),
    }),
    _message("HostAlias", {
        1: text("ip", ALWAYS),
        2: text_list("hostnames"),
    }),
    _message("PodDNSConfig", {
        1: text_list("nameservers"),
        2: text_list("searches"),
        3: nested_list("options", "PodDNSConfigOption"),
    }),
    _message("PodDNSConfigOption", {
        1: text("name"),
        2: text("value", POINTER),
    }),
    _message("PodReadinessGate", {1: text("conditionType", ALWAYS)}),
    _message("TopologySpreadConstraint", {
        1: int32("maxSkew", ALWAYS),
        2: text("topologyKey", ALWAYS),
        3: text("whenUnsatisfiable", ALWAYS),
        4: nested("labelSelector", "LabelSelector", POINTER),
        5: int32("minDomains", POINTER),
        6: text("nodeAffinityPolicy", POINTER),
        7: text("nodeTaintsPolicy", POINTER),
        8: text_list("matchLabelKeys"),
    }),
    _message("PodOS", {1: text("name", ALWAYS)}),
    _message("PodSchedulingGate", {1: text("name", ALWAYS)}),
    _message("PodResourceClaim", {
        1: text("name", ALWAYS),
        3: text("resourceClaimName", POINTER),
        4: text("resourceClaimTemplateName", POINTER),
    }),
    _message("Affinity", {
        1: nested("nodeAffinity", "NodeAffinity", POINTER),
        2: nested("podAffinity", "PodAffinity", POINTER),
        3: nested("podAntiAffinity", "PodAntiAffinity", POINTER),
    }),
    _message("NodeAffinity", {
        1: nested("requiredDuringSchedulingIgnoredDuringExecution", "NodeSelector", POINTER),
        2: nested_list("preferredDuringSchedulingIgnoredDuringExecution",
                       "PreferredSchedulingTerm"),
    }),
    _message("NodeSelector", {
        1: nested_list("nodeSelectorTerms", "NodeSelectorTerm", ALWAYS),
    }),
    _message("NodeSelectorTerm", {
        1: nested_list("matchExpressions", "NodeSelectorRequirement"),
        2: nested_list("matchFields", "NodeSelectorRequirement"),
    }),
    _message("NodeSelectorRequirement", {
        1: text("key", ALWAYS),
        2: text("operator", ALWAYS),
        3: text_list("values"),
    }),
    _message("PreferredSchedulingTerm", {
        1: int32("weight", ALWAYS),
        2: nested("preference", "NodeSelectorTerm"),
    }),
    _message("PodAffinity", {
        1: nested_list("requiredDuringSchedulingIgnoredDuringExecution", "PodAffinityTerm"),
        2: nested_list("preferredDuringSchedulingIgnoredDuringExecution",
                       "WeightedPodAffinityTerm"),
    }),
    _message("PodAntiAffinity", {
        1: nested_list("requiredDuringSchedulingIgnoredDuringExecution", "PodAffinityTerm"),
        2: nested_list("preferredDuringSchedulingIgnoredDuringExecution",
                       "WeightedPodAffinityTerm"),
    }),
    _message("PodAffinityTerm", {
        1: nested("labelSelector", "LabelSelector", POINTER),
        2: text_list("namespaces"),
        3: text("topologyKey", ALWAYS),
        4: nested("namespaceSelector", "LabelSelector", POINTER),
        5: text_list("matchLabelKeys"),
        6: text_list("mismatchLabelKeys"),
    }),
    _message("WeightedPodAffinityTerm", {
        1: int32("weight", ALWAYS),
        2: nested("podAffinityTerm", "PodAffinityTerm"),
    }),
]

# --- k8s.io/api core/v1: volumes -----------------------------------------------------------

_VOLUMES = [
    _message("Volume", {
        1: text("name", ALWAYS),
        2: inline("VolumeSource"),
    }),
    _message("VolumeSource", {
        1: nested("hostPath", "HostPathVolumeSource", POINTER),
        2: nested("emptyDir", "EmptyDirVolumeSource", POINTER),
        3: unsupported("gcePersistentDisk", _VOLUME_TYPE_UNSUPPORTED),
        4: unsupported("awsElasticBlockStore", _VOLUME_TYPE_UNSUPPORTED),
        5: unsupported("gitRepo", _VOLUME_TYPE_UNSUPPORTED),
        6: nested("secret", "SecretVolumeSource", POINTER),
        7: nested("nfs", "NFSVolumeSource", POINTER),
        8: unsupported("iscsi", _VOLUME_TYPE_UNSUPPORTED),
        9: unsupported("glusterfs", _VOLUME_TYPE_UNSUPPORTED),
        10: nested("persistentVolumeClaim", "PersistentVolumeClaimVolumeSource", POINTER),
        11: unsupported("rbd", _VOLUME_TYPE_UNSUPPORTED),
        12: unsupported("flexVolume", _VOLUME_TYPE_UNSUPPORTED),
        13: unsupported("cinder", _VOLUME_TYPE_UNSUPPORTED),
        14: unsupported("cephfs", _VOLUME_TYPE_UNSUPPORTED),
        15: unsupported("flocker", _VOLUME_TYPE_UNSUPPORTED),
        16: nested("downwardAPI", "DownwardAPIVolumeSource", POINTER),
        17: unsupported("fc", _VOLUME_TYPE_UNSUPPORTED),
        18: unsupported("azureFile", _VOLUME_TYPE_UNSUPPORTED),
        19: nested("configMap", "ConfigMapVolumeSource", POINTER),
        20: unsupported("vsphereVolume", _VOLUME_TYPE_UNSUPPORTED),
        21: unsupported("quobyte", _VOLUME_TYPE_UNSUPPORTED),
        22: unsupported("azureDisk", _VOLUME_TYPE_UNSUPPORTED),
        23: unsupported("photonPersistentDisk", _VOLUME_TYPE_UNSUPPORTED),
        24: unsupported("portworxVolume", _VOLUME_TYPE_UNSUPPORTED),
        25: unsupported("scaleIO", _VOLUME_TYPE_UNSUPPORTED),
        26: nested("projected", "ProjectedVolumeSource", POINTER),
        27: unsupported("storageos", _VOLUME_TYPE_UNSUPPORTED),
        28: nested("csi", "CSIVolumeSource", POINTER),
        29: unsupported("ephemeral", _VOLUME_TYPE_UNSUPPORTED),
        30: nested("image", "ImageVolumeSource", POINTER),
    }),
    _message("HostPathVolumeSource", {
        1: text("path", ALWAYS),
        2: text("type", POINTER),
    }),
    _message("EmptyDirVolumeSource", {
        1: text("medium"),
        2: quantity("sizeLimit", POINTER),
    }),
    _message("SecretVolumeSource", {
        1: text("secretName"),
        2: nested_list("items", "KeyToPath"),
        3: int32("defaultMode", POINTER),
        4: flag("optional", POINTER),
    }),
    _message("ConfigMapVolumeSource", {
        1: inline("LocalObjectReference"),
        2: nested_list("items", "KeyToPath"),
        3: int32("defaultMode", POINTER),
        4: flag("optional", POINTER),
    }),
    _message("KeyToPath", {
        1: text("key", ALWAYS),
        2: text("path", ALWAYS),
        3: int32("mode", POINTER),
    }),
    _message("NFSVolumeSource", {
        1: text("server", ALWAYS),
        2: text("path", ALWAYS),
        3: flag("readOnly"),
    }),
    _message("PersistentVolumeClaimVolumeSource", {
        1: text("claimName", ALWAYS),
        2: flag("readOnly"),
    }),
    _message("DownwardAPIVolumeSource", {
        1: nested_list("items", "DownwardAPIVolumeFile"),
        2: int32("defaultMode", POINTER),
    }),
    _message("DownwardAPIVolumeFile", {
        1: text("path", ALWAYS),
        2: nested("fieldRef", "ObjectFieldSelector", POINTER),
        3: nested("resourceFieldRef", "ResourceFieldSelector", POINTER),
        4: int32("mode", POINTER),
    }),
    _message("ProjectedVolumeSource", {
        1: nested_list("sources", "VolumeProjection", ALWAYS),
        2: int32("defaultMode", POINTER),
    }),
    _message("VolumeProjection", {
        1: nested("secret", "SecretProjection", POINTER),
        2: nested("downwardAPI", "DownwardAPIProjection", POINTER),
        3: nested("configMap", "ConfigMapProjection", POINTER),
        4: nested("serviceAccountToken", "ServiceAccountTokenProjection", POINTER),
        5: unsupported("clusterTrustBundle", "this projection is not supported by securekube"),
        6: unsupported("podCertificate", "this projection is not supported by securekube"),
    }),
    _message("SecretProjection", {
        1: inline("LocalObjectReference"),
        2: nested_list("items", "KeyToPath"),
        4: flag("optional", POINTER),
    }),
    _message("ConfigMapProjection", {
        1: inline("LocalObjectReference"),
        2: nested_list("items", "KeyToPath"),
        4: flag("optional", POINTER),
    }),
    _message("DownwardAPIProjection", {
        1: nested_list("items", "DownwardAPIVolumeFile"),
    }),
    _message("ServiceAccountTokenProjection", {
        1: text("audience"),
        2: int64("expirationSeconds", POINTER),
        3: text("path", ALWAYS),
    }),
    _message("CSIVolumeSource", {
        1: text("driver", ALWAYS),
        2: flag("readOnly", POINTER),
        3: text("fsType", POINTER),
        4: text_map("volumeAttributes"),
        5: nested("nodePublishSecretRef", "LocalObjectReference", POINTER),
    }),
    _message("ImageVolumeSource", {
        1: text("reference"),
        2: text("pullPolicy"),
    }),
]

# --- k8s.io/api rbac/v1 --------------------------------------------------------------------

_RBAC = [
    _message("Role", {
        1: nested("metadata", "ObjectMeta"),
        2: nested_list("rules", "PolicyRule", ALWAYS),
    }),
    _message("ClusterRole", {
        1: nested("metadata", "ObjectMeta"),
        2: nested_list("rules", "PolicyRule", ALWAYS),
        3: nested("aggregationRule", "AggregationRule", POINTER),
    }),
    _message("AggregationRule", {
        1: nested_list("clusterRoleSelectors", "LabelSelector"),
    }),
    _message("PolicyRule", {
        1: text_list("verbs", ALWAYS),
        2: text_list("apiGroups"),
        3: text_list("resources"),
        4: text_list("resourceNames"),
        5: text_list("nonResourceURLs"),
    }),
    _message("RoleBinding", {
        1: nested("metadata", "ObjectMeta"),
        2: nested_list("subjects", "Subject"),
        3: nested("roleRef", "RoleRef"),
    }),
    _message("ClusterRoleBinding", {
        1: nested("metadata", "ObjectMeta"),
        2: nested_list("subjects", "Subject"),
        3: nested("roleRef", "RoleRef"),
    }),
    _message("Subject", {
        1: text("kind", ALWAYS),
        2: text("apiGroup"),
        3: text("name", ALWAYS),
        4: text("namespace"),
    }),
    _message("RoleRef", {
        1: text("apiGroup", ALWAYS),
        2: text("kind", ALWAYS),
        3: text("name", ALWAYS),
    }),
]

# --- k8s.io/api authentication/v1 ----------------------------------------------------------

_AUTHENTICATION = [
    _message("TokenRequest", {
        1: nested("metadata", "ObjectMeta"),
        2: nested("spec", "TokenRequestSpec"),
        3: nested("status", "TokenRequestStatus"),
    }),
    _message("TokenRequestSpec", {
        1: text_list("audiences", ALWAYS),
        4: int64("expirationSeconds", NULLABLE),
        3: nested("boundObjectRef", "BoundObjectReference", NULLABLE),
    }),
    _message("TokenRequestStatus", {
        1: text("token", ALWAYS),
        2: time("expirationTimestamp"),
    }),
    _message("BoundObjectReference", {
        1: text("kind"),
        2: text("apiVersion"),
        3: text("name"),
        4: text("uid"),
    }),
    _message("TokenReview", {
        1: nested("metadata", "ObjectMeta"),
        2: nested("spec", "TokenReviewSpec"),
        3: nested("status", "TokenReviewStatus"),
    }),
    _message("TokenReviewSpec", {
        1: text("token"),
        2: text_list("audiences"),
    }),
    _message("TokenReviewStatus", {
        1: flag("authenticated"),
        2: nested("user", "UserInfo"),
        4: text_list("audiences"),
        3: text("error"),
    }),
    _message("UserInfo", {
        1: text("username"),
        2: text("uid"),
        3: text_list("groups"),
        4: extra_map("extra"),
    }),
    _message("SelfSubjectReview", {
        1: nested("metadata", "ObjectMeta"),
        2: nested("status", "SelfSubjectReviewStatus"),
    }),
    _message("SelfSubjectReviewStatus", {
        1: nested("userInfo", "UserInfo"),
    }),
]

# --- k8s.io/api authorization/v1 -----------------------------------------------------------

_AUTHORIZATION = [
    _message("SelfSubjectAccessReview", {
        1: nested("metadata", "ObjectMeta"),
        2: nested("spec", "SelfSubjectAccessReviewSpec"),
        3: nested("status", "SubjectAccessReviewStatus"),
    }),
    _message("SelfSubjectAccessReviewSpec", {
        1: nested("resourceAttributes", "ResourceAttributes", POINTER),
        2: nested("nonResourceAttributes", "NonResourceAttributes", POINTER),
    }),
    _message("SubjectAccessReview", {
        1: nested("metadata", "ObjectMeta"),
        2: nested("spec", "SubjectAccessReviewSpec"),
        3: nested("status", "SubjectAccessReviewStatus"),
    }),
    _message("LocalSubjectAccessReview", {
        1: nested("metadata", "ObjectMeta"),
        2: nested("spec", "SubjectAccessReviewSpec"),
        3: nested("status", "SubjectAccessReviewStatus"),
    }),
    _message("SubjectAccessReviewSpec", {
        1: nested("resourceAttributes", "ResourceAttributes", POINTER),
        2: nested("nonResourceAttributes", "NonResourceAttributes", POINTER),
        3: text("user"),
        4: text_list("groups"),
        5: extra_map("extra"),
        6: text("uid"),
    }),
    _message("ResourceAttributes", {
        1: text("namespace"),
        2: text("verb"),
        3: text("group"),
        4: text("version"),
        5: text("resource"),
        6: text("subresource"),
        7: text("name"),
        8: nested("fieldSelector", "FieldSelectorAttributes", POINTER),
        9: nested("labelSelector", "LabelSelectorAttributes", POINTER),
    }),
    _message("FieldSelectorAttributes", {
        1: text("rawSelector"),
        2: nested_list("requirements", "FieldSelectorRequirement"),
    }),
    _message("FieldSelectorRequirement", {
        1: text("key", ALWAYS),
        2: text("operator", ALWAYS),
        3: text_list("values"),
    }),
    _message("LabelSelectorAttributes", {
        1: text("rawSelector"),
        2: nested_list("requirements", "LabelSelectorRequirement"),
    }),
    _message("NonResourceAttributes", {
        1: text("path"),
        2: text("verb"),
    }),
    _message("SubjectAccessReviewStatus", {
        1: flag("allowed", ALWAYS),
        4: flag("denied"),
        2: text("reason"),
        3: text("evaluationError"),
    }),
    _message("SelfSubjectRulesReview", {
        1: nested("metadata", "ObjectMeta"),
        2: nested("spec", "SelfSubjectRulesReviewSpec"),
        3: nested("status", "SubjectRulesReviewStatus"),
    }),
    _message("SelfSubjectRulesReviewSpec", {1: text("namespace")}),
    _message("SubjectRulesReviewStatus", {
        1: nested_list("resourceRules", "ResourceRule", ALWAYS),
        2: nested_list("nonResourceRules", "NonResourceRule", ALWAYS),
        3: flag("incomplete", ALWAYS),
        4: text("evaluationError"),
    }),
    _message("ResourceRule", {
        1: text_list("verbs", ALWAYS),
        2: text_list("apiGroups"),
        3: text_list("resources"),
        4: text_list("resourceNames"),
    }),
    _message("NonResourceRule", {
        1: text_list("verbs", ALWAYS),
        2: text_list("nonResourceURLs"),
    }),
]

# --- k8s.io/api certificates/v1 ------------------------------------------------------------

_CERTIFICATES = [
    _message("CertificateSigningRequest", {
        1: nested("metadata", "ObjectMeta"),
        2: nested("spec", "CertificateSigningRequestSpec"),
        3: nested("status", "CertificateSigningRequestStatus"),
    }),
    _message("CertificateSigningRequestSpec", {
        1: blob("request", ALWAYS),
        7: text("signerName", ALWAYS),
        8: int32("expirationSeconds", POINTER),
        5: text_list("usages"),
        2: text("username"),
        3: text("uid"),
        4: text_list("groups"),
        6: extra_map("extra"),
    }),
    _message("CertificateSigningRequestStatus", {
        1: nested_list("conditions", "CertificateSigningRequestCondition"),
        2: blob("certificate"),
    }),
    _message("CertificateSigningRequestCondition", {
        1: text("type", ALWAYS),
        6: text("status", ALWAYS),
        2: text("reason"),
        3: text("message"),
        4: time("lastUpdateTime"),
        5: time("lastTransitionTime"),
    }),
]


def _index(*groups: list[Message]) -> Mapping[str, Message]:
    by_name: dict[str, Message] = {}
    for group in groups:
        for message in group:
            if message.name in by_name:
                raise ValueError(f"message {message.name} defined twice")
            by_name[message.name] = message
    for message in by_name.values():
        for field in message.fields.values():
            if field.message and field.message not in by_name:
                raise ValueError(f"{message.name}.{field.json_name}: no message {field.message}")
    return MappingProxyType(by_name)


MESSAGES: Mapping[str, Message] = _index(
    _META, _CORE_SIMPLE, _POD, _VOLUMES, _RBAC, _AUTHENTICATION, _AUTHORIZATION, _CERTIFICATES
)

_RBAC_V1 = "rbac.authorization.k8s.io/v1"
_AUTHN_V1 = "authentication.k8s.io/v1"
_AUTHZ_V1 = "authorization.k8s.io/v1"
_CERTS_V1 = "certificates.k8s.io/v1"

# client-go encodes DeleteOptions in the group version of the resource it deletes.
_DELETE_OPTIONS_VERSIONS = ("meta.k8s.io/v1", "v1", _RBAC_V1, _CERTS_V1)

# (apiVersion, kind) of the envelope -> top-level message.
TOP_LEVEL: Mapping[tuple[str, str], str] = MappingProxyType({
    ("v1", "Namespace"): "Namespace",
    ("v1", "ConfigMap"): "ConfigMap",
    ("v1", "Secret"): "Secret",
    ("v1", "ServiceAccount"): "ServiceAccount",
    ("v1", "Pod"): "Pod",
    (_RBAC_V1, "Role"): "Role",
    (_RBAC_V1, "ClusterRole"): "ClusterRole",
    (_RBAC_V1, "RoleBinding"): "RoleBinding",
    (_RBAC_V1, "ClusterRoleBinding"): "ClusterRoleBinding",
    (_AUTHN_V1, "TokenRequest"): "TokenRequest",
    (_AUTHN_V1, "TokenReview"): "TokenReview",
    (_AUTHN_V1, "SelfSubjectReview"): "SelfSubjectReview",
    (_AUTHZ_V1, "SelfSubjectAccessReview"): "SelfSubjectAccessReview",
    (_AUTHZ_V1, "SelfSubjectRulesReview"): "SelfSubjectRulesReview",
    (_AUTHZ_V1, "SubjectAccessReview"): "SubjectAccessReview",
    (_AUTHZ_V1, "LocalSubjectAccessReview"): "LocalSubjectAccessReview",
    (_CERTS_V1, "CertificateSigningRequest"): "CertificateSigningRequest",
    **{(version, "DeleteOptions"): "DeleteOptions" for version in _DELETE_OPTIONS_VERSIONS},
})
