"""The command line: parses options and calls one function per command; no logic lives here."""

from __future__ import annotations

import dataclasses
import enum
import functools
import json
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, NoReturn, ParamSpec, TypeVar

import typer

from labreport import __version__, config, lab_folder
from labreport.build import plan as build_plan
from labreport.errors import (
    LabreportError,
    LeftoversError,
    MissingComponentsError,
    RunInterruptedError,
)
from labreport.host import doctor, engine, fsutil, leftovers, shim_cache
from labreport.host.endpoints import is_local, named_context
from labreport.host.private_containerd import ContainerdMode
from labreport.host.private_engine import EngineMode
from labreport.measure import plan as measure_plan
from labreport.measure import session
from labreport.report import DEFAULT_TEMPLATE

# The analysis and the report (scipy, matplotlib: 1.3 of the 1.5 s that importing this module
# took) are imported by the commands that use them, so that every other command, --help and
# each run's start do not wait for them.

P = ParamSpec("P")
R = TypeVar("R")
E = TypeVar("E", bound=enum.Enum)

app = typer.Typer(
    help="Measure a container lab from real builds and render an honest report.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="The lab config (default: lab.toml).", dir_okay=False),
]
LabOption = Annotated[
    Path | None,
    typer.Option(
        "--lab",
        help="A lab folder: its lab.toml, measurements/, templates/ and report.md "
        "(default: the current folder).",
        file_okay=False,
    ),
]


def lab_folder_path(lab: Path | None) -> Path:
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
    return config_path or lab_folder_path(lab) / config.CONFIG_NAME


def exit_with(error: LabreportError) -> NoReturn:
    """The one way out for an error: its details, `error:` and `hint:`, and its exit code."""
    for line in error.details:
        typer.echo(line, err=True)
    typer.echo(f"error: {error.message}", err=True)
    if error.hint:
        typer.echo(f"hint: {error.hint}", err=True)
    raise typer.Exit(error.exit_code)


def user_errors(command: Callable[P, R]) -> Callable[P, R]:
    """A LabreportError (with its exit code) or Ctrl-C becomes `error:` + `hint:`, no traceback."""

    @functools.wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except LabreportError as error:
            failure = error
        except OSError as error:  # a path the user gave that the system refused
            where = f"{error.filename}: " if error.filename else ""
            failure = LabreportError(
                f"{where}{error.strerror or error}", "check the path and its permissions"
            )
        except KeyboardInterrupt:
            # Writes are atomic: an interrupted command leaves the old file or none.
            failure = RunInterruptedError(
                "interrupted", "nothing half-written was kept; run the command again"
            )
        exit_with(failure)

    return wrapper


class BadValue(typer.BadParameter):
    """An option given a value it cannot take: `--opt value: why`, and its own hint."""

    def __init__(self, message: str, hint: str) -> None:
        super().__init__(message)
        self.hint = hint

    def format_message(self) -> str:
        option = self.param.opts[0] if self.param is not None and self.param.opts else ""
        return f"{option} {self.message}".strip()


class NotAChoice(BadValue):
    """A choice option given a value it does not have: `--opt value: not a choice`."""

    def __init__(self, value: str, choices: list[str]) -> None:
        super().__init__(f"{value}: not a choice", f"choose from: {', '.join(choices)}")


def output_file(value: str | Path) -> Path:
    """The parser of an output file option: `dir/` (a folder, said with its slash) is refused
    before Path() would drop the slash and write a file named dir."""
    if isinstance(value, Path):
        return value
    if value.endswith("/"):
        raise BadValue(
            f"{value}: names a folder, not a file", f"give a file name, e.g. {value}report.md"
        )
    return Path(value)


def choice(kind: type[E]) -> Callable[[str], E]:
    """The parser of an Enum option (typer shows its values in --help)."""

    def parse(value: str | E) -> E:
        if isinstance(value, kind):
            return value
        try:
            return kind(value)
        except ValueError:
            raise NotAChoice(str(value), [str(member.value) for member in kind]) from None

    return parse


