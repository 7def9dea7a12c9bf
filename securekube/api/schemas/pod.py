"""core/v1 Pod: spec (containers, security contexts, scheduling) and status, as upstream nests them."""
from __future__ import annotations

from securekube.api.schema import (BOOLEAN, INT32, INT64, INT_OR_STRING, QUANTITY, STRING, TIME, Field,
                                   GroupVersionKind, array, field, free_form, map_of, obj, string)
from securekube.api.schemas.meta import LABEL_SELECTOR, kind_object
from securekube.api.schemas.volumes import (LOCAL_OBJECT_REFERENCE, OBJECT_FIELD_SELECTOR, RESOURCE_FIELD_SELECTOR,
                                            VOLUME)

CORE = "io.k8s.api.core.v1"
PULL_POLICY = string("Always", "IfNotPresent", "Never")
TAINT_EFFECT = string("NoExecute", "NoSchedule", "PreferNoSchedule")

# --- security ---------------------------------------------------------------------------------

SECCOMP_PROFILE = obj(
    f"{CORE}.SeccompProfile", "The seccomp filter the process runs under.",
    field("localhostProfile", STRING, "Profile file relative to the kubelet's seccomp directory; only for Localhost."),
    field("type", string("Localhost", "RuntimeDefault", "Unconfined"), "Which profile applies.", required=True),
)

APPARMOR_PROFILE = obj(
    f"{CORE}.AppArmorProfile", "The AppArmor profile the process runs under.",
    field("localhostProfile", STRING, "Name of a profile loaded on the node; only for Localhost."),
    field("type", string("Localhost", "RuntimeDefault", "Unconfined"), "Which profile applies.", required=True),
)

CAPABILITIES = obj(
    f"{CORE}.Capabilities", "Linux capabilities to add to or drop from the runtime's default set.",
    field("add", array(STRING), "Capabilities to add, such as NET_BIND_SERVICE."),
    field("drop", array(STRING), "Capabilities to drop; ALL drops every one."),
)

SELINUX_OPTIONS = obj(
    f"{CORE}.SELinuxOptions", "The SELinux context of the process.",
    field("level", STRING, "SELinux level label."),
    field("role", STRING, "SELinux role label."),
    field("type", STRING, "SELinux type label."),
    field("user", STRING, "SELinux user label."),
)

WINDOWS_OPTIONS = obj(
    f"{CORE}.WindowsSecurityContextOptions", "Settings that apply only to Windows containers.",
    field("gmsaCredentialSpec", STRING, "Inline GMSA credential spec."),
    field("gmsaCredentialSpecName", STRING, "Which GMSA credential spec resource to use."),
    field("hostProcess", BOOLEAN, "When true, the container runs as a process on the Windows host."),
    field("runAsUserName", STRING, "Windows user name the entrypoint runs as."),
)

SECURITY_CONTEXT = obj(
    f"{CORE}.SecurityContext", "Privilege and isolation settings of one container, overriding the pod's.",
    field("allowPrivilegeEscalation", BOOLEAN, "Whether a process may gain more privileges than its parent "
                                               "(no_new_privs is set when false)."),
    field("appArmorProfile", APPARMOR_PROFILE, "AppArmor profile of the container."),
    field("capabilities", CAPABILITIES, "Capabilities added or dropped."),
    field("privileged", BOOLEAN, "When true, the container runs with nearly all of the host's privileges."),
    field("procMount", string("Default", "Unmasked"), "How /proc is masked in the container."),
    field("readOnlyRootFilesystem", BOOLEAN, "When true, the root filesystem is mounted read-only."),
    field("runAsGroup", INT64, "Primary group ID of the entrypoint."),
    field("runAsNonRoot", BOOLEAN, "When true, the kubelet refuses to start the container as UID 0."),
    field("runAsUser", INT64, "User ID of the entrypoint."),
    field("seLinuxOptions", SELINUX_OPTIONS, "SELinux context of the container."),
    field("seccompProfile", SECCOMP_PROFILE, "Seccomp profile of the container."),
    field("windowsOptions", WINDOWS_OPTIONS, "Windows-only settings."),
)

SYSCTL = obj(
    f"{CORE}.Sysctl", "A kernel parameter set in the pod's namespaces.",
    field("name", STRING, "Name of the parameter.", required=True),
    field("value", STRING, "Value to set.", required=True),
)

POD_SECURITY_CONTEXT = obj(
    f"{CORE}.PodSecurityContext", "Privilege and isolation settings shared by every container of the pod.",
    field("appArmorProfile", APPARMOR_PROFILE, "AppArmor profile of the containers."),
    field("fsGroup", INT64, "Supplementary group that owns the pod's volumes."),
    field("fsGroupChangePolicy", string("Always", "OnRootMismatch"), "When volume ownership is changed to fsGroup."),
    field("runAsGroup", INT64, "Primary group ID of the containers' entrypoints."),
    field("runAsNonRoot", BOOLEAN, "When true, the kubelet refuses to start containers as UID 0."),
    field("runAsUser", INT64, "User ID of the containers' entrypoints."),
    field("seLinuxChangePolicy", STRING, "How SELinux labels are applied to the pod's volumes."),
    field("seLinuxOptions", SELINUX_OPTIONS, "SELinux context of the containers."),
    field("seccompProfile", SECCOMP_PROFILE, "Seccomp profile of the containers."),
    field("supplementalGroups", array(INT64), "Extra group IDs of the containers' first process."),
    field("supplementalGroupsPolicy", string("Merge", "Strict"), "Whether groups from the image are added too."),
    field("sysctls", array(SYSCTL), "Namespaced kernel parameters for the pod."),
    field("windowsOptions", WINDOWS_OPTIONS, "Windows-only settings."),
)

