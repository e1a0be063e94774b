"""The command line, a table of contents: each command declares its options, calls its module in
labreport/commands/ and prints what it returns. Option types, parsers and the error exit are in
options.py."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from labreport import options
from labreport.commands import build, cache, clean, common, doctor, init, measure, setup
from labreport.config import load
from labreport.host.private_containerd import ContainerdMode
from labreport.host.private_engine import EngineMode
from labreport.options import user_errors
from labreport.report import DEFAULT_TEMPLATE, ReportFormat

# The analysis and the report (scipy, matplotlib: 1.3 of the 1.5 s that importing them takes)
# are imported by the commands that use them, so that every other command, --help and each
# run's start do not wait for them.

app = typer.Typer(
    help="Measure a container lab from real builds and render an honest report.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def main_options(version: options.Version = False) -> None:
    """Measure a container lab from real builds and render an honest report."""


@app.command("init")
@user_errors
def init_command(
    folder: options.InitFolder = Path(),
    origin: options.InitFrom = None,
    name: options.InitName = None,
) -> None:
    """Start a lab folder from a built-in lab or another lab: its lab.toml, program and templates,
    named anew."""
    chosen = init.source(origin)
    typer.echo(init.next_steps(init.run(folder, chosen, name), chosen.label))


@app.command("setup")
@user_errors
def setup_command(
    packages: options.SetupPackages = False,
    engine: options.SetupEngine = False,
    shims: options.SetupShims = False,
    browser: options.SetupBrowser = False,
    strict: options.SetupStrict = False,
) -> None:
    """Install the system parts: Debian packages, the private engine, the wasmtime shims (all
    three unless some are named; --browser only when named); each step idempotent."""
    chosen = {"packages": packages, "engine": engine, "shims": shims, "browser": browser}
    steps = setup.run(chosen, lambda line: typer.echo(f"setup: {line}", err=True))
    if strict:
        setup.require_no_skip(steps)


@app.command("doctor")
@user_errors
def doctor_command(
    as_json: options.Json = False, strict: options.Strict = False, lab: options.Lab = None
) -> None:
    """Show every component labreport can use on this host: found with its version, or why not;
    with --lab, the build tools that lab's config runs too."""
    from labreport.report import terminal

    components = doctor.run(lab)
    if as_json:
        typer.echo(json.dumps([c.as_dict() for c in components], indent=2, sort_keys=True))
    else:
        typer.echo(terminal.doctor_table(components))
    if strict:
        doctor.require(components)


@app.command("build")
@user_errors
def build_command(lab: options.Lab = None, config_path: options.Config = None) -> None:
    """Build the lab's program natively, as a WASI module and as the scratch image; show sizes."""
    from labreport.report import terminal

    lab_config = load(common.lab_config(lab, config_path))
    typer.echo(terminal.build_summary(build.run(lab_config, common.host_endpoints().engine)))


@app.command("measure")
@user_errors
def measure_command(
    lab: options.Lab = None,
    config_path: options.Config = None,
    runs: options.Runs = None,
    warmup: options.Warmup = None,
    runtime: options.Only = None,
    skip: options.Skip = None,
    output: options.MeasureOutput = None,
    timeout: options.Timeout = None,
    resume: options.Resume = False,
    memory: options.Memory = True,
    serving: options.Serving = True,
    containerd: options.Containerd = ContainerdMode.AUTO,
    engine: options.Engine = EngineMode.AUTO,
    docker_host: options.DockerHost = None,
    context: options.Context = None,
) -> None:
    """Build every variant, run it on every runtime the host has, write measurements/*.json."""
    from labreport.report import terminal

    chosen = measure.Options(
        lab, config_path, runs, warmup, runtime, skip, output, timeout, resume, memory, serving,
        containerd, engine, docker_host, context,
    )  # fmt: skip
    result, written = measure.run(chosen)
    typer.echo(terminal.summary(result, written))


@app.command("render")
@user_errors
def render_command(
    files: options.Files = None,
    lab: options.Lab = None,
    output: options.ReportOutput = None,
    templates: options.Templates = None,
    template: options.Template = DEFAULT_TEMPLATE,
    check: options.Check = False,
    output_format: options.RenderFormat = ReportFormat.MD,
) -> None:
    """Turn measurements/*.json into report.md with charts (or one HTML page), through the Jinja
    templates."""
    from labreport.commands import render

    chosen = render.Options(files or [], lab, output, templates, template, check, output_format)
    rendered = render.run(chosen)
    if check:
        typer.echo(f"{rendered.output} is up to date ({rendered.sources} measurement file(s))")
    for path in rendered.written:
        typer.echo(f"wrote {path}")


@app.command("compare")
@user_errors
def compare_command(
    old: options.Measured,
    new: options.MeasuredToo,
    output_format: options.Format = options.OutputFormat.TABLE,
    fail_above: options.FailAbove = None,
) -> None:
    """Startup of every runtime in NEW against OLD: medians, ratio, verdict (unpaired test)."""
    from labreport.commands import compare
    from labreport.report import compare_table

    found = compare.run(old, new, fail_above)
    if output_format == options.OutputFormat.MD:
        typer.echo(compare_table.markdown(found.old, found.new, found.rows), nl=False)
    else:
        compare_table.compare_table(found.old, found.new, found.rows)
    if fail_above is not None:
        compare.gate(found, fail_above)


@app.command("cache")
@user_errors
def cache_command(clear: options.Clear = False) -> None:
    """The wasmtime shim's file cache of compiled modules: list it, or clear it."""
    typer.echo(cache.cleared() if clear else cache.entries().text())


@app.command("clean")
@user_errors
def clean_command(
    check: options.CleanCheck = False, everything: options.Everything = False
) -> None:
    """Remove what labreport left behind on this host (never while a labreport command runs:
    its work would count as left behind)."""
    if not check:
        for item in clean.run(everything):
            typer.echo(f"removed {item.line()}")
        return
    found = clean.audit()
    for item in found:
        typer.echo(f"{'kept' if item.kept else 'LEFT BEHIND'}: {item.line()}")
    clean.require_nothing_left(found)
    typer.echo("nothing left behind")


def main() -> None:
    """Every way out is an exit code (options.run)."""
    options.run(app)


if __name__ == "__main__":
    main()
