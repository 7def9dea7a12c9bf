"""Running a Pod through CRI: sandbox, containers, status, logs and teardown.

`PodRuntime` is the layer a kubelet sync loop drives: `run_pod` turns a Pod object (a dict, as
the API serves it) into a running sandbox with its containers, `status` reads back what the
runtime says in the Pod status vocabulary (phase, containerStatuses with reasons and exit codes),
`restart_container` starts the next attempt of an exited container, `kill_pod` stops everything
with the grace period and removes it, and `container_logs` reads a container's output.

Every security decision happens before the runtime is asked: the pod is admitted (AppArmor,
sysctls) before a sandbox exists, and each container's security context is translated (seccomp
profile present, runAsNonRoot verified against the image) before it is created. A container that
fails that stays Waiting with upstream's reason and message and is never started.
"""
from __future__ import annotations

import re
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from securekube.kubelet import resources, security
from securekube.kubelet.cgroups import PodCgroups
from securekube.kubelet.cri import runtime_v1_pb2 as pb
from securekube.kubelet.cri.client import CriClient, CriError, CriNotFound
from securekube.kubelet.crilog import read_container_log
from securekube.kubelet.errors import ContainerConfigError, PodAdmissionError
from securekube.kubelet.registries import pull_refusal

LABEL_POD_NAME = "io.kubernetes.pod.name"
LABEL_POD_NAMESPACE = "io.kubernetes.pod.namespace"
LABEL_POD_UID = "io.kubernetes.pod.uid"
LABEL_CONTAINER_NAME = "io.kubernetes.container.name"
CONTAINER_ID_PREFIX = "containerd://"
DEFAULT_GRACE_SECONDS = 30
_UNSUPPORTED_CONTAINER_LISTS = ("initContainers", "ephemeralContainers")
# Names end up in host paths (log directory, cgroup): accept only what the API allows.
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_UID = re.compile(r"^[A-Za-z0-9-]{1,64}$")
# $(NAME) references in command/args, with $$ as the escape (upstream third_party/forked/golang/expansion).
_VARIABLE_REFERENCE = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


class SandboxCreationError(RuntimeError):
    """The runtime could not create the pod's sandbox (upstream event reason FailedCreatePodSandBox)."""

    reason = "FailedCreatePodSandBox"


@dataclass(frozen=True)
class RuntimeConfig:
    """How this node runs pods."""

    log_root: Path
    node_security: security.NodeSecurity
    # Upstream's podPidsLimit (CIS recommends setting one); None leaves pods unlimited.
    pod_pids_limit: int | None = 4096
    # None: containers go under the runtime's default cgroup and no pids limit can be set.
    cgroups: PodCgroups | None = field(default_factory=PodCgroups)
    memory_capacity: int | None = None  # None: read /proc/meminfo
    runtime_handler: str = ""
    # containerd's registry configuration (config_path, certs.d); None: it has none.
    registry_config_dir: Path | None = None


@dataclass(frozen=True)
class ContainerRun:
    """One attempt at running a container: its runtime ID, or why it was never created."""

    name: str
    image: str
    attempt: int
    log_path: str  # relative to the pod's log directory, as CRI wants it
    container_id: str = ""
    waiting_reason: str = ""
    message: str = ""
    # Whether this attempt had to pull its image (None: it never got that far). The kubelet's
    # events say "pulled" or "already present" from it, without asking the runtime again.
    image_pulled: bool | None = None


@dataclass(frozen=True)
class PodRunState:
    """What the runtime layer remembers about a running pod, enough to query and kill it."""

    uid: str
    namespace: str
    name: str
    sandbox_id: str
    sandbox_config: bytes  # serialized pb.PodSandboxConfig; CreateContainer needs it again
    log_directory: Path
    restart_policy: str
    grace_seconds: int
    containers: tuple[ContainerRun, ...]
    # time.monotonic() when RunPodSandbox returned (None: not measured), for the kubelet's
    # per-pod start-up latency breakdown.
    sandbox_ready_at: float | None = None

    def container(self, name: str) -> ContainerRun:
        for run in self.containers:
            if run.name == name:
                return run
        raise KeyError(f"pod {self.namespace}/{self.name} has no container {name!r}")