class OutputFormat(enum.StrEnum):
    TABLE = "table"  # the terminal
    MD = "md"  # Markdown


@app.command("doctor")
@user_errors
def doctor_command(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    strict: Annotated[
        bool, typer.Option("--strict", help="Exit 1 when a required component is missing.")
    ] = False,
    lab: LabOption = None,
) -> None:
    """Show every component labreport can use on this host: found with its version, or why not;
    with --lab, the build tools that lab's config runs too."""
    components = doctor.diagnose(config=config.load(lab_config(lab, None)) if lab else None)
    if as_json:
        typer.echo(json.dumps([c.as_dict() for c in components], indent=2, sort_keys=True))
    else:
        from labreport.report import terminal

        typer.echo(terminal.doctor_table(components))
    missing = [c.name for c in components if not c.found and not c.optional]
    if strict and missing:
        raise MissingComponentsError(f"missing: {', '.join(missing)}", "run scripts/setup")


@app.command("build")
@user_errors
def build_command(lab: LabOption = None, config_path: ConfigOption = None) -> None:
    """Build the lab's program natively, as a WASI module and as the scratch image; show sizes."""
    typer.echo(build_plan.build_all(config.load(lab_config(lab, config_path))))


@app.command("new-lab")
@user_errors
def new_lab_command(
    name: Annotated[str, typer.Argument(help="The new lab's name (it names its folder).")],
    source: Annotated[
        Path,
        typer.Option(
            "--from",
            help="The lab folder to start from (default: the current folder's lab).",
            file_okay=False,
        ),
    ] = Path(),
    labs_dir: Annotated[
        Path, typer.Option("--into", help="Where lab folders live.", file_okay=False)
    ] = Path("labs"),
) -> None:
    """Start a lab folder from another lab: its lab.toml, program and templates, named anew."""
    folder = lab_folder.new_lab(name, lab_folder_path(source), labs_dir)
    typer.echo(f"made {folder}: edit its lab.toml, program and templates, then")
    typer.echo(f"  labreport measure --lab {folder} && labreport render --lab {folder}")


@app.command("measure")
@user_errors
def measure_command(
    lab_dir: LabOption = None,
    config_path: ConfigOption = None,
    runs: Annotated[int | None, typer.Option(help="Measured runs per runtime.", min=1)] = None,
    warmup: Annotated[int | None, typer.Option(help="Warm-up runs, not counted.", min=0)] = None,
    runtime: Annotated[
        list[str] | None,
        typer.Option(
            help="Only these runtimes (repeat or comma-separate); each must be available."
        ),
    ] = None,
    skip: Annotated[
        list[str] | None, typer.Option(help="Leave these runtimes out (repeat or comma-separate).")
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="Default: measurements/<lab>.json in the lab's folder",
            parser=output_file,
        ),
    ] = None,
    timeout: Annotated[
        float | None, typer.Option(help="Seconds one run may take before it is killed.", min=0.1)
    ] = None,
    resume: Annotated[
        bool,
        typer.Option(
            help="Continue an interrupted run from its partial file (<output>.partial.json), "
            "if the config, sources, environment and options still match."
        ),
    ] = False,
    memory: Annotated[bool, typer.Option(help="Measure server-mode memory.")] = True,
    containerd: Annotated[
        ContainerdMode,
        typer.Option(
            help="Which containerd runs the ctr runtimes: auto (the engine's, else a private "
            "one), engine, or private (started under the state directory, stopped after).",
            parser=choice(ContainerdMode),
        ),
    ] = ContainerdMode.AUTO,
    engine_mode: Annotated[
        EngineMode,
        typer.Option(
            "--engine",
            help="Which Docker engine runs the docker runtimes: auto (the host's where it has "
            "what they need, else labreport's private Docker 26 with the containerd image "
            "store), host, or private (started under the state directory, stopped after).",
            parser=choice(EngineMode),
        ),
    ] = EngineMode.AUTO,
    docker_host: Annotated[
        str | None,
        typer.Option(
            help="Measure the Docker engine at this URL (unix://, tcp://, ssh://); runtimes "
            "that run on this host are then recorded as not on this target if it is remote."
        ),
    ] = None,
    context: Annotated[
        str | None, typer.Option(help="Measure the engine of this docker context.")
    ] = None,
) -> None:
    """Build every variant, run it on every runtime the host has, write measurements/*.json."""
    config_path = lab_config(lab_dir, config_path)
    lab = config.load(config_path)
    if output is None:  # the lab's own measurements/, made for a new lab
        output = config_path.parent / "measurements" / f"{lab.name}.json"
        output.parent.mkdir(exist_ok=True)
    plan = measure_plan.Plan(
        runs=runs or lab.measure.runs,
        warmup=lab.measure.warmup if warmup is None else warmup,
        timeout_s=timeout or lab.measure.timeout_s,
        output=output,
        include=measure_plan.runtime_names(runtime, "--runtime"),
        skip=measure_plan.runtime_names(skip, "--skip"),
        memory=memory,
        resume=resume,
        runs_by_runtime=lab.measure.runs_by_runtime,
    )
    measure_plan.check_plan(plan, inputs=[config_path, *lab.input_files()])
    source = "given"
    if not (docker_host or context):  # what the docker CLI would talk to
        if os.environ.get("DOCKER_HOST"):
            docker_host, source = os.environ["DOCKER_HOST"], "DOCKER_HOST"
        elif named_context():
            context, source = named_context(), "DOCKER_CONTEXT"
    target = engine.resolve_target(docker_host, context)
    if target:
        plan = dataclasses.replace(
            plan, target=target, target_is_local=is_local(target), target_source=source
        )
    result = session.measure_lab(
        lab, config_path, plan, containerd=containerd, engine_mode=engine_mode
    )
    from labreport.report import terminal

    typer.echo(terminal.summary(result, plan.output))