# --- containers -------------------------------------------------------------------------------

CONFIG_MAP_KEY_SELECTOR = obj(
    f"{CORE}.ConfigMapKeySelector", "Selects one key of a ConfigMap.",
    field("key", STRING, "The key to read.", required=True),
    field("name", STRING, "Name of the ConfigMap."),
    field("optional", BOOLEAN, "When true, a missing ConfigMap or key is not an error."),
)

SECRET_KEY_SELECTOR = obj(
    f"{CORE}.SecretKeySelector", "Selects one key of a Secret.",
    field("key", STRING, "The key to read.", required=True),
    field("name", STRING, "Name of the Secret."),
    field("optional", BOOLEAN, "When true, a missing Secret or key is not an error."),
)

FILE_KEY_SELECTOR = obj(
    f"{CORE}.FileKeySelector", "Selects one key of an env file in an emptyDir volume.",
    field("key", STRING, "The variable to read from the file.", required=True),
    field("optional", BOOLEAN, "When true, a missing file or key is not an error."),
    field("path", STRING, "Path of the file inside the volume.", required=True),
    field("volumeName", STRING, "Name of the volume holding the file.", required=True),
)

ENV_VAR_SOURCE = obj(
    f"{CORE}.EnvVarSource", "Where an environment variable's value comes from; exactly one field is set.",
    field("configMapKeyRef", CONFIG_MAP_KEY_SELECTOR, "A key of a ConfigMap."),
    field("fieldRef", OBJECT_FIELD_SELECTOR, "A field of the pod."),
    field("fileKeyRef", FILE_KEY_SELECTOR, "A key of an env file in a volume."),
    field("resourceFieldRef", RESOURCE_FIELD_SELECTOR, "A resource request or limit of a container."),
    field("secretKeyRef", SECRET_KEY_SELECTOR, "A key of a Secret."),
)

ENV_VAR = obj(
    f"{CORE}.EnvVar", "An environment variable of a container.",
    field("name", STRING, "Name of the variable.", required=True),
    field("value", STRING, "Literal value; $(VAR) references to earlier variables are expanded."),
    field("valueFrom", ENV_VAR_SOURCE, "Source of the value when it is not literal."),
)

CONFIG_MAP_ENV_SOURCE = obj(
    f"{CORE}.ConfigMapEnvSource", "A ConfigMap whose keys all become environment variables.",
    field("name", STRING, "Name of the ConfigMap."),
    field("optional", BOOLEAN, "When true, a missing ConfigMap is not an error."),
)

SECRET_ENV_SOURCE = obj(
    f"{CORE}.SecretEnvSource", "A Secret whose keys all become environment variables.",
    field("name", STRING, "Name of the Secret."),
    field("optional", BOOLEAN, "When true, a missing Secret is not an error."),
)

ENV_FROM_SOURCE = obj(
    f"{CORE}.EnvFromSource", "A set of environment variables taken from a ConfigMap or a Secret.",
    field("configMapRef", CONFIG_MAP_ENV_SOURCE, "The ConfigMap to read."),
    field("prefix", STRING, "Prefix added to every variable name."),
    field("secretRef", SECRET_ENV_SOURCE, "The Secret to read."),
)

EXEC_ACTION = obj(
    f"{CORE}.ExecAction", "A command run inside the container.",
    field("command", array(STRING), "Command line, run without a shell; exit status 0 means success."),
)

HTTP_HEADER = obj(
    f"{CORE}.HTTPHeader", "A header sent with an HTTP probe.",
    field("name", STRING, "Header name.", required=True),
    field("value", STRING, "Header value.", required=True),
)

HTTP_GET_ACTION = obj(
    f"{CORE}.HTTPGetAction", "An HTTP GET request; a status from 200 to 399 means success.",
    field("host", STRING, "Address to connect to instead of the pod's IP."),
    field("httpHeaders", array(HTTP_HEADER), "Extra request headers."),
    field("path", STRING, "Path to request."),
    field("port", INT_OR_STRING, "Port number or name to connect to.", required=True),
    field("protocol", STRING, "Wire protocol of the connection; HTTP/1.1 when unset."),
    field("scheme", string("HTTP", "HTTPS"), "Scheme to use; defaults to HTTP."),
)

TCP_SOCKET_ACTION = obj(
    f"{CORE}.TCPSocketAction", "A TCP connection attempt; connecting means success.",
    field("host", STRING, "Address to connect to instead of the pod's IP."),
    field("port", INT_OR_STRING, "Port number or name to connect to.", required=True),
)

