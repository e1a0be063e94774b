"""`labreport render`: measurement files, through the Jinja templates, into report.md and its
charts; with check, nothing is written and a stale report is an error (exit 1)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from labreport.analysis.sources import default_sources
from labreport.commands.common import lab_folder
from labreport.host import fsutil
from labreport.report import render


@dataclass(frozen=True)
class Rendered:
    output: Path
    sources: int  # how many measurement files
    written: list[Path]  # none with check


def run(
    files: Sequence[Path],
    lab: Path | None,
    output: Path | None,
    templates: Path | None,
    template: str,
    check: bool,
) -> Rendered:
    folder = lab_folder(lab)
    if templates is None and (folder / "templates").is_dir():
        templates = folder / "templates"  # the lab's own, layered on the defaults
    output = output or folder / "report.md"
    paths = list(files) or default_sources(folder / "measurements")
    report = render.render(
        paths, templates, template, chart_dir=render.chart_folder(output), report_dir=output.parent
    )
    fsutil.refuse_inputs(render.outputs(report, output), render.inputs(paths, templates), "-o")
    if check:
        render.check(report, output)
        return Rendered(output, len(paths), [])
    return Rendered(output, len(paths), render.write(report, output))
