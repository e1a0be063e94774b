"""The Docker engine through docker-py: one connection helper, with a timeout."""

from __future__ import annotations

import shutil
import time
import urllib.parse
from collections.abc import Callable, Mapping
from typing import Any

import docker
import docker.errors
import requests.exceptions
import urllib3.exceptions

from labreport.errors import LabreportError
from labreport.host.endpoints import EngineEndpoint, context_host

API_TIMEOUT_S = 60
# Every container and image labreport creates carries these labels.
LABEL_MANAGED = "org.labreport.managed"
LABEL_RUN = "org.labreport.run"
LABEL_ROLE = "org.labreport.role"

SCHEMES = ("unix", "tcp", "ssh", "http", "https")
# An engine that died mid-run cannot be cleaned through; the private engine's next start does it.
ENGINE_GONE = (docker.errors.APIError, requests.exceptions.RequestException)
# What a Docker engine that fails or dies mid-call raises (a broken build stream is urllib3's).
ENGINE_ERRORS = (
    docker.errors.DockerException,
    requests.exceptions.RequestException,
    urllib3.exceptions.HTTPError,
)


def resolve_target(docker_host: str | None, context: str | None) -> str | None:
    """The URL of the engine the user named with --docker-host or --context (None: neither)."""
    if docker_host and context:
        raise LabreportError("--docker-host and --context both name an engine", "give one of them")
    if context:
        docker_host = context_host(context)
    if docker_host is None:
        return None
    scheme = checked_url(docker_host, "the engine URL").partition("://")[0]
    if "://" not in docker_host or scheme not in SCHEMES:
        raise LabreportError(
            f"--docker-host {docker_host}: not an engine URL",
            "use unix:///path/docker.sock, tcp://host:2375 or ssh://user@host",
        )
    if scheme == "ssh" and shutil.which("ssh") is None:
        raise LabreportError(
            f"{docker_host} needs the ssh client, which is not on PATH",
            "install openssh-client, or use a tcp:// or unix:// endpoint",
        )
    return docker_host


def checked_url(url: str, named: str) -> str:
    """An engine URL that parses (a bracketed IPv6 host closed, a port in 0-65535), or one error
    saying where it was named (DOCKER_HOST, --docker-host, a context)."""
    try:
        parts = urllib.parse.urlsplit(url)
        _ = parts.port  # raises on a port beyond 65535 or not a number
    except ValueError as error:
        raise LabreportError(
            f"{named} {url}: not an engine URL ({error})",
            "use unix:///path/docker.sock, tcp://host:2375 or ssh://user@host",
        ) from error
    return url


def connect(*, url: str, timeout_s: int = API_TIMEOUT_S) -> docker.DockerClient:
    """A client whose every call has a timeout; a clear error when the daemon is not there."""
    checked_url(url, "the engine URL")
    try:
        client = docker.DockerClient(
            base_url=url, timeout=timeout_s, use_ssh_client=url.startswith("ssh://")
        )
        client.ping()
    except (docker.errors.DockerException, requests.exceptions.RequestException) as error:
        raise LabreportError(
            f"Docker daemon not reachable at {url}",
            "start it (labreport never starts the host's engine), or leave out the docker "
            "runtimes with --skip docker-cli,docker-api,docker-wasm,docker-wasm-aot",
        ) from error
    return client


def same_engine_check(url: str) -> Callable[[], None]:
    """A check that the engine at url is still the one that answered now (its engine ID).

    Raises at once when nothing answers; the check raises when another engine (or none)
    answers later, so a run never mixes two engines' figures.
    """
    client = connect(timeout_s=20, url=url)
    try:
        first = str(client.info().get("ID", ""))
    finally:
        client.close()

    def check() -> None:
        try:
            client = connect(timeout_s=20, url=url)
        except LabreportError as error:
            raise LabreportError(
                f"the engine at {url} stopped answering mid-run", "check it and run again"
            ) from error
        try:
            now = str(client.info().get("ID", ""))
        finally:
            client.close()
        if now != first:
            raise LabreportError(
                f"a different engine answers at {url} now (ID {now[:12]}, was {first[:12]})",
                "measure again against one engine",
            )

    return check


CONTAINERD_STORE = "containerd image store"  # engine_facts' image_store for such an engine