GRPC_ACTION = obj(
    f"{CORE}.GRPCAction", "A call to the gRPC health checking service.",
    field("mode", STRING, "TLS or Plaintext (the default): how the probe connects."),
    field("port", INT32, "Port the gRPC health service listens on.", required=True),
    field("service", STRING, "Service name sent in the health check request."),
)

SLEEP_ACTION = obj(
    f"{CORE}.SleepAction", "A pause before the container continues.",
    field("seconds", INT64, "How long to sleep.", required=True),
)

LIFECYCLE_HANDLER = obj(
    f"{CORE}.LifecycleHandler", "What to do at a lifecycle hook; exactly one field is set.",
    field("exec", EXEC_ACTION, "Run a command in the container."),
    field("httpGet", HTTP_GET_ACTION, "Send an HTTP GET request."),
    field("sleep", SLEEP_ACTION, "Pause for a while."),
    field("tcpSocket", TCP_SOCKET_ACTION, "Deprecated and not run; kept for compatibility."),
)

LIFECYCLE = obj(
    f"{CORE}.Lifecycle", "Hooks run after a container starts and before it stops.",
    field("postStart", LIFECYCLE_HANDLER, "Run right after the container is created."),
    field("preStop", LIFECYCLE_HANDLER, "Run before the container is stopped."),
    field("stopSignal", STRING, "Signal sent to stop the container, overriding the image's."),
)

PROBE = obj(
    f"{CORE}.Probe", "A periodic health check of a container.",
    field("exec", EXEC_ACTION, "Run a command in the container."),
    field("failureThreshold", INT32, "Consecutive failures after which the probe counts as failed."),
    field("grpc", GRPC_ACTION, "Call a gRPC health service."),
    field("httpGet", HTTP_GET_ACTION, "Send an HTTP GET request."),
    field("initialDelaySeconds", INT32, "Seconds after the start before the first probe."),
    field("periodSeconds", INT32, "Seconds between probes."),
    field("successThreshold", INT32, "Consecutive successes after which a failed probe counts as passing."),
    field("tcpSocket", TCP_SOCKET_ACTION, "Open a TCP connection."),
    field("terminationGracePeriodSeconds", INT64, "Grace period used when a failed probe kills the container."),
    field("timeoutSeconds", INT32, "Seconds before one probe attempt times out."),
)

CONTAINER_PORT = obj(
    f"{CORE}.ContainerPort", "A network port a container listens on.",
    field("containerPort", INT32, "Port number in the pod's network namespace.", required=True),
    field("hostIP", STRING, "Host address to bind a host port to."),
    field("hostPort", INT32, "Port on the node to expose; a way out of isolation."),
    field("name", STRING, "Name services can refer to the port by."),
    field("protocol", string("SCTP", "TCP", "UDP"), "Protocol; defaults to TCP."),
)

RESOURCE_CLAIM = obj(
    f"{CORE}.ResourceClaim", "A reference to one of the pod's resource claims.",
    field("name", STRING, "Name of an entry in the pod's resourceClaims.", required=True),
    field("request", STRING, "A single request of the claim, or all of it when empty."),
)

RESOURCE_REQUIREMENTS = obj(
    f"{CORE}.ResourceRequirements", "Compute resources requested and the limits enforced.",
    field("claims", array(RESOURCE_CLAIM), "Dynamically allocated resources this container uses."),
    field("limits", map_of(QUANTITY), "Most of each resource allowed, such as cpu and memory."),
    field("requests", map_of(QUANTITY), "Amount of each resource the scheduler reserves."),
)

CONTAINER_RESIZE_POLICY = obj(
    f"{CORE}.ContainerResizePolicy", "What happens to the container when a resource is resized in place.",
    field("resourceName", STRING, "The resource this policy is for, such as cpu or memory.", required=True),
    field("restartPolicy", STRING, "NotRequired or RestartContainer.", required=True),
)

RESTART_RULE_ON_EXIT_CODES = obj(
    f"{CORE}.ContainerRestartRuleOnExitCodes", "Which exit codes a restart rule matches.",
    field("operator", STRING, "In or NotIn.", required=True),
    field("values", array(INT32), "The exit codes."),
)

CONTAINER_RESTART_RULE = obj(
    f"{CORE}.ContainerRestartRule", "A rule that decides a container's restart from its exit.",
    field("action", STRING, "What to do when the rule matches; only Restart exists.", required=True),
    field("exitCodes", RESTART_RULE_ON_EXIT_CODES, "The exit codes the rule matches."),
)

VOLUME_DEVICE = obj(
    f"{CORE}.VolumeDevice", "A raw block volume exposed as a device in the container.",
    field("devicePath", STRING, "Path of the device inside the container.", required=True),
    field("name", STRING, "Name of a persistentVolumeClaim volume of the pod.", required=True),
)

VOLUME_MOUNT = obj(
    f"{CORE}.VolumeMount", "Where a volume of the pod is mounted in a container.",
    field("bindMountOptions", array(STRING), "Extra bind mount options."),
    field("mountPath", STRING, "Path inside the container; must not contain ':'.", required=True),
    field("mountPropagation", string("Bidirectional", "HostToContainer", "None"),
          "How mounts propagate between host and container."),
    field("name", STRING, "Name of the volume.", required=True),
    field("readOnly", BOOLEAN, "When true, the mount is read-only."),
    field("recursiveReadOnly", STRING, "Whether a read-only mount is also read-only in its submounts."),
    field("subPath", STRING, "Path within the volume to mount instead of its root."),
    field("subPathExpr", STRING, "Like subPath, with $(VAR) references to the container's environment."),
)