@app.command("render")
@user_errors
def render_command(
    files: Annotated[
        list[Path] | None,
        typer.Argument(
            help="Measurement files. Default: every complete one in the lab's measurements/."
        ),
    ] = None,
    lab: LabOption = None,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="The report to write (default: report.md in the lab's folder).",
            parser=output_file,
        ),
    ] = None,
    templates: Annotated[
        Path | None,
        typer.Option(
            help="A folder of templates that override or add to the defaults "
            "(default: the lab's templates/).",
            file_okay=False,
        ),
    ] = None,
    template: Annotated[str, typer.Option(help="The template to render.")] = DEFAULT_TEMPLATE,
    check: Annotated[
        bool, typer.Option("--check", help="Write nothing; exit 1 if the report is stale.")
    ] = False,
) -> None:
    """Turn measurements/*.json into report.md with charts, through the Jinja templates."""
    from labreport.analysis import views
    from labreport.report import render

    folder = lab_folder_path(lab)
    if templates is None and (folder / "templates").is_dir():
        templates = folder / "templates"  # the lab's own, layered on the defaults
    output = output or folder / "report.md"
    paths = files or views.default_sources(folder / "measurements")
    report = render.render(
        paths, templates, template, chart_dir=render.chart_folder(output), report_dir=output.parent
    )
    fsutil.refuse_inputs(render.outputs(report, output), render.inputs(paths, templates), "-o")
    if check:
        render.check(report, output)
        typer.echo(f"{output} and its charts are up to date ({len(paths)} measurement file(s))")
        return
    for path in render.write(report, output):
        typer.echo(f"wrote {path}")


