"""A typed client for the CRI runtime.v1 RuntimeService and ImageService over a unix socket.

Every call has an explicit deadline (a hung runtime must not hang the kubelet's sync loop), and
every gRPC failure becomes a `CriError` subclass naming the RPC and the runtime's message. Request
contents are never put into an error: a PullImage request can carry registry credentials.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import grpc

from securekube.kubelet.cri import runtime_v1_pb2 as pb
from securekube.kubelet.cri import runtime_v1_pb2_grpc as pb_grpc

# The CRI API version the kubelet announces in Version (upstream sends "v1" for runtime.v1).
CRI_API_VERSION = "v1"
# Upstream kubelet's limit for CRI messages (ListContainers on a busy node can be large).
_MAX_MESSAGE_BYTES = 16 * 1024 * 1024

_Response = TypeVar("_Response")


class CriError(RuntimeError):
    """A CRI call failed; `method` is the RPC, `code` the gRPC status, `details` the runtime's message."""

    def __init__(self, method: str, code: grpc.StatusCode, details: str) -> None:
        super().__init__(f"CRI {method} failed ({code.name}): {details}")
        self.method = method
        self.code = code
        self.details = details


class CriNotFound(CriError):
    """The sandbox, container or image named in the call does not exist."""


class CriUnavailable(CriError):
    """The runtime's socket does not answer (containerd is not running or is restarting)."""


class CriTimeout(CriError):
    """The runtime did not answer within the call's deadline."""


def _error_for(method: str, error: grpc.RpcError) -> CriError:
    code = error.code() if isinstance(error, grpc.Call) else grpc.StatusCode.UNKNOWN
    details = (error.details() if isinstance(error, grpc.Call) else None) or str(code.name)
    kind = {
        grpc.StatusCode.NOT_FOUND: CriNotFound,
        grpc.StatusCode.UNAVAILABLE: CriUnavailable,
        grpc.StatusCode.DEADLINE_EXCEEDED: CriTimeout,
    }.get(code, CriError)
    return kind(method, code, details)


@dataclass(frozen=True)
class CriTimeouts:
    """Deadlines (seconds) per kind of call; upstream's kubelet uses 2 min for all but image pulls."""

    default: float = 10.0
    # Sandbox set-up runs CNI and starts the sandbox container; container create unpacks rootfs.
    sandbox: float = 60.0
    container: float = 30.0
    pull: float = 300.0
    connect: float = 5.0


