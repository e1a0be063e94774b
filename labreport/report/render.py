"""`labreport render`: measurement files + Jinja templates -> report.md and SVG charts.

Pure: the same files and templates give the same bytes. Every number in the report comes from
the context (context.py) built out of the measurement files; templates only choose words around
it.
"""

from __future__ import annotations

import difflib
import traceback
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import jinja2

from labreport.analysis.views import load_sources
from labreport.errors import LabreportError, StaleReportError
from labreport.host import fsutil
from labreport.report import charts, filters
from labreport.report.context import Context

DEFAULT_TEMPLATES = Path(__file__).resolve().parent.parent.parent / "templates"
DEFAULT_TEMPLATE = "report.md.j2"
# What a template's own code can raise while it renders; reported with the template and line.
TEMPLATE_RUNTIME_ERRORS = (
    jinja2.TemplateError,
    TypeError,
    ValueError,
    ArithmeticError,
    AttributeError,
    KeyError,
    IndexError,
    RecursionError,
)
CHART_DIR = "report"


@dataclass
class Report:
    markdown: str
    charts: list[charts.Chart]


def jinja_environment(templates: Path | None) -> jinja2.Environment:
    """User templates (if any) first, then the defaults: a user overrides or adds files."""
    search = [str(templates)] if templates else []
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader([*search, str(DEFAULT_TEMPLATES)]),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,  # Markdown, not HTML
    )
    env.filters.update(
        ms=filters.fmt_ms,
        bytes=filters.fmt_bytes,
        mib=filters.fmt_mib,
        pct=filters.fmt_pct,
        times=filters.fmt_times,
    )
    return env


def _template_location(error: BaseException) -> str:
    """template:line of the innermost template frame (Jinja rewrites tracebacks to them)."""
    frames = [f for f in traceback.extract_tb(error.__traceback__) if f.filename.endswith(".j2")]
    if not frames:
        return getattr(error, "name", None) or "template"
    frame = frames[-1]
    return f"{Path(frame.filename).name}:{frame.lineno}"


def render(
    paths: Sequence[Path],
    templates: Path | None = None,
    template: str = DEFAULT_TEMPLATE,
    chart_dir: str = CHART_DIR,
    with_charts: bool = True,
) -> Report:
    """The report of these files; with_charts=False skips drawing (the fuzzer's fast lane)."""
    if templates is not None and not templates.is_dir():
        raise LabreportError(
            f"--templates {templates}: no such folder",
            "give a folder of templates (copy templates/, see templates/README.md)",
        )
    sources = load_sources(paths)
    context = Context(sources, chart_dir, with_charts)
    env = jinja_environment(templates)
    try:
        markdown = env.get_template(template).render(ctx=context)
    except jinja2.TemplateNotFound as error:
        raise LabreportError(
            f"template {error.name} not found in {templates or DEFAULT_TEMPLATES}",
            "check --template and --templates",
        ) from error
    except jinja2.UndefinedError as error:
        raise LabreportError(
            f"{_template_location(error)}: {error.message}",
            "fix the template: every variable must exist (see templates/README.md)",
        ) from error
    except jinja2.TemplateSyntaxError as error:
        raise LabreportError(
            f"{error.name or template}:{error.lineno}: {error.message}", "fix the template"
        ) from error
    except TEMPLATE_RUNTIME_ERRORS as error:
        raise LabreportError(
            f"{_template_location(error)}: {type(error).__name__}: {error}",
            "fix the template (a filter on the wrong type, a division by zero, an include loop)",
        ) from error
    used = [c for c in context.charts.values() if f"{chart_dir}/{c.name}" in markdown]
    return Report(markdown, used)


def outputs(report: Report, output: Path) -> dict[Path, str]:
    chart_root = output.parent / CHART_DIR
    files = {output: report.markdown}
    files.update({chart_root / chart.name: chart.svg for chart in report.charts})
    return files


def write(report: Report, output: Path) -> list[Path]:
    """report.md and its charts, all or none: never a report that links to missing charts."""
    files = outputs(report, output)
    fsutil.atomic_write_all(files)
    return list(files)


def stale(report: Report, output: Path, context_lines: int = 2) -> list[str]:
    """Short diffs for every file that differs from what rendering gives now."""
    problems = []
    for path, text in outputs(report, output).items():
        current = path.read_text(encoding="utf-8") if path.is_file() else None
        if current == text:
            continue
        if current is None:
            problems.append(f"{path}: missing")
            continue
        diff = list(
            difflib.unified_diff(
                current.splitlines(),
                text.splitlines(),
                f"{path} (on disk)",
                f"{path} (rendered)",
                n=context_lines,
                lineterm="",
            )
        )
        shown = diff[:40] + ([f"... {len(diff) - 40} more diff lines"] if len(diff) > 40 else [])
        problems.append("\n".join(shown))
    return problems


def check(report: Report, output: Path) -> None:
    """`render --check`: raises StaleReportError, with the diffs, when a file is stale."""
    problems = stale(report, output)
    if problems:
        raise StaleReportError(
            f"{len(problems)} file(s) differ from what the measurements render to",
            "run 'labreport render' (and never edit report.md by hand)",
            details=problems,
        )