@app.command("compare")
@user_errors
def compare_command(
    old: Annotated[Path, typer.Argument(help="A measurement file, or a folder of them.")],
    new: Annotated[Path, typer.Argument(help="The same, to compare with OLD.")],
    output_format: Annotated[
        OutputFormat,
        typer.Option(
            "--format", help="table (terminal) or md (Markdown).", parser=choice(OutputFormat)
        ),
    ] = OutputFormat.TABLE,
    fail_above: Annotated[
        float | None,
        typer.Option(
            help="Exit 1 when a runtime is significantly slower in NEW by more than this "
            "factor (e.g. 1.10).",
            min=1.0,
        ),
    ] = None,
) -> None:
    """Startup of every runtime in NEW against OLD: medians, ratio, verdict (unpaired test)."""
    from labreport.analysis import compare
    from labreport.report import terminal

    before, after = compare.side(old), compare.side(new)
    rows = compare.compare(before, after)
    if output_format == OutputFormat.MD:
        typer.echo(terminal.markdown(before, after, rows), nl=False)
    else:
        terminal.compare_table(before, after, rows)
    if fail_above:
        compare.fail_above(rows, fail_above)


@app.command("cache")
@user_errors
def cache_command(
    clear: Annotated[
        bool, typer.Option("--clear", help="Remove every compiled module and phase record.")
    ] = False,
) -> None:
    """The wasmtime shim's file cache of compiled modules: list it, or clear it."""
    root = shim_cache.cache_dir()
    if clear:
        files, size = shim_cache.clear(root)
        typer.echo(f"removed {files} file(s), {size:,} B, from {root}")
        return
    found = shim_cache.entries(root)
    typer.echo(f"{root}: {len(found)} compiled module(s), {sum(e.size_bytes for e in found):,} B")
    for entry in found:
        typer.echo(
            f"  module {entry.module_sha256}  engine {entry.engine_hash}  {entry.size_bytes:,} B"
        )


@app.command("clean")
@user_errors
def clean_command(
    check: Annotated[
        bool,
        typer.Option(
            "--check",
            help="Change nothing: list what is kept and what was left behind; exit 1 "
            "if anything was left behind.",
        ),
    ] = False,
    everything: Annotated[
        bool,
        typer.Option(
            "--all",
            help="Also remove what labreport keeps: its images on the engine (Go builder, "
            "stage cache, `build`'s :latest), the shims' cache, the state directory.",
        ),
    ] = False,
) -> None:
    """Remove what labreport left behind on this host (never while a labreport command runs:
    its work would count as left behind)."""
    if check:
        found = leftovers.find((*leftovers.ALL, leftovers.state_directory))
        for item in found:
            typer.echo(f"{'kept' if item.kept else 'LEFT BEHIND'}: {item.line()}")
        leaks = [item for item in found if not item.kept]
        if leaks:
            raise LeftoversError(
                f"{len(leaks)} thing(s) left behind: {', '.join(i.kind for i in leaks)}",
                "see the lines above; 'labreport clean' removes them",
            )
        typer.echo("nothing left behind")
        return
    for item in leftovers.clean(everything):
        typer.echo(f"removed {item.line()}")


@app.command("version")
def version_command() -> None:
    """Print labreport's version."""
    typer.echo(__version__)


def _terminated(signum: int, frame: object) -> None:
    """SIGTERM (a CI cancel, `timeout`) unwinds like Ctrl-C, so every cleanup runs: the run's
    containers and images are removed and private daemons stopped."""
    raise KeyboardInterrupt


def main() -> None:
    """Every way out is an exit code; a usage error is `error:` + `hint:` like any other."""
    signal.signal(signal.SIGTERM, _terminated)
    try:
        code = app(prog_name="labreport", standalone_mode=False)
    except Exception as error:
        # Click's exceptions (typer vendors click in some versions): found by class name.
        if "ClickException" not in {kind.__name__ for kind in type(error).__mro__}:
            raise
        context = getattr(error, "ctx", None)
        where = context.command_path if context is not None else "labreport"
        message = error.format_message() or "no command given"  # type: ignore[attr-defined]
        hint = error.hint if isinstance(error, BadValue) else f"see '{where} --help'"
        typer.echo(f"error: {message}", err=True)
        typer.echo(f"hint: {hint}", err=True)
        sys.exit(getattr(error, "exit_code", 2))
    except (typer.Abort, KeyboardInterrupt):
        typer.echo("error: interrupted", err=True)
        typer.echo("hint: nothing was changed; run the command again", err=True)
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