class CriClient:
    """A connection to one CRI runtime. Thread-safe (one gRPC channel); close it when done."""

    def __init__(self, socket_path: Path | str, timeouts: CriTimeouts | None = None) -> None:
        self._timeouts = timeouts or CriTimeouts()
        self._target = f"unix://{Path(socket_path).resolve()}"
        self._channel = grpc.insecure_channel(self._target, options=[
            ("grpc.max_receive_message_length", _MAX_MESSAGE_BYTES),
            ("grpc.max_send_message_length", _MAX_MESSAGE_BYTES),
        ])
        self._runtime = pb_grpc.RuntimeServiceStub(self._channel)
        self._images = pb_grpc.ImageServiceStub(self._channel)

    def __enter__(self) -> CriClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._channel.close()

    def wait_ready(self) -> None:
        """Block until the socket accepts a connection, or raise CriUnavailable."""
        try:
            grpc.channel_ready_future(self._channel).result(timeout=self._timeouts.connect)
        except grpc.FutureTimeoutError:
            raise CriUnavailable("connect", grpc.StatusCode.UNAVAILABLE,
                                 f"no CRI runtime answers on {self._target} "
                                 f"within {self._timeouts.connect:g} s") from None

    def _call(self, method: str, rpc: Callable[..., _Response], request: object,
              timeout: float) -> _Response:
        try:
            return rpc(request, timeout=timeout)
        except grpc.RpcError as error:
            raise _error_for(method, error) from None

    # ---- RuntimeService ----------------------------------------------------------------------

    def version(self) -> pb.VersionResponse:
        return self._call("Version", self._runtime.Version,
                          pb.VersionRequest(version=CRI_API_VERSION), self._timeouts.default)

    def run_pod_sandbox(self, config: pb.PodSandboxConfig, runtime_handler: str = "") -> str:
        response = self._call("RunPodSandbox", self._runtime.RunPodSandbox,
                              pb.RunPodSandboxRequest(config=config, runtime_handler=runtime_handler),
                              self._timeouts.sandbox)
        return response.pod_sandbox_id

    def stop_pod_sandbox(self, sandbox_id: str) -> None:
        self._call("StopPodSandbox", self._runtime.StopPodSandbox,
                   pb.StopPodSandboxRequest(pod_sandbox_id=sandbox_id), self._timeouts.sandbox)

    def remove_pod_sandbox(self, sandbox_id: str) -> None:
        self._call("RemovePodSandbox", self._runtime.RemovePodSandbox,
                   pb.RemovePodSandboxRequest(pod_sandbox_id=sandbox_id), self._timeouts.sandbox)

    def pod_sandbox_status(self, sandbox_id: str, verbose: bool = False) -> pb.PodSandboxStatusResponse:
        return self._call("PodSandboxStatus", self._runtime.PodSandboxStatus,
                          pb.PodSandboxStatusRequest(pod_sandbox_id=sandbox_id, verbose=verbose),
                          self._timeouts.default)

    def list_pod_sandboxes(self, labels: Mapping[str, str] | None = None) -> list[pb.PodSandbox]:
        request = pb.ListPodSandboxRequest(filter=pb.PodSandboxFilter(label_selector=labels or {}))
        response = self._call("ListPodSandbox", self._runtime.ListPodSandbox, request,
                              self._timeouts.default)
        return list(response.items)

    def create_container(self, sandbox_id: str, config: pb.ContainerConfig,
                         sandbox_config: pb.PodSandboxConfig) -> str:
        request = pb.CreateContainerRequest(pod_sandbox_id=sandbox_id, config=config,
                                            sandbox_config=sandbox_config)
        response = self._call("CreateContainer", self._runtime.CreateContainer, request,
                              self._timeouts.container)
        return response.container_id

    def start_container(self, container_id: str) -> None:
        self._call("StartContainer", self._runtime.StartContainer,
                   pb.StartContainerRequest(container_id=container_id), self._timeouts.container)

    def stop_container(self, container_id: str, grace_seconds: int) -> None:
        """Stop with SIGTERM, then SIGKILL after `grace_seconds`; the deadline covers the grace."""
        self._call("StopContainer", self._runtime.StopContainer,
                   pb.StopContainerRequest(container_id=container_id, timeout=grace_seconds),
                   grace_seconds + self._timeouts.container)

    def remove_container(self, container_id: str) -> None:
        self._call("RemoveContainer", self._runtime.RemoveContainer,
                   pb.RemoveContainerRequest(container_id=container_id), self._timeouts.container)

    def list_containers(self, sandbox_id: str = "",
                        labels: Mapping[str, str] | None = None) -> list[pb.Container]:
        request = pb.ListContainersRequest(filter=pb.ContainerFilter(
            pod_sandbox_id=sandbox_id, label_selector=labels or {}))
        response = self._call("ListContainers", self._runtime.ListContainers, request,
                              self._timeouts.default)
        return list(response.containers)

    def container_status(self, container_id: str, verbose: bool = False) -> pb.ContainerStatus:
        response = self._call("ContainerStatus", self._runtime.ContainerStatus,
                              pb.ContainerStatusRequest(container_id=container_id, verbose=verbose),
                              self._timeouts.default)
        return response.status

    # ---- ImageService ------------------------------------------------------------------------

    def list_images(self) -> list[pb.Image]:
        response = self._call("ListImages", self._images.ListImages, pb.ListImagesRequest(),
                              self._timeouts.default)
        return list(response.images)

    def image_status(self, image: str) -> pb.Image | None:
        """The image as the runtime knows it, or None when it is not present."""
        response = self._call("ImageStatus", self._images.ImageStatus,
                              pb.ImageStatusRequest(image=pb.ImageSpec(image=image)),
                              self._timeouts.default)
        return response.image if response.HasField("image") else None

    def pull_image(self, image: str, auth: pb.AuthConfig | None = None,
                   sandbox_config: pb.PodSandboxConfig | None = None) -> str:
        request = pb.PullImageRequest(image=pb.ImageSpec(image=image), auth=auth,
                                      sandbox_config=sandbox_config)
        return self._call("PullImage", self._images.PullImage, request, self._timeouts.pull).image_ref

    def remove_image(self, image: str) -> None:
        self._call("RemoveImage", self._images.RemoveImage,
                   pb.RemoveImageRequest(image=pb.ImageSpec(image=image)), self._timeouts.default)
