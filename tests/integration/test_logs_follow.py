"""`kubectl logs -f` end to end: real kubectl → API server → kubelet API → a container on containerd.

The pod prints a line every 0.2 s for about 2 s, then exits. kubectl must show the lines as they
are printed (the first long before the last), and exit 0 once the container has exited. Needs
root, containerd, runc, busybox-static and the CNI plugins; skips without them (fails when CI=true).
"""
from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Iterator

import pytest
import yaml

from tests.integration.cluster import Cluster, node_cluster, restricted_pod_yaml

pytestmark = pytest.mark.integration

NODE = "sk-logs-node"
NAMESPACE = "default"  # restricted Pod Security, as every lab namespace by default
LINES = [f"line {n}" for n in range(1, 11)]
PRINTER = "for n in 1 2 3 4 5 6 7 8 9 10; do echo line $n; sleep 0.2; done"
NOT_STARTED = ("is waiting to start", "is not running on this node")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with node_cluster(tmp_path_factory.mktemp("logs"), NODE) as running:
        yield running


def printer_pod(name: str) -> str:
    """A pod the lab's admission accepts that prints LINES, 0.2 s apart, and exits."""
    pod = yaml.safe_load(restricted_pod_yaml(name, NAMESPACE))
    pod["spec"]["restartPolicy"] = "Never"
    pod["spec"]["containers"][0]["command"] = ["sh", "-c", PRINTER]
    return yaml.safe_dump(pod)


class Follower:
    """`kubectl logs -f` in the background, with the time each line arrived."""

    def __init__(self, cluster: Cluster, *args: str) -> None:
        self.process = cluster.kubectl_background("logs", "-f", "-n", NAMESPACE, *args)
        self.arrivals: list[tuple[float, str]] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.arrivals.append((time.monotonic(), line.rstrip("\n")))

    def wait(self, timeout: float) -> tuple[int, str, float]:
        """(exit code, stderr, when it exited); the process is killed if it runs past `timeout`."""
        try:
            code = self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise
        finally:
            exited = time.monotonic()
            self._reader.join(timeout=5)
            assert self.process.stdout is not None and self.process.stderr is not None
            stderr = self.process.stderr.read()
            self.process.stdout.close()
            self.process.stderr.close()
        return code, stderr, exited


def start_following(cluster: Cluster, pod: str) -> Follower:
    """`kubectl logs -f` streaming the pod, started as soon as the kubelet runs it (before, it refuses)."""
    deadline = time.monotonic() + 30
    while True:
        follower = Follower(cluster, pod)
        while follower.process.poll() is None and not follower.arrivals and time.monotonic() < deadline:
            time.sleep(0.02)
        if follower.arrivals:
            return follower
        code, stderr, _ = follower.wait(timeout=5)
        assert any(reason in stderr for reason in NOT_STARTED), f"kubectl logs -f failed ({code}): {stderr}"
        assert time.monotonic() < deadline, stderr
        time.sleep(0.1)


def test_kubectl_logs_follow_streams_lines_as_printed_and_ends_with_the_container(cluster: Cluster) -> None:
    cluster.kubectl("apply", "-f", "-", input=printer_pod("printer"))
    cluster.kubectl("wait", "-n", NAMESPACE, f"--for=jsonpath={{.spec.nodeName}}={NODE}", "pod/printer",
                    "--timeout=30s", timeout=60)
    follower = start_following(cluster, "printer")
    code, stderr, exited = follower.wait(timeout=30)
    assert code == 0, stderr
    assert [line for _, line in follower.arrivals] == LINES
    first, last = follower.arrivals[0][0], follower.arrivals[-1][0]
    # Printed 0.2 s apart over ~2 s: relayed as printed, the first arrives long before the last
    # (a buffered relay would hand them all over at once when the container ends).
    assert last - first > 0.8, follower.arrivals
    assert exited - last < 5  # the stream ended once the container had exited
    phase = cluster.kubectl("get", "pod", "-n", NAMESPACE, "printer", "-o", "jsonpath={.status.phase}").stdout
    assert phase in ("Running", "Succeeded")  # its status may lag; the container itself has exited

    # The finished container's log stays readable, with upstream's options.
    tail = cluster.kubectl("logs", "-n", NAMESPACE, "printer", "--tail=2", "--timestamps").stdout.splitlines()
    assert [line.split(" ", 1)[1] for line in tail] == LINES[-2:]
    assert all(len(line.split(" ", 1)[0]) == len("2026-01-01T00:00:00.000000000Z") for line in tail)
    assert cluster.kubectl("logs", "-n", NAMESPACE, "printer", "--limit-bytes=8").stdout == "line 1\nl"


def test_upstreams_refusals_reach_kubectl(cluster: Cluster) -> None:
    cluster.kubectl("apply", "-f", "-", input=printer_pod("refusals"))
    unknown = cluster.kubectl("logs", "-f", "-n", NAMESPACE, "refusals", "-c", "nope", check=False)
    assert unknown.returncode == 1
    assert "container nope is not valid for pod refusals" in unknown.stderr
    cluster.kubectl("wait", "-n", NAMESPACE, f"--for=jsonpath={{.spec.nodeName}}={NODE}", "pod/refusals",
                    "--timeout=30s", timeout=60)
    deadline = time.monotonic() + 30
    while True:  # once the kubelet runs it, there is a current container but never a previous one
        previous = cluster.kubectl("logs", "-n", NAMESPACE, "refusals", "--previous", check=False)
        if not any(reason in previous.stderr for reason in NOT_STARTED) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert previous.returncode == 1
    assert 'previous terminated container "app" in pod "refusals" not found' in previous.stderr