def _container_fields(*extra: Field) -> tuple[Field, ...]:
    """Container's fields (an ephemeral container has the same, plus its own)."""
    fields = (
        field("args", array(STRING), "Arguments to the entrypoint; the image's CMD when empty."),
        field("command", array(STRING), "Entrypoint, run without a shell; the image's ENTRYPOINT when empty."),
        field("env", array(ENV_VAR), "Environment variables to set."),
        field("envFrom", array(ENV_FROM_SOURCE), "Sources whose keys all become environment variables."),
        field("image", STRING, "Container image reference."),
        field("imagePullPolicy", PULL_POLICY, "When the image is pulled; Always for :latest, else IfNotPresent."),
        field("lifecycle", LIFECYCLE, "Hooks run after start and before stop."),
        field("livenessProbe", PROBE, "Check whose failure restarts the container."),
        field("name", STRING, "Name of the container, unique in the pod (a DNS label).", required=True),
        field("ports", array(CONTAINER_PORT), "Ports the container listens on, for information."),
        field("readinessProbe", PROBE, "Check whose failure takes the pod out of service endpoints."),
        field("resizePolicy", array(CONTAINER_RESIZE_POLICY), "How each resource may be resized in place."),
        field("resources", RESOURCE_REQUIREMENTS, "Compute resources requested and limited."),
        field("restartPolicy", STRING, "Per-container restart policy; Always makes an init container a sidecar."),
        field("restartPolicyRules", array(CONTAINER_RESTART_RULE), "Rules that decide restarts by exit code."),
        field("securityContext", SECURITY_CONTEXT, "Privilege and isolation settings of the container."),
        field("startupProbe", PROBE, "Check that must pass before the other probes start."),
        field("stdin", BOOLEAN, "When true, the container gets a stdin stream."),
        field("stdinOnce", BOOLEAN, "When true, stdin closes after the first client disconnects."),
        field("terminationMessagePath", STRING, "File whose content becomes the termination message."),
        field("terminationMessagePolicy", string("FallbackToLogsOnError", "File"),
              "Where the termination message is read from."),
        field("tty", BOOLEAN, "When true, the container gets a terminal."),
        field("volumeDevices", array(VOLUME_DEVICE), "Raw block volumes exposed as devices."),
        field("volumeMounts", array(VOLUME_MOUNT), "Volumes mounted into the container."),
        field("workingDir", STRING, "Working directory of the entrypoint."),
    )
    return tuple(sorted((*fields, *extra), key=lambda f: f.name))


CONTAINER = obj(f"{CORE}.Container", "An application container run in the pod.", *_container_fields())

EPHEMERAL_CONTAINER = obj(
    f"{CORE}.EphemeralContainer", "A temporary container added to a running pod for debugging.",
    *_container_fields(field("targetContainerName", STRING, "Container whose namespaces the debugger joins.")),
)

# --- scheduling -------------------------------------------------------------------------------

NODE_SELECTOR_REQUIREMENT = obj(
    f"{CORE}.NodeSelectorRequirement", "One condition on a node label or field.",
    field("key", STRING, "Label key or field name the condition tests.", required=True),
    field("operator", string("DoesNotExist", "Exists", "Gt", "In", "Lt", "NotIn"), "How values are compared.",
          required=True),
    field("values", array(STRING), "Values to compare with; one integer for Gt and Lt."),
)

NODE_SELECTOR_TERM = obj(
    f"{CORE}.NodeSelectorTerm", "Conditions on a node that must all hold.",
    field("matchExpressions", array(NODE_SELECTOR_REQUIREMENT), "Conditions on node labels."),
    field("matchFields", array(NODE_SELECTOR_REQUIREMENT), "Conditions on node fields."),
)

NODE_SELECTOR = obj(
    f"{CORE}.NodeSelector", "Terms of which at least one must match the node.",
    field("nodeSelectorTerms", array(NODE_SELECTOR_TERM), "The terms, ORed.", required=True),
)

PREFERRED_SCHEDULING_TERM = obj(
    f"{CORE}.PreferredSchedulingTerm", "A weighted node preference.",
    field("preference", NODE_SELECTOR_TERM, "The node term preferred.", required=True),
    field("weight", INT32, "Weight from 1 to 100 added to the node's score when it matches.", required=True),
)

NODE_AFFINITY = obj(
    f"{CORE}.NodeAffinity", "Rules about the nodes a pod may or should run on.",
    field("preferredDuringSchedulingIgnoredDuringExecution", array(PREFERRED_SCHEDULING_TERM),
          "Nodes the scheduler prefers."),
    field("requiredDuringSchedulingIgnoredDuringExecution", NODE_SELECTOR, "Nodes the pod may run on."),
)