@dataclass(frozen=True)
class ContainerStatusView:
    """A container's state in the Pod status vocabulary (waiting, running or terminated)."""

    name: str
    state: str
    image: str
    container_id: str = ""
    image_id: str = ""
    reason: str = ""
    message: str = ""
    exit_code: int | None = None
    started_at: str | None = None
    finished_at: str | None = None
    restart_count: int = 0

    def to_k8s(self) -> dict[str, Any]:
        """The `containerStatuses[]` entry of a v1 Pod status."""
        if self.state == "running":
            detail: dict[str, Any] = {"running": {"startedAt": self.started_at}}
        elif self.state == "terminated":
            detail = {"terminated": {key: value for key, value in (
                ("exitCode", self.exit_code), ("reason", self.reason), ("message", self.message),
                ("startedAt", self.started_at), ("finishedAt", self.finished_at),
                ("containerID", self.container_id)) if value not in (None, "")}}
        else:
            detail = {"waiting": {key: value for key, value in (
                ("reason", self.reason), ("message", self.message)) if value}}
        status: dict[str, Any] = {
            "name": self.name, "state": detail, "ready": self.state == "running",
            "started": self.state == "running", "restartCount": self.restart_count,
            "image": self.image, "imageID": self.image_id,
        }
        if self.container_id:
            status["containerID"] = self.container_id
        return status


@dataclass(frozen=True)
class ContainerLogFile:
    """A container attempt's CRI log file, and the runtime's ID for it ("" once it has been removed)."""

    path: Path
    container_id: str


@dataclass(frozen=True)
class PodStatusView:
    """A pod's phase, IP and container states as the runtime reports them."""

    phase: str
    sandbox_ready: bool
    pod_ip: str
    containers: tuple[ContainerStatusView, ...]

    def container(self, name: str) -> ContainerStatusView:
        for status in self.containers:
            if status.name == name:
                return status
        raise KeyError(name)


