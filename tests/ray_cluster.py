"""A real Ray cluster on 127.0.0.1 for the tests: a head that runs no task and worker nodes."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

# Loopback only, no usage reports, and the extra nodes join without Ray 2.60's auth token.
RAY_ENV = {
    "RAY_USAGE_STATS_ENABLED": "0",
    "RAY_AUTH_MODE": "disabled",
    "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
}


@contextmanager
def local_cluster(
    workers: int = 2, cpus: int = 1, files: Path | None = None
) -> Iterator[tuple[Any, list[Any]]]:
    """(cluster, worker nodes); `cluster.address` is the head's GCS address for --eval-ray.

    With `files`, worker node i keeps shipped files in files/node-i, as machines of their own would.
    """
    saved = {name: os.environ.get(name) for name in RAY_ENV}
    os.environ.update(RAY_ENV)  # the nodes started below inherit it
    from ray.cluster_utils import Cluster

    cluster = Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": 0, "include_dashboard": False, "node_ip_address": "127.0.0.1"},
    )
    try:
        nodes = [
            cluster.add_node(
                num_cpus=cpus,
                node_ip_address="127.0.0.1",
                env_vars={"POLICYEVAL_RAY_FILES_DIR": str(files / f"node-{i}")} if files else None,
            )
            for i in range(workers)
        ]
        cluster.wait_for_nodes()
        yield cluster, nodes
    finally:
        cluster.shutdown()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