POD_AFFINITY_TERM = obj(
    f"{CORE}.PodAffinityTerm", "A group of pods, and the topology domain the rule is about.",
    field("labelSelector", LABEL_SELECTOR, "Selects the pods."),
    field("matchLabelKeys", array(STRING), "Label keys whose values from this pod are added to the selector."),
    field("mismatchLabelKeys", array(STRING), "Label keys whose values from this pod are excluded by the selector."),
    field("namespaceSelector", LABEL_SELECTOR, "Selects the namespaces the pods are looked for in."),
    field("namespaces", array(STRING), "Namespaces the pods are looked for in; the pod's own when empty."),
    field("topologyKey", STRING, "Node label whose value defines the domain, such as a zone.", required=True),
)

WEIGHTED_POD_AFFINITY_TERM = obj(
    f"{CORE}.WeightedPodAffinityTerm", "A weighted pod affinity preference.",
    field("podAffinityTerm", POD_AFFINITY_TERM, "The preferred term.", required=True),
    field("weight", INT32, "Weight from 1 to 100 added to the node's score when it matches.", required=True),
)

POD_AFFINITY = obj(
    f"{CORE}.PodAffinity", "Rules to run near other pods.",
    field("preferredDuringSchedulingIgnoredDuringExecution", array(WEIGHTED_POD_AFFINITY_TERM),
          "Pods the scheduler prefers to be near."),
    field("requiredDuringSchedulingIgnoredDuringExecution", array(POD_AFFINITY_TERM), "Pods this pod must be near."),
)

POD_ANTI_AFFINITY = obj(
    f"{CORE}.PodAntiAffinity", "Rules to stay away from other pods.",
    field("preferredDuringSchedulingIgnoredDuringExecution", array(WEIGHTED_POD_AFFINITY_TERM),
          "Pods the scheduler prefers to avoid."),
    field("requiredDuringSchedulingIgnoredDuringExecution", array(POD_AFFINITY_TERM), "Pods this pod must avoid."),
)

AFFINITY = obj(
    f"{CORE}.Affinity", "Scheduling rules relative to nodes and to other pods.",
    field("nodeAffinity", NODE_AFFINITY, "Rules about nodes."),
    field("podAffinity", POD_AFFINITY, "Rules to run near other pods."),
    field("podAntiAffinity", POD_ANTI_AFFINITY, "Rules to stay away from other pods."),
)

TOLERATION = obj(
    f"{CORE}.Toleration", "Lets the pod be scheduled onto, or stay on, nodes with a matching taint.",
    field("effect", TAINT_EFFECT, "Taint effect to match; all effects when empty."),
    field("key", STRING, "Taint key to match; all keys when empty (with Exists)."),
    field("operator", STRING, "Exists or Equal (the default)."),
    field("tolerationSeconds", INT64, "For NoExecute, how long the pod may stay after the taint appears."),
    field("value", STRING, "Taint value to match with Equal."),
)

TOPOLOGY_SPREAD_CONSTRAINT = obj(
    f"{CORE}.TopologySpreadConstraint", "How evenly matching pods must be spread across topology domains.",
    field("labelSelector", LABEL_SELECTOR, "Selects the pods counted."),
    field("matchLabelKeys", array(STRING), "Label keys whose values from this pod are added to the selector."),
    field("maxSkew", INT32, "Largest allowed difference in matching pods between domains.", required=True),
    field("minDomains", INT32, "Fewest eligible domains assumed when counting skew."),
    field("nodeAffinityPolicy", string("Honor", "Ignore"), "Whether the pod's node affinity limits the domains."),
    field("nodeTaintsPolicy", string("Honor", "Ignore"), "Whether node taints limit the domains."),
    field("topologyKey", STRING, "Node label whose value defines the domain.", required=True),
    field("whenUnsatisfiable", string("DoNotSchedule", "ScheduleAnyway"), "What to do when the skew cannot be met.",
          required=True),
)

POD_DNS_CONFIG_OPTION = obj(
    f"{CORE}.PodDNSConfigOption", "A resolver option.",
    field("name", STRING, "Option name, such as ndots."),
    field("value", STRING, "Option value."),
)

POD_DNS_CONFIG = obj(
    f"{CORE}.PodDNSConfig", "Resolver settings merged into those the DNS policy gives.",
    field("nameservers", array(STRING), "Extra name server addresses."),
    field("options", array(POD_DNS_CONFIG_OPTION), "Extra resolver options."),
    field("searches", array(STRING), "Extra search domains."),
)

HOST_ALIAS = obj(
    f"{CORE}.HostAlias", "An entry added to the pod's /etc/hosts.",
    field("hostnames", array(STRING), "Names that resolve to this address."),
    field("ip", STRING, "The address.", required=True),
)

POD_OS = obj(
    f"{CORE}.PodOS", "The operating system the pod's containers need.",
    field("name", STRING, "linux or windows.", required=True),
)

POD_READINESS_GATE = obj(
    f"{CORE}.PodReadinessGate", "An extra condition that must be true before the pod counts as ready.",
    field("conditionType", STRING, "Type of a condition in the pod's status.", required=True),
)

