"""Host builds: the lab's program with `go build` (native and WASI) or `tinygo build`."""

from __future__ import annotations

import os
import shlex
import time
from dataclasses import dataclass
from pathlib import Path

from labreport.config import LabConfig
from labreport.errors import LabreportError
from labreport.host import fsutil, paths, proc

GO_BUILD_TIMEOUT_S = 600


@dataclass(frozen=True)
class Artifact:
    """A file that a build produced, with what made it."""

    build: str
    path: Path
    size_bytes: int
    sha256: str
    command: str
    duration_s: float


def unavailable(config: LabConfig, build_name: str) -> str:
    """Why an optional build cannot run on this host ("" when it can, or is not optional)."""
    spec = config.builds[build_name]
    if spec.optional and spec.toolchain == "tinygo" and paths.which("tinygo") is None:
        return "tinygo is not on PATH (TinyGo is optional: put it on PATH to add this build)"
    return ""


def go_build(config: LabConfig, build_name: str, out_dir: Path) -> Artifact:
    """`go build` (or `tinygo build`) with the lab config's env and flags, offline, into out_dir."""
    spec = config.builds[build_name]
    go = paths.go_binary()
    out_dir.mkdir(parents=True, exist_ok=True)
    output = out_dir / spec.output
    env = {
        **os.environ,
        "GOTOOLCHAIN": "local",
        "GOPROXY": "off",
        "GOFLAGS": "-mod=mod",
        **spec.env,
    }
    if spec.toolchain == "tinygo":
        tinygo = paths.which("tinygo")
        if tinygo is None:
            raise LabreportError(
                f"build {build_name} needs tinygo, which is not on PATH",
                "put TinyGo on PATH, or mark the build optional in the lab config",
            )
        program = [str(tinygo)]
        # TinyGo compiles the standard library of the Go toolchain it finds on PATH.
        env["PATH"] = f"{go.parent}{os.pathsep}{env.get('PATH', '')}"
    else:
        program = [str(go)]
    argv = [*program, "build", *spec.args, "-o", str(output), "."]
    started = time.perf_counter()
    proc.run(
        argv,
        timeout_s=GO_BUILD_TIMEOUT_S,
        env=env,
        cwd=config.app_path,
        what=f"{spec.toolchain} build ({build_name})",
        hint="fix the Go source, then run again",
    )
    duration = time.perf_counter() - started
    shown_env = " ".join(f"{key}={shlex.quote(value)}" for key, value in sorted(spec.env.items()))
    shown = f"{shown_env} {spec.toolchain} build {shlex.join(spec.args)} -o {spec.output} ."
    return Artifact(
        build_name,
        output,
        output.stat().st_size,
        fsutil.sha256_file(output),
        shown.strip(),
        duration,
    )