def has_containerd_store(info: Mapping[str, Any]) -> bool:
    """Does the engine keep images in containerd (the containerd image store)?"""
    status = " ".join(str(part) for pair in info.get("DriverStatus") or [] for part in pair)
    return "io.containerd.snapshotter" in status


def engine_facts(client: docker.DockerClient, endpoint: EngineEndpoint) -> dict[str, Any]:
    """The engine's version, storage driver and cgroup setup, as the daemon reports them."""
    info = client.info()
    version = client.version()
    store = (
        CONTAINERD_STORE
        if has_containerd_store(info)
        else f"graph driver ({info.get('Driver', 'unknown')})"
    )
    return {
        "source": endpoint.source,
        "url": endpoint.url,
        "engine_id": str(info.get("ID", "unknown")),
        "engine_name": str(info.get("Name", "unknown")),
        "engine_os": f"{info.get('OperatingSystem', '?')} {info.get('OSType', '?')}/"
        f"{info.get('Architecture', '?')}",
        "shares_host_with_client": "yes" if endpoint.local else "no",
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


REMOVE_TIMEOUT_S = 120
BUILD_SETTLE_S = 20


def remove_run_containers(client: docker.DockerClient, run_id: str, settle_s: float = 1.0) -> int:
    """Remove every container one run created, running or not; returns how many."""
    return remove_containers(client, f"{LABEL_RUN}={run_id}", settle_s)


def remove_containers(client: docker.DockerClient, label: str, settle_s: float = 1.0) -> int:
    """Remove every container with this label, running or not; returns how many.

    The last sweep of a run: a container whose create call was cut off by Ctrl-C is found
    here by its label even though no Python object ever held it. The daemon may still be
    finishing such a create when the sweep starts, so it looks again until settle_s has
    passed with nothing new.
    """
    removed = 0
    quiet_since = started = time.monotonic()
    while time.monotonic() - started < REMOVE_TIMEOUT_S:
        # The low-level list: one call, no inspect per container (containers.list inspects
        # each, and raises NotFound when a `--rm` container is gone in between).
        found = client.api.containers(all=True, filters={"label": label})
        for container in found:
            try:
                client.api.remove_container(container["Id"], force=True)
                removed += 1
            except docker.errors.NotFound:
                pass  # gone meanwhile
            except docker.errors.APIError as error:
                if error.status_code != 409:  # 409: its removal is already in progress
                    raise
        if found:
            quiet_since = time.monotonic()
        elif time.monotonic() - quiet_since >= settle_s:
            break
        time.sleep(0.2)
    return removed  # one still listed after the timeout is the leak audit's to name


def remove_build_leftovers(client: docker.DockerClient) -> None:
    """Dangling images of labreport's builds, with their untagged parents: none is kept.

    A multi-stage build leaves its earlier stages' last images untagged. They inherit the
    go-builder image's LABEL_MANAGED label, so only labreport's are matched. The current build's
    are tagged as the stage cache first (build/image.py), so what is dangling here is an older
    build's cache whose tag moved, or stages of a build that failed.

    Each is removed by itself, never by an image prune: on the containerd image store a prune
    takes every untagged image, the parents of a tagged one included, so the stage cache lost
    the images of its steps and every build ran its compile again (seen on Docker 26: 20 s a
    build). The plain listing shows only images that no other image is built on, as the
    classic store's prune takes them. Removing one takes its untagged parents on the classic
    store but not on the containerd store, where each parent is listed next once nothing is
    built on it: so the listing is taken again until it is empty.
    """
    label = f"{LABEL_MANAGED}=true"
    deadline = time.monotonic() + BUILD_SETTLE_S
    while True:
        removed = 0
        for image in client.api.images(filters={"dangling": True, "label": label}, quiet=True):
            try:
                client.api.remove_image(image, noprune=False)
                removed += 1
            except docker.errors.NotFound:
                pass  # gone meanwhile
            except docker.errors.APIError as error:
                if error.status_code != 409:  # 409: in use; a later pass or the audit sees it
                    raise
        if removed and time.monotonic() < deadline:
            continue  # their parents may be listed now
        # A build cut off by Ctrl-C is still being wound down by the daemon while its step
        # containers (labelled like the builder) exist; its last image appears after them.
        building = client.api.containers(all=True, filters={"label": label})
        if not building or time.monotonic() > deadline:
            return
        time.sleep(0.3)