POD_RESOURCE_CLAIM = obj(
    f"{CORE}.PodResourceClaim", "A dynamically allocated resource the pod needs.",
    field("name", STRING, "Name containers use to refer to the claim.", required=True),
    field("resourceClaimName", STRING, "An existing ResourceClaim."),
    field("resourceClaimTemplateName", STRING, "A template a per-pod claim is created from."),
)

POD_SCHEDULING_GATE = obj(
    f"{CORE}.PodSchedulingGate", "A gate that keeps the pod from being scheduled while it is present.",
    field("name", STRING, "Name of the gate.", required=True),
)

POD_SCHEDULING_GROUP = obj(
    f"{CORE}.PodSchedulingGroup", "The group of pods this pod is scheduled together with.",
    field("podGroupName", STRING, "Name of the pod group."),
)

EVICTION_RESPONDER = obj(
    f"{CORE}.EvictionResponder", "A party that must answer before the pod is evicted.",
    field("name", STRING, "Name of the responder."),
    field("priority", INT32, "Order in which responders are asked."),
)

POD_SPEC = obj(
    f"{CORE}.PodSpec", "The desired state of a pod: its containers, volumes, security and scheduling.",
    field("activeDeadlineSeconds", INT64, "Seconds the pod may run before the kubelet fails it."),
    field("affinity", AFFINITY, "Scheduling rules relative to nodes and other pods."),
    field("automountServiceAccountToken", BOOLEAN, "Whether a service account token is mounted into the pod."),
    field("containers", array(CONTAINER), "The application containers; at least one.", required=True),
    field("dnsConfig", POD_DNS_CONFIG, "Resolver settings added to those of the DNS policy."),
    field("dnsPolicy", string("ClusterFirst", "ClusterFirstWithHostNet", "Default", "None"),
          "How the pod's resolver is configured."),
    field("enableServiceLinks", BOOLEAN, "Whether service addresses are injected as environment variables."),
    field("ephemeralContainers", array(EPHEMERAL_CONTAINER), "Debug containers added to the running pod."),
    field("evictionResponders", array(EVICTION_RESPONDER), "Parties that must answer before an eviction."),
    field("hostAliases", array(HOST_ALIAS), "Entries added to the pod's /etc/hosts."),
    field("hostIPC", BOOLEAN, "When true, the pod shares the host's IPC namespace."),
    field("hostNetwork", BOOLEAN, "When true, the pod shares the host's network namespace."),
    field("hostPID", BOOLEAN, "When true, the pod shares the host's process namespace."),
    field("hostUsers", BOOLEAN, "When false, the pod runs in its own user namespace."),
    field("hostname", STRING, "Host name of the pod; its name when empty."),
    field("hostnameOverride", STRING, "Host name that replaces the generated one entirely."),
    field("imagePullSecrets", array(LOCAL_OBJECT_REFERENCE), "Secrets with registry credentials for the images."),
    field("initContainers", array(CONTAINER), "Containers run to completion, in order, before the others start."),
    field("nodeName", STRING, "Node the pod is bound to; set by the scheduler."),
    field("nodeSelector", map_of(STRING), "Labels a node must have for the pod to run there."),
    field("os", POD_OS, "Operating system the containers need."),
    field("overhead", map_of(QUANTITY), "Resources the pod's sandbox uses beyond its containers."),
    field("preemptionPolicy", string("Never", "PreemptLowerPriority"),
          "Whether the pod may preempt lower-priority pods."),
    field("priority", INT32, "Scheduling priority, filled from the priority class."),
    field("priorityClassName", STRING, "Name of the PriorityClass of the pod."),
    field("readinessGates", array(POD_READINESS_GATE), "Extra conditions needed for readiness."),
    field("resourceClaims", array(POD_RESOURCE_CLAIM), "Dynamically allocated resources the pod needs."),
    field("resources", RESOURCE_REQUIREMENTS, "Resources for the whole pod, shared by its containers."),
    field("restartPolicy", string("Always", "Never", "OnFailure"), "When containers are restarted after they exit."),
    field("runtimeClassName", STRING, "RuntimeClass that selects the container runtime handler."),
    field("schedulerName", STRING, "Scheduler that places the pod."),
    field("schedulingGates", array(POD_SCHEDULING_GATE), "Gates that hold the pod back from scheduling."),
    field("schedulingGroup", POD_SCHEDULING_GROUP, "Group of pods scheduled together with this one."),
    field("securityContext", POD_SECURITY_CONTEXT, "Security settings shared by all containers."),
    field("serviceAccount", STRING, "Deprecated alias of serviceAccountName."),
    field("serviceAccountName", STRING, "Service account the pod runs as."),
    field("setHostnameAsFQDN", BOOLEAN, "When true, the host name is the fully qualified domain name."),
    field("shareProcessNamespace", BOOLEAN, "When true, the containers share one process namespace."),
    field("subdomain", STRING, "Subdomain that makes the pod's fully qualified host name."),
    field("terminationGracePeriodSeconds", INT64, "Seconds the containers get to stop before they are killed."),
    field("tolerations", array(TOLERATION), "Taints the pod tolerates."),
    field("topologySpreadConstraints", array(TOPOLOGY_SPREAD_CONSTRAINT), "How the pod is spread across domains."),
    field("volumes", array(VOLUME), "Volumes the containers can mount."),
)

