from __future__ import annotations

import pytest

from tests.integration.cluster import Cluster, free_port


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory):
    """One running lab cluster per test module."""
    root = tmp_path_factory.mktemp("cluster")
    running = Cluster(root / "data", free_port()).start()
    yield running
    running.stop()
