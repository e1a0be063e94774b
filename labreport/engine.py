"""The Docker engine through docker-py: one connection helper, with a timeout."""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import docker
import docker.errors
import requests.exceptions

from labreport import tools
from labreport.errors import LabreportError

API_TIMEOUT_S = 60
# Every container and image labreport creates carries these labels (see build.py).
LABEL_MANAGED = "org.labreport.managed"
LABEL_RUN = "org.labreport.run"


def engine_url() -> str:
    """The engine labreport talks to: its private engine while that runs, else DOCKER_HOST."""
    return tools.private_engine_url() or os.environ.get(
        "DOCKER_HOST", "unix:///var/run/docker.sock"
    )


def engine_source() -> str:
    """host or private, for doctor and the measurement file."""
    return "private" if tools.private_engine_url() else "host"


def cli() -> list[str]:
    """The docker CLI, pointed at the engine in use (the private one needs --host)."""
    private = tools.private_engine_url()
    return ["docker", "--host", private] if private else ["docker"]


CGROUP_MEMORY_ROOT = Path("/sys/fs/cgroup/memory")
PRIVATE_CGROUP_PARENT = "labreport-engine"  # the private engine's daemon-wide cgroup-parent


def container_cgroup(container_id: str, host_config: Mapping[str, Any]) -> Path:
    """cgroup v1 memory directory of a container: its own parent, else the engine's
    (the private engine's daemon-wide one, or Docker's default `docker` with cgroupfs)."""
    parent = host_config.get("CgroupParent") or (
        PRIVATE_CGROUP_PARENT if tools.private_engine_url() else "docker"
    )
    return CGROUP_MEMORY_ROOT / str(parent).strip("/") / container_id


def connect(timeout_s: int = API_TIMEOUT_S, url: str | None = None) -> docker.DockerClient:
    """A client whose every call has a timeout; a clear error when the daemon is not there."""
    url = url or engine_url()
    try:
        client = docker.DockerClient(base_url=url, timeout=timeout_s)
        client.ping()
    except (docker.errors.DockerException, requests.exceptions.RequestException) as error:
        raise LabreportError(
            f"Docker daemon not reachable at {url}",
            "start it (scripts/setup starts one if none runs), or leave out the docker "
            "runtimes with --skip docker-cli,docker-api,docker-wasm,docker-wasm-aot",
        ) from error
    return client


def has_containerd_store(info: Mapping[str, Any]) -> bool:
    """Does the engine keep images in containerd (the containerd image store)?"""
    status = " ".join(str(part) for pair in info.get("DriverStatus") or [] for part in pair)
    return "io.containerd.snapshotter" in status


def engine_facts(client: docker.DockerClient) -> dict[str, Any]:
    """The engine's version, storage driver and cgroup setup, as the daemon reports them."""
    info = client.info()
    version = client.version()
    store = (
        "containerd image store"
        if has_containerd_store(info)
        else f"graph driver ({info.get('Driver', 'unknown')})"
    )
    return {
        "source": engine_source(),
        "url": engine_url(),
        "image_store": store,
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


def remove_build_leftovers(client: docker.DockerClient) -> None:
    """Dangling images of labreport's builds, where they are never reused.

    A multi-stage build leaves its build stage's images untagged. They inherit the go-builder
    image's LABEL_MANAGED label, so only labreport's are matched. On a graph driver they are the
    build cache that the next build reuses (one set, kept like the go-builder image); on the
    containerd image store every build makes new ones, so they are removed after each run.
    """
    if has_containerd_store(client.info()):
        client.images.prune(filters={"dangling": True, "label": f"{LABEL_MANAGED}=true"})
