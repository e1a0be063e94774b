"""The Docker engine through docker-py: one connection helper, with a timeout."""

from __future__ import annotations

import os
import time
from typing import Any

import docker
import docker.errors
import requests.exceptions

from labreport.errors import LabreportError

API_TIMEOUT_S = 60
# Every container and image labreport creates carries these labels (see build.py).
LABEL_MANAGED = "org.labreport.managed"
LABEL_RUN = "org.labreport.run"


def engine_url() -> str:
    return os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")


def connect(timeout_s: int = API_TIMEOUT_S) -> docker.DockerClient:
    """A client whose every call has a timeout; a clear error when the daemon is not there."""
    try:
        client = docker.from_env(timeout=timeout_s)
        client.ping()
    except (docker.errors.DockerException, requests.exceptions.RequestException) as error:
        raise LabreportError(
            f"Docker daemon not reachable at {engine_url()}",
            "start it (scripts/setup starts one if none runs), "
            "or leave out the docker runtimes with --skip docker",
        ) from error
    return client


def engine_facts(client: docker.DockerClient) -> dict[str, Any]:
    """The engine's version, storage driver and cgroup setup, as the daemon reports them."""
    info = client.info()
    version = client.version()
    return {
        "engine_version": str(version.get("Version", "unknown")),
        "api_version": str(version.get("ApiVersion", "unknown")),
        "storage_driver": str(info.get("Driver", "unknown")),
        "cgroup_version": str(info.get("CgroupVersion", "unknown")),
        "cgroup_driver": str(info.get("CgroupDriver", "unknown")),
        "runtimes": sorted(info.get("Runtimes", {})),
        "containerd_version": next(
            (
                str(component.get("Version"))
                for component in version.get("Components", [])
                if component.get("Name") == "containerd"
            ),
            "unknown",
        ),
    }


def remove_run_containers(client: docker.DockerClient, run_id: str, settle_s: float = 1.0) -> int:
    """Remove every container one run created, running or not; returns how many.

    The last sweep of a run: a container whose create call was cut off by Ctrl-C is found
    here by its label even though no Python object ever held it. The daemon may still be
    finishing such a create when the sweep starts, so it looks again until settle_s has
    passed with nothing new.
    """
    removed = 0
    quiet_since = time.monotonic()
    while True:
        found = client.containers.list(all=True, filters={"label": f"{LABEL_RUN}={run_id}"})
        for container in found:
            try:
                container.remove(force=True)
                removed += 1
            except docker.errors.NotFound:
                pass
        if found:
            quiet_since = time.monotonic()
        elif time.monotonic() - quiet_since >= settle_s:
            return removed
        time.sleep(0.2)
