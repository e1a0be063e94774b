"""`labreport render`: measurement files, through the Jinja templates, into report.md and its
charts; with check, nothing is written and a stale report is an error (exit 1).

Rendering runs no code and reads or writes nothing outside what it was given: the files named
(or the lab's own measurements/), the templates (the lab's own templates/ or --templates), and
the report with its chart folder, inside the report's folder. A link in the lab that leads out
of it is refused, named (fsutil.confined)."""

from __future__ import annotations

import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from labreport import config
from labreport.analysis.sources import default_sources
from labreport.commands.common import lab_folder
from labreport.errors import LabreportError
from labreport.host import fsutil
from labreport.report import ReportFormat, render


@dataclass(frozen=True)
class Rendered:
    output: Path
    sources: int  # how many measurement files
    written: list[Path]  # none with check


def _lab_name(folder: Path) -> str | None:
    """The name in the lab folder's lab.toml, if it has one that reads (rendering needs no
    valid config: only a name to hold the files against)."""
    path = folder / config.CONFIG_NAME
    if not path.is_file():
        return None
    fsutil.confined(folder, path, str(path))  # a link out of the lab is refused, not skipped
    try:
        text = fsutil.read_bounded(path, config.MAX_CONFIG_BYTES, "lab config").decode()
        name = tomllib.loads(text).get("name")
    except (LabreportError, ValueError, UnicodeDecodeError):
        return None
    return name if isinstance(name, str) else None


@dataclass(frozen=True)
class Options:
    files: Sequence[Path]
    lab: Path | None
    output: Path | None
    templates: Path | None
    template: str
    check: bool
    output_format: ReportFormat = ReportFormat.MD


def run(chosen: Options) -> Rendered:
    files, lab, output, templates = chosen.files, chosen.lab, chosen.output, chosen.templates
    html = chosen.output_format == ReportFormat.HTML
    folder = lab_folder(lab)
    if not files and not any((folder / n).exists() for n in (config.CONFIG_NAME, "measurements")):
        raise LabreportError(
            f"no lab in {folder.resolve()} (no {config.CONFIG_NAME}, no measurements/), "
            "and no measurement files given",
            "cd to a lab folder, give --lab FOLDER or the files; `labreport init` makes a lab here",
        )
    own = folder / "templates"
    if templates is None and own.is_dir():
        templates = fsutil.confined(folder, own, "the lab's templates")  # layered on the defaults
    output = output or folder / ("report.html" if html else "report.md")
    where = fsutil.destination(output, f"-o {output}")  # a link inside its folder followed
    paths = list(files) or [
        fsutil.confined(folder, path, "a measurement file")
        for path in default_sources(folder / "measurements")
    ]
    report = render.render(
        paths, templates, chosen.template, render.chart_folder(where), report_dir=where.parent
    )
    name = _lab_name(folder)
    if name is not None and report.lab != name:
        raise LabreportError(
            f"the measurements are of lab {report.lab!r}, this folder's lab.toml is {name!r}",
            "render them in their own lab's folder (--lab), whose templates describe them",
        )
    if html:
        report = render.as_html(report, where)
    fsutil.refuse_inputs(render.outputs(report, where), render.inputs(paths, templates), "-o")
    if chosen.check:
        render.check(report, where)
        return Rendered(output, len(paths), [])
    return Rendered(output, len(paths), render.write(report, where, root=output.parent))
