"""`labreport doctor`: every component labreport can use on this host, found or why not; with a
lab, the build tools its config runs too."""

from __future__ import annotations

from pathlib import Path

from labreport import config
from labreport.commands.common import host_endpoints, lab_config
from labreport.errors import MissingComponentsError
from labreport.inventory.components import Component, diagnose


def run(lab: Path | None = None) -> list[Component]:
    lab_cfg = config.load(lab_config(lab, None)) if lab else None
    return diagnose(host_endpoints(), lab_cfg)


def require(components: list[Component]) -> None:
    """--strict: a required component that is missing is an error (exit 1)."""
    missing = [c.name for c in components if not c.found and not c.optional]
    if missing:
        raise MissingComponentsError(f"missing: {', '.join(missing)}", "run `labreport setup`")
