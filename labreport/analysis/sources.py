"""The measurement files a report or a comparison reads: loaded (each refused with one error
naming the file and the field), named as the report names them, and found in a folder."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from labreport.errors import LabreportError
from labreport.host import fsutil
from labreport.record.files import read_measurement
from labreport.record.models import Measurement


@dataclass
class Source:
    path: str
    sha256: str
    measurement: Measurement


def load_sources(paths: Sequence[Path], shown_from: Path | None = None) -> list[Source]:
    """The files, each named as given or, with shown_from (a report's folder), relative to it:
    a report names its sources the same from whatever folder it was rendered."""
    if not paths:
        raise LabreportError("no measurement file given", "run 'labreport measure' first")
    sources = []
    for path in paths:
        measurement, digest = read_measurement(path)
        shown = Path(os.path.relpath(path, shown_from)) if shown_from is not None else path
        sources.append(Source(fsutil.shown(shown), digest, measurement))
    return sources


def default_sources(directory: Path) -> list[Path]:
    """The complete measurement files in directory; partial ones only when named."""
    found = sorted(
        p
        for p in directory.glob("*.json")
        if p.is_file() and not p.name.endswith(".partial.json")  # a FIFO would hang the read
    )
    if not found:
        raise LabreportError(
            f"no measurement files in {directory}", "run 'labreport measure' or pass files"
        )
    return found