# --- status -----------------------------------------------------------------------------------

POD_CONDITION = obj(
    f"{CORE}.PodCondition", "One aspect of the pod's state, such as Ready or PodScheduled.",
    field("lastProbeTime", TIME, "When the condition was last checked."),
    field("lastTransitionTime", TIME, "When the status last changed."),
    field("message", STRING, "Human-readable detail."),
    field("observedGeneration", INT64, "The pod generation the condition was computed for."),
    field("reason", STRING, "One-word reason for the last change."),
    field("status", STRING, "True, False or Unknown.", required=True),
    field("type", STRING, "Which condition this is.", required=True),
)

CONTAINER_STATE_WAITING = obj(
    f"{CORE}.ContainerStateWaiting", "A container that has not started yet.",
    field("message", STRING, "Why it is waiting, in words."),
    field("reason", STRING, "Why it is waiting, such as ContainerCreating or CrashLoopBackOff."),
)

CONTAINER_STATE_RUNNING = obj(
    f"{CORE}.ContainerStateRunning", "A running container.",
    field("startedAt", TIME, "When the container last started."),
)

CONTAINER_STATE_TERMINATED = obj(
    f"{CORE}.ContainerStateTerminated", "A container that has exited.",
    field("containerID", STRING, "Runtime ID of the container, as <type>://<id>."),
    field("exitCode", INT32, "Exit status of the last run.", required=True),
    field("finishedAt", TIME, "When it exited."),
    field("message", STRING, "Detail about the exit."),
    field("reason", STRING, "Short reason, such as Completed or Error."),
    field("signal", INT32, "Signal that ended the container, if any."),
    field("startedAt", TIME, "When the last run started."),
)

CONTAINER_STATE = obj(
    f"{CORE}.ContainerState", "The state of a container; exactly one field is set.",
    field("running", CONTAINER_STATE_RUNNING, "Set while the container runs."),
    field("terminated", CONTAINER_STATE_TERMINATED, "Set once the container has exited."),
    field("waiting", CONTAINER_STATE_WAITING, "Set while the container waits to start."),
)

LINUX_CONTAINER_USER = obj(
    f"{CORE}.LinuxContainerUser", "The Linux identity the container's first process has.",
    field("gid", INT64, "Primary group ID.", required=True),
    field("supplementalGroups", array(INT64), "Supplementary group IDs."),
    field("uid", INT64, "User ID.", required=True),
)

CONTAINER_USER = obj(
    f"{CORE}.ContainerUser", "The identity the container's first process has.",
    field("linux", LINUX_CONTAINER_USER, "The Linux identity."),
)

IMAGE_VOLUME_STATUS = obj(
    f"{CORE}.ImageVolumeStatus", "What an image volume resolved to.",
    field("imageRef", STRING, "Image ID of the mounted image.", required=True),
)

VOLUME_STATUS = obj(
    f"{CORE}.VolumeStatus", "Status of a mounted volume, by volume type.",
    field("image", IMAGE_VOLUME_STATUS, "Status of an image volume."),
)

VOLUME_MOUNT_STATUS = obj(
    f"{CORE}.VolumeMountStatus", "How a volume is mounted in a running container.",
    field("mountPath", STRING, "Path inside the container.", required=True),
    field("name", STRING, "Name of the volume.", required=True),
    field("readOnly", BOOLEAN, "Whether the mount is read-only."),
    field("recursiveReadOnly", STRING, "Whether submounts are read-only too."),
    field("volumeStatus", VOLUME_STATUS, "Status of the volume itself."),
)

RESOURCE_HEALTH = obj(
    f"{CORE}.ResourceHealth", "Health of one device allocated to the container.",
    field("health", STRING, "Healthy, Unhealthy or Unknown."),
    field("message", STRING, "Detail about the health."),
    field("resourceID", STRING, "ID of the device.", required=True),
)

RESOURCE_STATUS = obj(
    f"{CORE}.ResourceStatus", "Health of the devices allocated for one resource.",
    field("name", STRING, "Name of the resource.", required=True),
    field("resources", array(RESOURCE_HEALTH), "One entry per device."),
)

CONTAINER_STATUS = obj(
    f"{CORE}.ContainerStatus", "What the kubelet reports about one container.",
    field("allocatedResources", map_of(QUANTITY), "Resources the node allocated to the container."),
    field("allocatedResourcesStatus", array(RESOURCE_STATUS), "Health of the allocated devices."),
    field("containerID", STRING, "Runtime ID of the container, as <type>://<id>."),
    field("image", STRING, "Image the container runs.", required=True),
    field("imageID", STRING, "ID of the image the container runs.", required=True),
    field("lastState", CONTAINER_STATE, "State of the previous run, such as why it exited."),
    field("name", STRING, "Name of the container in the spec.", required=True),
    field("ready", BOOLEAN, "Whether the container passes its readiness probe.", required=True),
    field("resources", RESOURCE_REQUIREMENTS, "Resources the runtime actually applied."),
    field("restartCount", INT32, "How many times the container was restarted.", required=True),
    field("started", BOOLEAN, "Whether the container passed its startup probe."),
    field("state", CONTAINER_STATE, "Current state."),
    field("stopSignal", STRING, "Signal that will stop the container."),
    field("user", CONTAINER_USER, "Identity of the first process."),
    field("volumeMounts", array(VOLUME_MOUNT_STATUS), "How the volumes are mounted."),
)

