"""What every command looks up the same way: the lab folder or config it names, and the engine
and containerd it talks to (the one place that reads them from the environment)."""

from __future__ import annotations

from pathlib import Path

from labreport import config
from labreport.errors import LabreportError
from labreport.host.endpoints import Endpoints


def lab_folder(lab: Path | None) -> Path:
    """The folder --lab names (the current one by default), which must exist."""
    if lab is not None and not lab.is_dir():
        raise LabreportError(f"--lab {lab}: no such folder", "give a lab folder (see labs/)")
    return lab or Path()


def lab_config(lab: Path | None, config_path: Path | None) -> Path:
    """The lab config that --lab or --config names (not both); lab.toml by default."""
    if lab is not None and config_path is not None:
        raise LabreportError(
            "--lab and --config both name a lab", "give one: --lab FOLDER or --config FILE"
        )
    return config_path or lab_folder(lab) / config.CONFIG_NAME


def host_endpoints() -> Endpoints:
    """The engine and containerd the environment names (DOCKER_HOST, DOCKER_CONTEXT,
    LABREPORT_CONTAINERD_SOCKET, else the defaults); every step below takes them as arguments."""
    return Endpoints.from_environment()