def _nanos_to_rfc3339(nanos: int) -> str | None:
    if nanos <= 0:
        return None
    return datetime.fromtimestamp(nanos / 1e9, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def expand_references(value: str, env: Mapping[str, str]) -> str:
    """Expand $(VAR) in a command or argument from the container's env; $$ is a literal $."""
    def substitute(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group(1)
        return env[name] if name in env else match.group(0)
    return _VARIABLE_REFERENCE.sub(substitute, value)


def image_pull_policy(container: Mapping[str, Any]) -> str:
    """The container's pull policy, defaulted as upstream (Always for :latest or no tag)."""
    policy = container.get("imagePullPolicy")
    if policy:
        return str(policy)
    image = str(container.get("image", ""))
    if "@" in image:
        return "IfNotPresent"
    last = image.rsplit("/", 1)[-1]
    return "Always" if ":" not in last or last.endswith(":latest") else "IfNotPresent"


def pod_phase(restart_policy: str, statuses: tuple[ContainerStatusView, ...]) -> str:
    """The pod phase from its containers' states (upstream kubelet getPhase, without init containers)."""
    waiting = sum(1 for status in statuses if status.state == "waiting")
    running = sum(1 for status in statuses if status.state == "running")
    stopped = [status for status in statuses if status.state == "terminated"]
    succeeded = sum(1 for status in stopped if status.exit_code == 0)
    if waiting:
        return "Pending"
    if running:
        return "Running"
    if stopped and len(stopped) == len(statuses):
        if restart_policy == "Always":
            return "Running"  # it is about to be restarted
        if succeeded == len(stopped):
            return "Succeeded"
        return "Running" if restart_policy == "OnFailure" else "Failed"
    return "Pending"


class PodRuntime:
    """Runs pods on one node through a CRI runtime. Thread-safe as far as the CRI client is."""

    def __init__(self, cri: CriClient, config: RuntimeConfig) -> None:
        if config.cgroups is None and config.pod_pids_limit is not None:
            raise ValueError("a pod pids limit needs pod cgroups (cgroupfs driver); set "
                             "pod_pids_limit=None to run without one")
        self._cri = cri
        self._config = config
        self._memory_capacity = config.memory_capacity or resources.node_memory_bytes()

    # ---- starting --------------------------------------------------------------------------

    def run_pod(self, pod: Mapping[str, Any]) -> PodRunState:
        """Admit the pod, create its sandbox and start its containers.

        Raises PodAdmissionError (nothing was created) or SandboxCreationError (nothing is left
        behind). A container that cannot be configured or started does not raise: the returned
        state records its waiting reason and message, as the pod status will show them.
        """
        meta = pod.get("metadata") or {}
        spec = pod.get("spec") or {}
        self._admit(pod)
        uid, namespace, name = str(meta["uid"]), str(meta["namespace"]), str(meta["name"])

        cgroups = self._config.cgroups
        log_directory = self._config.log_root / f"{namespace}_{name}_{uid}"
        try:
            sandbox_config = self._sandbox_config(
                pod, log_directory, cgroups.cgroup_parent(uid) if cgroups is not None else "")
        except ContainerConfigError as error:
            # Pod-level settings (the sandbox's user, groups) are wrong: nothing can run.
            raise PodAdmissionError("InvalidPod", error.message) from None
        if cgroups is not None:
            cgroups.create(uid, self._config.pod_pids_limit)
        try:
            log_directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            sandbox_id = self._cri.run_pod_sandbox(sandbox_config, self._config.runtime_handler)
        except (CriError, OSError) as error:
            self._remove_cgroup(uid)
            raise SandboxCreationError(f"pod {security.pod_display_name(pod)}: cannot create its "
                                       f"sandbox: {error}") from None

        state = PodRunState(
            uid=uid, namespace=namespace, name=name, sandbox_id=sandbox_id,
            sandbox_config=sandbox_config.SerializeToString(), log_directory=log_directory,
            restart_policy=str(spec.get("restartPolicy") or "Always"),
            grace_seconds=int(spec.get("terminationGracePeriodSeconds", DEFAULT_GRACE_SECONDS)),
            containers=(), sandbox_ready_at=time.monotonic(),
        )
        runs = tuple(self._start_container(pod, state, container, attempt=0)
                     for container in spec.get("containers") or ())
        return replace(state, containers=runs)

    def restart_container(self, pod: Mapping[str, Any], state: PodRunState, name: str) -> PodRunState:
        """Start the next attempt of container `name` (after it exited); the old one is removed,
        its log file kept."""
        previous = state.container(name)
        container = next((c for c in (pod.get("spec") or {}).get("containers") or ()
                          if c.get("name") == name), None)
        if container is None:
            raise KeyError(f"pod {state.namespace}/{state.name} spec has no container {name!r}")
        if previous.container_id:
            self._ignore_missing(self._cri.stop_container, previous.container_id, 0)
            self._ignore_missing(self._cri.remove_container, previous.container_id)
        run = self._start_container(pod, state, container, attempt=previous.attempt + 1)
        return replace(state, containers=tuple(run if c.name == name else c for c in state.containers))

    def _admit(self, pod: Mapping[str, Any]) -> None:
        meta = pod.get("metadata") or {}
        spec = pod.get("spec") or {}
        for key, pattern in (("uid", _UID), ("name", _DNS_SUBDOMAIN), ("namespace", _DNS_LABEL)):
            if not isinstance(meta.get(key), str) or not pattern.match(meta[key]):
                raise PodAdmissionError("InvalidPod", f"metadata.{key}: Invalid value: {meta.get(key)!r}")
        if not spec.get("containers"):
            raise PodAdmissionError("InvalidPod", "spec.containers: Required value")
        names = [container.get("name") for container in spec["containers"]]
        for name in names:
            if not isinstance(name, str) or not _DNS_LABEL.match(name):
                raise PodAdmissionError("InvalidPod", f"spec.containers[].name: Invalid value: {name!r}")
        if len(set(names)) != len(names):
            raise PodAdmissionError("InvalidPod", "spec.containers[].name: Duplicate value")
        for key in _UNSUPPORTED_CONTAINER_LISTS:
            if spec.get(key):
                raise PodAdmissionError("UnsupportedPodSpec", f"spec.{key} is not supported by this node yet")
        for container in spec["containers"]:
            for port in container.get("ports") or ():
                if port.get("hostPort"):
                    # No portmap plugin here: a host port would silently not be bound.
                    raise PodAdmissionError("UnsupportedPodSpec",
                                            f"containers[{container.get('name')}].ports: hostPort is "
                                            "not supported by this node")
        security.admit_pod(pod, self._config.node_security)

    def _sandbox_config(self, pod: Mapping[str, Any], log_directory: Path,
                        cgroup_parent: str) -> pb.PodSandboxConfig:
        meta = pod.get("metadata") or {}
        spec = pod.get("spec") or {}
        labels = {**(meta.get("labels") or {}), LABEL_POD_NAME: meta["name"],
                  LABEL_POD_NAMESPACE: meta["namespace"], LABEL_POD_UID: meta["uid"]}
        config = pb.PodSandboxConfig(
            metadata=pb.PodSandboxMetadata(name=meta["name"], uid=meta["uid"],
                                           namespace=meta["namespace"], attempt=0),
            log_directory=str(log_directory),
            labels=labels,
            annotations=meta.get("annotations") or {},
            linux=pb.LinuxPodSandboxConfig(
                cgroup_parent=cgroup_parent,
                security_context=security.sandbox_security_context(pod),
                sysctls=security.sandbox_sysctls(pod),
            ),
        )
        if not spec.get("hostNetwork"):
            # With the host's network the UTS namespace is the host's too: no hostname of our own.
            config.hostname = str(spec.get("hostname") or meta["name"])[:63]
        if spec.get("dnsPolicy") == "None" and spec.get("dnsConfig"):
            dns = spec["dnsConfig"]
            config.dns_config.CopyFrom(pb.DNSConfig(
                servers=dns.get("nameservers") or [], searches=dns.get("searches") or [],
                options=[o["name"] + (f":{o['value']}" if o.get("value") else "")
                         for o in dns.get("options") or ()]))
        return config

    def _start_container(self, pod: Mapping[str, Any], state: PodRunState,
                         container: Mapping[str, Any], attempt: int) -> ContainerRun:
        name = str(container.get("name", ""))
        image = str(container.get("image", ""))
        run = ContainerRun(name=name, image=image, attempt=attempt, log_path=f"{name}/{attempt}.log")
        try:
            image_status, pulled = self._ensure_image(container)
        except _ImageUnavailable as unavailable:
            return replace(run, waiting_reason=unavailable.reason, message=unavailable.message)
        run = replace(run, image_pulled=pulled)
        sandbox_config = pb.PodSandboxConfig.FromString(state.sandbox_config)
        try:
            config = self._container_config(pod, container, image_status, run)
        except ContainerConfigError as error:
            return replace(run, waiting_reason=error.reason, message=error.message)
        try:
            (state.log_directory / name).mkdir(parents=True, exist_ok=True, mode=0o700)
            container_id = self._cri.create_container(state.sandbox_id, config, sandbox_config)
        except (CriError, OSError) as error:
            return replace(run, waiting_reason="CreateContainerError", message=str(error))
        run = replace(run, container_id=container_id)
        try:
            self._cri.start_container(container_id)
        except CriError as error:
            return replace(run, waiting_reason="RunContainerError", message=str(error))
        return run

    def _ensure_image(self, container: Mapping[str, Any]) -> tuple[pb.Image, bool]:
        """The container's image as the runtime holds it (pulled first if the policy says so), and
        whether it had to be pulled."""
        image = str(container.get("image", ""))
        if not image:
            raise _ImageUnavailable("InvalidImageName", "container image is empty")
        policy = image_pull_policy(container)
        present = self._cri.image_status(image)
        if present is not None and policy != "Always":
            return present, False
        if present is None and policy == "Never":
            raise _ImageUnavailable("ErrImageNeverPull",
                                    f'Container image "{image}" is not present with pull policy of Never')
        # containerd pulls from a registry it has no configuration for over plain HTTP when the
        # registry is on loopback: never ask it to pull what it would not verify.
        refusal = pull_refusal(self._config.registry_config_dir, image)
        if refusal is not None:
            raise _ImageUnavailable("ErrImagePull", refusal)
        try:
            self._cri.pull_image(image)
        except CriError as error:
            raise _ImageUnavailable("ErrImagePull", str(error)) from None
        pulled = self._cri.image_status(image)
        if pulled is None:
            raise _ImageUnavailable("ErrImagePull", f'image "{image}" is not present after pulling it')
        return pulled, True

    def _container_config(self, pod: Mapping[str, Any], container: Mapping[str, Any],
                          image: pb.Image, run: ContainerRun) -> pb.ContainerConfig:
        name = run.name
        meta = pod.get("metadata") or {}
        if container.get("envFrom"):
            raise ContainerConfigError(f"containers[{name}].envFrom is not supported by this node yet")
        if container.get("volumeMounts") or container.get("volumeDevices"):
            raise ContainerConfigError(f"containers[{name}]: volumes are not supported by this node yet")
        env: dict[str, str] = {}
        for entry in container.get("env") or ():
            if entry.get("valueFrom") is not None:
                raise ContainerConfigError(f"containers[{name}].env[{entry.get('name')}].valueFrom is "
                                           "not supported by this node yet")
            env[str(entry["name"])] = expand_references(str(entry.get("value", "")), env)
        return pb.ContainerConfig(
            metadata=pb.ContainerMetadata(name=name, attempt=run.attempt),
            image=pb.ImageSpec(image=image.id, user_specified_image=run.image),
            command=[expand_references(str(part), env) for part in container.get("command") or ()],
            args=[expand_references(str(part), env) for part in container.get("args") or ()],
            working_dir=str(container.get("workingDir") or ""),
            envs=[pb.KeyValue(key=key, value=value) for key, value in env.items()],
            labels={LABEL_POD_NAME: meta["name"], LABEL_POD_NAMESPACE: meta["namespace"],
                    LABEL_POD_UID: meta["uid"], LABEL_CONTAINER_NAME: name},
            log_path=run.log_path,
            stdin=bool(container.get("stdin")), stdin_once=bool(container.get("stdinOnce")),
            tty=bool(container.get("tty")),
            linux=pb.LinuxContainerConfig(
                resources=resources.container_resources(pod, container, self._memory_capacity),
                security_context=security.container_security_context(
                    pod, container, security.ImageUser.from_cri(image), self._config.node_security),
            ),
        )

    # ---- observing -------------------------------------------------------------------------

    def status(self, state: PodRunState) -> PodStatusView:
        """The pod's current status as the runtime reports it."""
        try:
            sandbox = self._cri.pod_sandbox_status(state.sandbox_id).status
            ready, pod_ip = sandbox.state == pb.SANDBOX_READY, sandbox.network.ip
        except CriNotFound:
            ready, pod_ip = False, ""
        views = tuple(self._container_view(run) for run in state.containers)
        return PodStatusView(phase=pod_phase(state.restart_policy, views), sandbox_ready=ready,
                             pod_ip=pod_ip, containers=views)

    def _container_view(self, run: ContainerRun) -> ContainerStatusView:
        base = ContainerStatusView(name=run.name, state="waiting", image=run.image,
                                   reason=run.waiting_reason, message=run.message,
                                   restart_count=run.attempt)
        if not run.container_id:
            return base
        try:
            status = self._cri.container_status(run.container_id)
        except CriNotFound:
            return replace(base, reason=base.reason or "ContainerStatusUnknown",
                           message=base.message or "The container could not be located")
        base = replace(base, container_id=CONTAINER_ID_PREFIX + status.id, image_id=status.image_ref,
                       started_at=_nanos_to_rfc3339(status.started_at))
        if status.state == pb.CONTAINER_RUNNING:
            return replace(base, state="running", reason="", message="")
        if status.state == pb.CONTAINER_EXITED:
            return replace(base, state="terminated", exit_code=status.exit_code,
                           reason=status.reason, message=status.message,
                           finished_at=_nanos_to_rfc3339(status.finished_at))
        if status.state == pb.CONTAINER_CREATED and not base.reason:
            return replace(base, reason="ContainerCreating")
        return base

    def container_logs(self, state: PodRunState, container: str, tail_lines: int | None = None,
                       stream: str | None = None) -> str:
        """What container `container` printed (its current attempt), optionally the last lines."""
        run = state.container(container)
        path = state.log_directory / run.log_path
        if not path.exists():
            return ""
        return read_container_log(path, tail_lines=tail_lines, stream=stream)

    def find_container_log(self, pod_uid: str, container: str, previous: bool = False) -> ContainerLogFile | None:
        """Where the log of a container's current attempt is (or of the attempt before, with `previous`).

        Found as upstream's kubelet finds it: the runtime's container for the pod and name (the
        newest attempt), and the log path its ContainerStatus reports. None if the runtime has no
        such container, or no earlier attempt for `previous`. Raises CriError if the runtime fails.
        """
        found = self._cri.list_containers(labels={LABEL_POD_UID: pod_uid, LABEL_CONTAINER_NAME: container})
        if not found:
            return None
        current = max(found, key=lambda c: (c.metadata.attempt, c.created_at))
        try:
            status = self._cri.container_status(current.id)
        except CriNotFound:
            return None  # removed since it was listed
        if not status.log_path:
            return None
        path = Path(status.log_path)
        if not previous:
            return ContainerLogFile(path=path, container_id=current.id)
        if current.metadata.attempt == 0:
            return None
        # A restart removes the old container but keeps its file, <name>/<attempt>.log as
        # _start_container names it, next to the current one.
        return ContainerLogFile(path=path.with_name(f"{current.metadata.attempt - 1}.log"), container_id="")

    def container_running(self, container_id: str) -> bool:
        """Whether the runtime reports the container as running (upstream's test for following its log).

        A container the runtime no longer knows is not running; other runtime failures raise CriError.
        """
        if not container_id:
            return False
        try:
            return self._cri.container_status(container_id).state == pb.CONTAINER_RUNNING
        except CriNotFound:
            return False

    # ---- stopping --------------------------------------------------------------------------

    def kill_pod(self, state: PodRunState, grace_seconds: int | None = None,
                 remove: bool = True) -> None:
        """Stop every container (SIGTERM, SIGKILL after the grace period, all in parallel), then the
        sandbox; with `remove`, delete containers, sandbox and pod cgroup. Idempotent."""
        grace = state.grace_seconds if grace_seconds is None else max(grace_seconds, 0)
        ids = [run.container_id for run in state.containers if run.container_id]
        if ids:
            with ThreadPoolExecutor(max_workers=min(len(ids), 8)) as pool:
                list(pool.map(lambda cid: self._ignore_missing(self._cri.stop_container, cid, grace), ids))
        self._ignore_missing(self._cri.stop_pod_sandbox, state.sandbox_id)
        if not remove:
            return
        for container_id in ids:
            self._ignore_missing(self._cri.remove_container, container_id)
        self._ignore_missing(self._cri.remove_pod_sandbox, state.sandbox_id)
        self._remove_cgroup(state.uid)

    def _remove_cgroup(self, uid: str) -> None:
        if self._config.cgroups is not None:
            self._config.cgroups.remove(uid)

    @staticmethod
    def _ignore_missing(call: Any, *args: Any) -> None:
        try:
            call(*args)
        except CriNotFound:
            pass  # already gone: the goal of a stop/remove is reached


class _ImageUnavailable(Exception):
    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
