"""`labreport render`: measurement files + Jinja templates -> report.md and SVG charts.

Pure: the same files and templates give the same bytes. Every number in the report comes from
the context (context.py) built out of the measurement files; templates only choose words around
it.
"""

from __future__ import annotations

import contextlib
import difflib
import json
import signal
import threading
import traceback
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import jinja2
import jinja2.exceptions
import jinja2.loaders

from labreport.analysis.sources import load_sources
from labreport.bundle import bundled
from labreport.errors import LabreportError, StaleReportError
from labreport.host import fsutil
from labreport.report import DEFAULT_TEMPLATE, charts, filters, html
from labreport.report.context import Context
from labreport.report.sandbox import MAX_OUTPUT_CHARS, LabSandbox, TemplateLimitError

DEFAULT_TEMPLATES = bundled("templates")
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
    MemoryError,
)
CHART_DIR = "report"
MANIFEST = ".labreport-charts.json"  # in a chart folder: the report it belongs to, its charts
# A template is untrusted input: it runs sandboxed (sandbox.py), within this time, and is read
# only when it is at most this size.
RENDER_TIMEOUT_S = 60
MAX_TEMPLATE_BYTES = 4 << 20


class LabLoader(jinja2.FileSystemLoader):
    """Templates from their folders, each file confined to its folder (a partial that is a link
    leading out is refused, named) and of a template's size (checked before it is read)."""

    def get_source(
        self, environment: jinja2.Environment, template: str
    ) -> tuple[str, str, Callable[[], bool]]:
        pieces = jinja2.loaders.split_template_path(template)
        for folder in self.searchpath:
            path = Path(folder, *pieces)
            if path.is_file():
                fsutil.confined(Path(folder), path, f"template {template}")
                if path.stat().st_size > MAX_TEMPLATE_BYTES:
                    raise LabreportError(
                        f"template {path}: larger than {MAX_TEMPLATE_BYTES >> 20} MiB",
                        "a template is text of a few KiB: check the file",
                    )
                break
        try:
            return super().get_source(environment, template)
        except UnicodeDecodeError as error:
            raise LabreportError(
                f"template {template}: not UTF-8 text ({error.reason} at byte {error.start})",
                "save the template as UTF-8",
            ) from error


@dataclass
class Report:
    text: str  # report.md's Markdown, or (as_html) the whole HTML page
    charts: list[charts.Chart]
    lab: str  # the lab the files measured (one: files of two labs are refused)


def jinja_environment(templates: Path | None) -> jinja2.Environment:
    """User templates (if any) first, then the defaults: a user overrides or adds files."""
    search = [str(templates)] if templates else []
    env = LabSandbox(
        loader=LabLoader([*search, str(DEFAULT_TEMPLATES)]),
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
        fenced=filters.fenced,
    )
    env.tests["wasm"] = filters.is_wasm
    return env


def _template_location(error: BaseException, template: str = "template") -> str:
    """template:line of the innermost template frame (Jinja rewrites tracebacks to them); the
    frames are walked, no source file is read."""
    frames = [
        (frame.f_code.co_filename, line)
        for frame, line in traceback.walk_tb(error.__traceback__)
        if frame.f_code.co_filename.endswith(".j2")
    ]
    if not frames:
        return getattr(error, "name", None) or template
    filename, line = frames[-1]
    return f"{Path(filename).name}:{line}"


@contextlib.contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """TemplateLimitError after seconds (SIGALRM; in the main thread, where the CLI renders)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def expired(signum: int, frame: object) -> None:
        raise TemplateLimitError(f"rendering took longer than {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _limited(pieces: Iterator[str]) -> str:
    out: list[str] = []
    size = 0
    for piece in pieces:
        size += len(piece)
        if size > MAX_OUTPUT_CHARS:
            raise TemplateLimitError(f"the output passed {MAX_OUTPUT_CHARS:,} characters")
        out.append(piece)
    return "".join(out)


def chart_folder(output: Path) -> str:
    """Where a report's charts go, beside it and its own: report.md -> report/."""
    return output.stem if output.suffix else f"{output.name}-charts"


def inputs(paths: Sequence[Path], templates: Path | None) -> list[Path]:
    """Every file a render reads: the measurement files and every template file."""
    folders = [DEFAULT_TEMPLATES, *([templates] if templates else [])]
    return [*paths, *(f for folder in folders for f in folder.rglob("*") if f.is_file())]


