"""Host builds: the lab's program as the lab config describes it, with `go build`, `tinygo
build`, or any command (clang, cargo, make, ...) whose arguments name the output."""

from __future__ import annotations

import os
import shlex
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from labreport.config import HostBuild, LabConfig, build_outputs_named
from labreport.errors import LabreportError
from labreport.host import fsutil, paths, proc

HOST_BUILD_TIMEOUT_S = 600


@dataclass(frozen=True)
class Artifact:
    """A file that a build produced, with what made it."""

    build: str
    path: Path
    size_bytes: int
    sha256: str
    command: str
    duration_s: float


def _tool(spec: HostBuild) -> Path | None:
    """The program a build runs, where this host has it."""
    if spec.toolchain == "go":
        root = paths.go_root()
        return root / "bin" / "go" if root and (root / "bin" / "go").is_file() else None
    return paths.which(spec.tool)


def unavailable(config: LabConfig, build_name: str) -> str:
    """Why an optional build cannot run on this host ("" when it can, or is not optional)."""
    spec = config.builds[build_name]
    if spec.optional and _tool(spec) is None:
        return f"{spec.tool} is not on PATH (the build is optional: put it on PATH to add it)"
    return ""


def _argv(spec: HostBuild, output: Path, source_dir: Path, built: Mapping[str, Path]) -> list[str]:
    """The command to run; placeholders replaced one by one (no format string, no shell)."""
    if spec.toolchain != "command":
        tool = _tool(spec)
        assert tool is not None  # checked by the caller
        return [str(tool), "build", *spec.args, "-o", str(output), "."]
    values = {"output": str(output), "source_dir": str(source_dir), "build_dir": str(output.parent)}
    values.update(
        {f"output:{name}": str(built[name]) for name in build_outputs_named(spec.command)}
    )
    return [_substituted(argument, values) for argument in spec.command]


def _substituted(argument: str, values: dict[str, str]) -> str:
    for name, value in values.items():
        argument = argument.replace(f"{{{name}}}", value)
    return argument


def shown_command(spec: HostBuild) -> str:
    """The build as a person would type it in the app folder (paths as the config names them)."""
    shown_env = " ".join(f"{key}={shlex.quote(value)}" for key, value in sorted(spec.env.items()))
    if spec.toolchain == "command":
        words = [
            word.replace("{output}", spec.output)
            .replace("{source_dir}", ".")
            .replace("{build_dir}", ".")
            for word in spec.command
        ]
        for name in build_outputs_named(spec.command):  # as `labreport build` leaves them
            words = [word.replace(f"{{output:{name}}}", name) for word in words]
        shown = shlex.join(words)
    else:
        shown = f"{spec.toolchain} build {shlex.join(spec.args)} -o {spec.output} ."
    return f"{shown_env} {shown}".strip()


def host_build(
    config: LabConfig, build_name: str, out_dir: Path, built: Mapping[str, Path] | None = None
) -> Artifact:
    """One build of the lab config, offline, into out_dir; built: the outputs of the builds
    made before it, by name (what {output:NAME} names). A missing tool, a build it uses that
    was not made, or a failing command is one error naming the lab config and the build."""
    spec = config.builds[build_name]
    where = f"{config.base_dir / 'lab.toml'}: builds.{build_name}"
    built = built or {}
    for used in build_outputs_named(spec.command):
        if used not in built:
            raise LabreportError(
                f"{where}: it uses the output of {used!r}, which this run did not build",
                f"make {used!r} build here (`labreport doctor --lab` names what it needs)",
            )
    tool = _tool(spec)
    if tool is None:
        raise LabreportError(
            f"{where}: {spec.tool} is not on PATH",
            f"install {spec.tool}, or mark the build optional (`labreport setup --packages` "
            "installs the built-in labs' tools)",
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    output = out_dir / spec.output
    env = dict(os.environ)
    if spec.toolchain in {"go", "tinygo"}:  # offline, with the toolchain labreport installed
        env.update(GOTOOLCHAIN="local", GOPROXY="off", GOFLAGS="-mod=mod")
        go_root = paths.go_root()
        if spec.toolchain == "tinygo" and go_root is not None:
            # TinyGo compiles the standard library of the Go toolchain it finds on PATH.
            env["PATH"] = f"{go_root / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    output.unlink(missing_ok=True)  # labreport's own build folder: no stale result may pass
    # The build's scratch files (Go's work folder, a compiler's temporaries) go in a folder of
    # the run's own, removed on every way out: a build cut off by a timeout or Ctrl-C is killed,
    # and `go build` killed leaves its /tmp/go-build* folder behind.
    with tempfile.TemporaryDirectory(
        prefix=".scratch-", dir=out_dir, ignore_cleanup_errors=True
    ) as scratch:
        env.update(TMPDIR=scratch, GOTMPDIR=scratch)
        env.update(spec.env)
        started = time.perf_counter()
        proc.run(
            _argv(spec, output, config.app_path, built),
            timeout_s=HOST_BUILD_TIMEOUT_S,
            env=env,
            cwd=config.app_path,
            what=f"{where} ({spec.tool})",
            hint=f"fix the build command or the source in {config.app_dir}, then run again",
        )
        duration = time.perf_counter() - started
    if not output.is_file():
        raise LabreportError(
            f"{where}: the build succeeded but wrote no {spec.output}",
            "make the command write its result to {output}",
        )
    return Artifact(
        build_name,
        output,
        output.stat().st_size,
        fsutil.sha256_file(output),
        shown_command(spec),
        duration,
    )
