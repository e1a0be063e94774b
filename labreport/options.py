"""The command line's building blocks: option types with their help, the parsers that refuse a
bad value with its own hint, and the one way a user error leaves (`error:` + `hint:`)."""

from __future__ import annotations

import contextlib
import enum
import functools
import shutil
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, NoReturn, ParamSpec, TypeVar

import typer

from labreport.errors import LabreportError, RunInterruptedError
from labreport.host.private_containerd import ContainerdMode
from labreport.host.private_engine import EngineMode
from labreport.report import ReportFormat

P = ParamSpec("P")
R = TypeVar("R")
E = TypeVar("E", bound=enum.Enum)


def _terminated(signum: int, frame: object) -> None:
    """SIGTERM (a CI cancel, `timeout`) unwinds like Ctrl-C, so every cleanup runs: the run's
    containers and images are removed and private daemons stopped."""
    raise KeyboardInterrupt


def run(app: typer.Typer) -> NoReturn:
    """The program: every way out is an exit code; a usage error is `error:` + `hint:` like
    any other."""
    signal.signal(signal.SIGTERM, _terminated)
    for stream in (sys.stdout, sys.stderr):  # an ASCII-only terminal gets escapes, not a crash
        with contextlib.suppress(AttributeError, ValueError):
            stream.reconfigure(errors="backslashreplace")  # type: ignore[union-attr]
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
        _leave(getattr(error, "exit_code", 2))
    except (typer.Abort, KeyboardInterrupt):
        typer.echo("error: interrupted", err=True)
        typer.echo("hint: nothing was changed; run the command again", err=True)
        _leave(130)
    _leave(code if isinstance(code, int) else 0)


def _leave(code: int) -> NoReturn:
    """Exit: the command is done, so a Ctrl-C from here on has nothing left to interrupt (it
    would only print a traceback from Python's own shutdown), and SIGTERM ends it as usual."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    sys.exit(code)


FULL_DISK = "no space left on device"  # strerror(ENOSPC), as tools and the engine print it


def exit_with(error: LabreportError) -> NoReturn:
    """The one way out for an error: its details, `error:` and `hint:` (one line each, whatever
    the message holds), and its exit code. A full disk is said as one, wherever it surfaced
    (a build's log, a write): the build or the file is not what failed."""
    for line in error.details:
        typer.echo(line, err=True)
    message, hint = " ".join(error.message.split()), " ".join(error.hint.split())
    if FULL_DISK in message.lower():
        hint = "a disk is full: free some space (df -h shows where) and run the command again"
    typer.echo(f"error: {message}", err=True)
    if hint:
        typer.echo(f"hint: {hint}", err=True)
    raise typer.Exit(error.exit_code)


def _system_refused(error: OSError) -> LabreportError:
    """An OSError as one line: the path and the reason; a copy's list of failures (shutil.Error
    carries one) as its first failure and how many more, never as a raw Python list."""
    hint = "check the path and its permissions"
    failures = error.args[0] if isinstance(error, shutil.Error) and error.args else None
    if isinstance(failures, list) and failures and isinstance(failures[0], tuple):
        source, _, why = (*failures[0], "", "", "")[:3]
        more = f" (and {len(failures) - 1} more)" if len(failures) > 1 else ""
        return LabreportError(f"cannot copy {source}: {why}{more}", hint)
    where = f"{error.filename}: " if error.filename else ""
    return LabreportError(f"{where}{error.strerror or error}", hint)


def user_errors(command: Callable[P, R]) -> Callable[P, R]:
    """A LabreportError (with its exit code) or Ctrl-C becomes `error:` + `hint:`, no traceback."""

    @functools.wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except LabreportError as error:
            failure = error
        except OSError as error:  # a path the user gave that the system refused
            failure = _system_refused(error)
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


# -- options shared by several commands -----------------------------------------------------

Config = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="The lab config (default: lab.toml).", dir_okay=False),
]
Lab = Annotated[
    Path | None,
    typer.Option(
        "--lab",
        help="A lab folder: its lab.toml, measurements/, templates/ and report.md "
        "(default: the current folder).",
        file_okay=False,
    ),
]
Only = Annotated[
    list[str] | None,
    typer.Option(
        "--runtime",
        help="Only these runtimes (repeat or comma-separate); each must be available.",
    ),
]
Skip = Annotated[
    list[str] | None,
    typer.Option("--skip", help="Leave these runtimes out (repeat or comma-separate)."),
]

# -- measure ----------------------------------------------------------------------------------