def render(
    paths: Sequence[Path],
    templates: Path | None = None,
    template: str = DEFAULT_TEMPLATE,
    chart_dir: str = CHART_DIR,
    with_charts: bool = True,
    report_dir: Path | None = None,
) -> Report:
    """The report of these files; with_charts=False skips drawing (the fuzzer's fast lane);
    report_dir (the report's folder) names the files relative to it."""
    if templates is not None and not templates.is_dir():
        raise LabreportError(
            f"--templates {templates}: no such folder",
            "give a folder of templates (copy templates/, see templates/README.md)",
        )
    sources = load_sources(paths, report_dir)
    context = Context(sources, chart_dir)
    if with_charts:
        context.charts = charts.draw(context)
    env = jinja_environment(templates)
    try:
        with time_limit(RENDER_TIMEOUT_S):
            markdown = _limited(env.get_template(template).generate(ctx=context))
    except TemplateLimitError as error:
        raise LabreportError(
            f"{_template_location(error, template)}: stopped: {error}",
            "fix the template (a loop that never ends, or output far too large)",
        ) from error
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
    except jinja2.exceptions.SecurityError as error:
        raise LabreportError(
            f"{_template_location(error)}: not allowed in a template: {error}",
            "templates read figures and call only what templates/README.md lists",
        ) from error
    except TEMPLATE_RUNTIME_ERRORS as error:
        raise LabreportError(
            f"{_template_location(error)}: {type(error).__name__}: {error}",
            "fix the template (a filter on the wrong type, a division by zero, an include loop, "
            "or something the sandbox does not allow)",
        ) from error
    used = [c for c in context.charts.values() if charts.link(chart_dir, c.name) in markdown]
    return Report(markdown, used, context.lab)


def _manifest(output: Path, names: Iterable[str]) -> str:
    return fsutil.dump_json({"charts": sorted(set(names)), "report": _owner(output)})


def _owner(output: Path) -> str:
    return fsutil.shown(Path(output.name))


def as_html(report: Report, output: Path) -> Report:
    """The report as one HTML page at output: the charts inline, so no chart file is written."""
    folder = chart_folder(output)
    title = report.text.partition("\n")[0].removeprefix("# ")
    inline = {charts.link(folder, chart.name): chart.svg for chart in report.charts}
    return Report(html.page(report.text, title, inline), [], report.lab)


def outputs(report: Report, output: Path) -> dict[Path, str]:
    """report.md, its charts and, in their folder, the manifest of what labreport wrote there
    (what a later render may remove: nothing else in the folder is ever touched)."""
    files = {output: report.text}
    if report.charts:
        chart_root = output.parent / chart_folder(output)
        files.update({chart_root / chart.name: chart.svg for chart in report.charts})
        files[chart_root / MANIFEST] = _manifest(output, (c.name for c in report.charts))
    return files


def _owned_charts(output: Path) -> set[Path]:
    """The chart files an earlier render of this report wrote, by its manifest; a folder whose
    manifest names another report is refused (two reports never share charts)."""
    chart_root = output.parent / chart_folder(output)
    manifest = chart_root / MANIFEST
    if manifest.is_symlink() or not manifest.is_file():
        return set()
    try:
        listed = json.loads(manifest.read_text(encoding="utf-8"))
        owner, names = listed["report"], listed["charts"]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise LabreportError(
            f"{manifest}: not a chart manifest labreport wrote ({type(error).__name__})",
            "give -o another name: labreport keeps its charts in a folder of their own",
        ) from error
    if owner != _owner(output):
        raise LabreportError(
            f"{chart_root}: holds the charts of {owner}, not of {_owner(output)}",
            "give -o a name of its own: two reports never share a chart folder",
        )
    return {
        chart_root / name
        for name in names
        if isinstance(name, str) and charts.CHART_NAME.match(name)
        and (chart_root / name).is_file() and not (chart_root / name).is_symlink()
    }  # fmt: skip


def write(report: Report, output: Path, root: Path | None = None) -> list[Path]:
    """report.md and its charts, all or none: never a report that links to missing charts.

    output is where the report really goes (a link already followed: its charts go beside the
    file, so its links hold); root, the folder nothing may be written outside of. Charts are
    named by their content, so new ones never replace what the old report links to; report.md
    is renamed last, and that rename is the commit. On a failure before it, the charts this
    write added are removed; after it, the charts the folder's manifest lists that the new
    report no longer links to are (nothing else: a user's own file there stays).
    """
    files = outputs(report, output)
    before = _owned_charts(output)
    manifest = output.parent / chart_folder(output) / MANIFEST
    final = files.get(manifest)
    if before and final is not None:  # until the old charts are gone, it lists them too
        files[manifest] = _manifest(
            output, [p.name for p in before] + [c.name for c in report.charts]
        )
    added = [path for path in files if path != output and not path.exists()]
    try:
        fsutil.atomic_write_all(files, commit_last=output, root=root or output.parent)
    except BaseException:
        for path in added:
            with contextlib.suppress(OSError):
                path.unlink()
        raise
    for old in before - set(files):
        with contextlib.suppress(OSError):
            old.unlink()
    if final is not None and files[manifest] != final:
        fsutil.atomic_write_text(manifest, final)
    elif final is None and before:
        with contextlib.suppress(OSError):
            manifest.unlink()
    return list(files)


def stale(report: Report, output: Path, context_lines: int = 2) -> list[str]:
    """Short diffs for every file that differs from what rendering gives now."""
    problems = []
    for path, text in outputs(report, output).items():
        current = path.read_bytes() if path.is_file() else None
        if current == text.encode("utf-8"):
            continue
        if current is None:
            problems.append(f"{path}: missing")
            continue
        diff = list(
            difflib.unified_diff(
                current.decode("utf-8", "replace").splitlines(),
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