HOST_IP = obj(f"{CORE}.HostIP", "An address of the node a pod runs on.",
              field("ip", STRING, "The address.", required=True))

POD_IP = obj(f"{CORE}.PodIP", "An address of a pod.", field("ip", STRING, "The address.", required=True))

POD_RESOURCE_CLAIM_STATUS = obj(
    f"{CORE}.PodResourceClaimStatus", "Which ResourceClaim was created for a claim of the pod.",
    field("name", STRING, "Name of the claim in the pod's spec.", required=True),
    field("resourceClaimName", STRING, "Name of the ResourceClaim created for it."),
)

CONTAINER_EXTENDED_RESOURCE_REQUEST = obj(
    f"{CORE}.ContainerExtendedResourceRequest", "Which claim request serves a container's extended resource.",
    field("containerName", STRING, "Name of the container.", required=True),
    field("requestName", STRING, "Name of the request in the claim.", required=True),
    field("resourceName", STRING, "Name of the extended resource.", required=True),
)

POD_EXTENDED_RESOURCE_CLAIM_STATUS = obj(
    f"{CORE}.PodExtendedResourceClaimStatus", "The claim created to serve the pod's extended resources.",
    field("requestMappings", array(CONTAINER_EXTENDED_RESOURCE_REQUEST), "Which request serves which container.",
          required=True),
    field("resourceClaimName", STRING, "Name of the ResourceClaim.", required=True),
)

VOLUME_HEALTH_CONDITION = obj(
    f"{CORE}.VolumeHealthCondition", "One observation about a volume's health.",
    field("message", STRING, "Detail in words."),
    field("reason", STRING, "Short reason."),
    field("status", STRING, "True, False or Unknown."),
)

POD_VOLUME_HEALTH = obj(
    f"{CORE}.PodVolumeHealth", "Health of one volume of the pod.",
    field("healthConditions", array(VOLUME_HEALTH_CONDITION), "Observations about the volume."),
    field("lastTransitionTime", TIME, "When the health last changed."),
    field("name", STRING, "Name of the volume."),
)

NODE_ALLOCATABLE_CLAIM_STATUS = free_form(
    f"{CORE}.NodeAllocatableResourceClaimStatus",
    "Node-allocatable resources bound to a claim of the pod; not described here, as this lab has no DRA.")

POD_STATUS = obj(
    f"{CORE}.PodStatus", "The observed state of a pod, reported by its kubelet.",
    field("allocatedResources", map_of(QUANTITY), "Resources the node allocated to the whole pod."),
    field("conditions", array(POD_CONDITION), "Aspects of the pod's state."),
    field("containerStatuses", array(CONTAINER_STATUS), "One entry per container."),
    field("ephemeralContainerStatuses", array(CONTAINER_STATUS), "One entry per ephemeral container."),
    field("extendedResourceClaimStatus", POD_EXTENDED_RESOURCE_CLAIM_STATUS,
          "The claim serving the pod's extended resources."),
    field("hostIP", STRING, "Primary address of the node."),
    field("hostIPs", array(HOST_IP), "Addresses of the node."),
    field("initContainerStatuses", array(CONTAINER_STATUS), "One entry per init container."),
    field("message", STRING, "Why the pod is in its phase, in words."),
    field("nodeAllocatableResourceClaimStatuses", array(NODE_ALLOCATABLE_CLAIM_STATUS),
          "Node-allocatable resources bound to the pod's claims."),
    field("nominatedNodeName", STRING, "Node the pod may run on once preempted pods are gone."),
    field("observedGeneration", INT64, "The pod generation this status describes."),
    field("phase", string("Failed", "Pending", "Running", "Succeeded", "Unknown"),
          "Where the pod is in its lifecycle."),
    field("podIP", STRING, "Primary address of the pod."),
    field("podIPs", array(POD_IP), "Addresses of the pod."),
    field("qosClass", string("BestEffort", "Burstable", "Guaranteed"), "Quality of service class from the resources."),
    field("reason", STRING, "Short reason for the phase, such as Evicted."),
    field("resize", STRING, "Deprecated state of an in-place resize."),
    field("resourceClaimStatuses", array(POD_RESOURCE_CLAIM_STATUS), "ResourceClaims created for the pod."),
    field("resources", RESOURCE_REQUIREMENTS, "Resources applied to the whole pod."),
    field("startTime", TIME, "When the kubelet accepted the pod."),
    field("volumeHealth", array(POD_VOLUME_HEALTH), "Health of the pod's volumes."),
)

POD = kind_object(
    f"{CORE}.Pod", "A group of containers that run together on one node.", GroupVersionKind("", "v1", "Pod"),
    field("spec", POD_SPEC, "Desired state: containers, volumes, security and scheduling."),
    field("status", POD_STATUS, "Observed state, reported by the kubelet; read-only for users."),
)
