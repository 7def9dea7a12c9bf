"""A pod's story in Events, as real kubectl shows it: Scheduled by the scheduler, Pulled/Created/Started by the kubelet.

Needs a real node (root, containerd, runc, busybox-static, CNI plugins); skips without them
(fails when CI=true).
"""
from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest

from tests.integration.cluster import RESTRICTED_IMAGE, Cluster, node_cluster, restricted_pod_yaml

pytestmark = pytest.mark.integration

NODE = "sk-events-node"
NAMESPACE = "events-test"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with node_cluster(tmp_path_factory.mktemp("events"), NODE) as running:
        running.kubectl("create", "namespace", NAMESPACE)
        yield running


def events_of(cluster: Cluster, name: str) -> list[dict]:
    listed = cluster.kubectl("get", "events", "-n", NAMESPACE, "--field-selector", f"involvedObject.name={name}",
                             "-o", "json").stdout
    return json.loads(listed)["items"]


def wait_for_reasons(cluster: Cluster, name: str, wanted: set[str], timeout: float = 30) -> list[dict]:
    deadline = time.monotonic() + timeout
    while True:
        events = events_of(cluster, name)
        if wanted <= {e["reason"] for e in events}:
            return events
        assert time.monotonic() < deadline, f"events so far: {[(e['reason'], e['message']) for e in events]}"
        time.sleep(0.3)


def test_a_pod_tells_its_story_in_events(cluster: Cluster) -> None:
    cluster.kubectl("apply", "-f", "-", input=restricted_pod_yaml("web", NAMESPACE))
    cluster.kubectl("wait", "-n", NAMESPACE, "--for=condition=Ready", "pod/web", "--timeout=60s", timeout=90)
    events = wait_for_reasons(cluster, "web", {"Scheduled", "Pulled", "Created", "Started"})
    told = {e["reason"]: e for e in events}
    assert told["Scheduled"]["message"] == f"Successfully assigned {NAMESPACE}/web to {NODE}"
    assert told["Scheduled"]["source"]["component"] == "default-scheduler"
    assert told["Pulled"]["message"] == f'Container image "{RESTRICTED_IMAGE}" already present on machine'
    assert told["Created"]["message"] == "Created container: app"
    assert told["Started"]["message"] == "Started container app"
    for reason in ("Pulled", "Created", "Started"):
        assert told[reason]["source"] == {"component": "kubelet", "host": NODE}
        assert told[reason]["involvedObject"]["fieldPath"] == "spec.containers{app}"
        assert told[reason]["reportingInstance"] == NODE

    described = cluster.kubectl("describe", "pod", "web", "-n", NAMESPACE).stdout
    story = described[described.index("Events:"):]
    for line in (f"Successfully assigned {NAMESPACE}/web to {NODE}", "Created container: app",
                 "Started container app", f'Container image "{RESTRICTED_IMAGE}" already present on machine'):
        assert line in story, story
    assert "default-scheduler" in story and "kubelet" in story

    listed = cluster.kubectl("get", "events", "-n", NAMESPACE).stdout
    assert "pod/web" in listed and "Started" in listed

    cluster.kubectl("delete", "pod", "web", "-n", NAMESPACE, "--grace-period=1", "--wait=true", timeout=60)
    killing = {e["reason"]: e for e in wait_for_reasons(cluster, "web", {"Killing"})}["Killing"]
    assert killing["message"] == "Stopping container app"