Runs = Annotated[int | None, typer.Option(help="Measured runs per runtime.", min=1)]
Warmup = Annotated[int | None, typer.Option(help="Warm-up runs, not counted.", min=0)]
MeasureOutput = Annotated[
    Path | None,
    typer.Option(
        "--output",
        "-o",
        help="Default: measurements/<lab>.json in the lab's folder",
        parser=output_file,
    ),
]
Timeout = Annotated[
    float | None, typer.Option(help="Seconds one run may take before it is killed.", min=0.1)
]
Resume = Annotated[
    bool,
    typer.Option(
        help="Continue an interrupted run from its partial file (<output>.partial.json), "
        "if the config, sources, environment and options still match."
    ),
]
Memory = Annotated[
    bool, typer.Option(help="Measure memory: a CLI run's peak, each service idle and under load.")
]
Serving = Annotated[
    bool, typer.Option(help="Measure serving: each runtime's services under a checked load.")
]
Containerd = Annotated[
    ContainerdMode,
    typer.Option(
        help="Which containerd runs the ctr runtimes: auto (the engine's, else a private "
        "one), engine, or private (started under the state directory, stopped after).",
        parser=choice(ContainerdMode),
    ),
]
Engine = Annotated[
    EngineMode,
    typer.Option(
        "--engine",
        help="Which Docker engine runs the docker runtimes: auto (the host's where it has "
        "what they need, else labreport's private Docker 26 with the containerd image "
        "store), host, or private (started under the state directory, stopped after).",
        parser=choice(EngineMode),
    ),
]
DockerHost = Annotated[
    str | None,
    typer.Option(
        help="Measure the Docker engine at this URL (unix://, tcp://, ssh://); runtimes "
        "that run on this host are then recorded as not on this target if it is remote."
    ),
]
Context = Annotated[str | None, typer.Option(help="Measure the engine of this docker context.")]

# -- render, compare, doctor, clean, cache, init ------------------------------------------

Files = Annotated[
    list[Path] | None,
    typer.Argument(
        help="Measurement files. Default: every complete one in the lab's measurements/."
    ),
]
ReportOutput = Annotated[
    Path | None,
    typer.Option(
        "--output",
        "-o",
        help="The report to write (default: report.md, or report.html, in the lab's folder).",
        parser=output_file,
    ),
]
Templates = Annotated[
    Path | None,
    typer.Option(
        help="A folder of templates that override or add to the defaults "
        "(default: the lab's templates/).",
        file_okay=False,
    ),
]
Check = Annotated[
    bool, typer.Option("--check", help="Write nothing; exit 1 if the report is stale.")
]
Template = Annotated[str, typer.Option(help="The template to render.")]
RenderFormat = Annotated[
    ReportFormat,
    typer.Option(
        "--format",
        help="md (report.md and its charts) or html (one page, charts inline, for uploads).",
        parser=choice(ReportFormat),
    ),
]
Measured = Annotated[Path, typer.Argument(help="A measurement file, or a folder of them.")]
MeasuredToo = Annotated[Path, typer.Argument(help="The same, to compare with OLD.")]
Format = Annotated[
    OutputFormat,
    typer.Option(
        "--format", help="table (terminal) or md (Markdown).", parser=choice(OutputFormat)
    ),
]


def _version(asked: bool) -> None:
    if asked:
        from labreport.bundle import install

        typer.echo(install().line())
        raise typer.Exit


Version = Annotated[
    bool,
    typer.Option("--version", callback=_version, is_eager=True, help="Print the version; exit."),
]
FailAbove = Annotated[
    float | None,
    typer.Option(
        help="Exit 1 when a runtime is significantly slower in NEW by more than this "
        "factor (e.g. 1.10).",
        min=1.0,
    ),
]
SetupPackages = Annotated[
    bool, typer.Option("--packages", help="Debian/Ubuntu packages, through apt (root or sudo -n).")
]
SetupEngine = Annotated[
    bool, typer.Option("--engine", help="The private Docker 26 engine, into the state directory.")
]
SetupShims = Annotated[
    bool, typer.Option("--shims", help="The wasmtime shims, built with cargo and installed.")
]
SetupBrowser = Annotated[
    bool,
    typer.Option("--browser", help="Chromium and its driver (the test suite's browser check)."),
]
SetupStrict = Annotated[
    bool, typer.Option("--strict", help="Exit 1 when a step is skipped or a shim not installed.")
]
Json = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
Strict = Annotated[
    bool, typer.Option("--strict", help="Exit 1 when a required component is missing.")
]
CleanCheck = Annotated[
    bool,
    typer.Option(
        "--check",
        help="Change nothing: list what is kept and what was left behind; exit 1 "
        "if anything was left behind.",
    ),
]
Everything = Annotated[
    bool,
    typer.Option(
        "--all",
        help="Also remove what labreport keeps: its images on the engine (Go builder, "
        "stage cache, `build`'s :latest), the shims' cache, the state directory.",
    ),
]
Clear = Annotated[
    bool, typer.Option("--clear", help="Remove every compiled module and phase record.")
]
InitFolder = Annotated[
    Path,
    typer.Argument(
        help="The lab folder to make or fill (default: the current folder).", file_okay=False
    ),
]
InitFrom = Annotated[
    str | None,
    typer.Option(
        "--from",
        help="A built-in lab's name, or a lab folder, to start from (default: the first "
        "built-in lab; an unknown name lists them).",
    ),
]
InitName = Annotated[
    str | None,
    typer.Option("--name", help="The new lab's name (default: its folder's name)."),
]
