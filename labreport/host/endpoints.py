"""Which Docker engine and which containerd a command talks to: values, passed explicitly.

The commands read them from the environment (commands/common.py, the one caller of
`from_environment`): the host's engine (DOCKER_HOST, else DOCKER_CONTEXT's, else the default
socket: the docker CLI's order, owned by `named_engine`) and the engine's own containerd (or
LABREPORT_CONTAINERD_SOCKET). `measure`'s session replaces them with labreport's private engine, a
private containerd or the target the user named. Every step below the commands takes them as a
required argument.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from labreport.errors import LabreportError
from labreport.host import proc

DEFAULT_ENGINE_URL = "unix:///var/run/docker.sock"
ENGINE_CONTAINERD_SOCKETS = (
    Path("/var/run/docker/containerd/containerd.sock"),
    Path("/run/containerd/containerd.sock"),
)
CONTAINERD_NAMESPACE = "labreport"
DOCKER_DEFAULT_CGROUP_PARENT = "docker"  # Docker's own parent of containers' cgroups (cgroupfs)


def context_host(name: str) -> str:
    """The engine URL of a docker context (`docker context inspect`)."""
    done = proc.run(
        ["docker", "context", "inspect", name, "--format", "{{.Endpoints.docker.Host}}"],
        timeout_s=30,
        check=False,
        what=f"docker context inspect {name}",
    )
    host = done.stdout.strip()
    if done.returncode != 0 or not host:
        detail = proc.tail(done.stderr, 200)
        raise LabreportError(
            f"docker context {name} does not exist" + (f" ({detail})" if detail else ""),
            "list them with 'docker context ls'",
        )
    return host


def named_context() -> str | None:
    """The docker context the environment names (DOCKER_CONTEXT), as the docker CLI reads it;
    None for none or `default` (the default socket)."""
    name = os.environ.get("DOCKER_CONTEXT", "").strip()
    return name if name and name != "default" else None


def named_engine(
    docker_host: str | None, context: str | None
) -> tuple[str | None, str | None, str]:
    """The engine a command is pointed at, in the docker CLI's order: an option (--docker-host,
    --context), else DOCKER_HOST, else DOCKER_CONTEXT; (url, context, where it was named).
    Neither named: (None, None, "host"), the default socket."""
    if docker_host or context:
        return docker_host, context, "given"
    if os.environ.get("DOCKER_HOST"):
        return os.environ["DOCKER_HOST"], None, "DOCKER_HOST"
    context = named_context()
    if context:
        return None, context, "DOCKER_CONTEXT"
    return None, None, "host"


def is_local(url: str) -> bool:
    """Does the engine at url run on this host (a unix socket, or loopback)?"""
    scheme, _, rest = url.partition("://")
    if scheme == "unix":
        return True
    host = rest.split("@")[-1].rsplit(":", 1)[0].strip("[]").split("/")[0]
    return host in ("localhost", "::1") or host.startswith("127.")


@dataclass(frozen=True)
class EngineEndpoint:
    """A Docker engine: its URL, where labreport got it from, and its containers' default
    cgroup parent (the private engine has a daemon-wide one of its own)."""

    url: str
    source: (
        str  # host (the default socket), DOCKER_HOST, private, or given (--docker-host, --context)
    )
    cgroup_parent: str = DOCKER_DEFAULT_CGROUP_PARENT

    @classmethod
    def from_environment(cls) -> EngineEndpoint:
        """The engine the environment names (named_engine's order), else the default socket."""
        url, context, source = named_engine(None, None)
        if context:
            url = context_host(context)
        return cls(url or DEFAULT_ENGINE_URL, source)

    @property
    def local(self) -> bool:
        return is_local(self.url)

    def cli(self) -> list[str]:
        """The docker CLI pointed at this engine: named with --host, but for the default one."""
        return ["docker"] if self.source == "host" else ["docker", "--host", self.url]


@dataclass(frozen=True)
class ContainerdEndpoint:
    """A containerd socket (None: none found) and, in words, whose containerd it is."""

    socket: Path | None
    source: str
    needs_root: bool = False  # there is one, but only root may reach it

    @classmethod
    def from_environment(cls) -> ContainerdEndpoint:
        """LABREPORT_CONTAINERD_SOCKET, else the engine's own containerd, else none."""
        override = os.environ.get("LABREPORT_CONTAINERD_SOCKET")
        if override:
            return cls(Path(override), "given by the user (LABREPORT_CONTAINERD_SOCKET)")
        for candidate in ENGINE_CONTAINERD_SOCKETS:
            try:
                if candidate.is_socket():
                    return cls(candidate, "the Docker engine's own containerd")
            except PermissionError:  # its folder is root's: a user in the docker group
                return cls(
                    None,
                    f"the Docker engine's containerd at {candidate}, whose folder only root "
                    "may enter",
                    needs_root=True,
                )
        return cls(None, "none found")


@dataclass(frozen=True)
class Endpoints:
    """The engine and the containerd of one command."""

    engine: EngineEndpoint
    containerd: ContainerdEndpoint

    @classmethod
    def from_environment(cls) -> Endpoints:
        return cls(EngineEndpoint.from_environment(), ContainerdEndpoint.from_environment())
