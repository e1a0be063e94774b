"""The wasmtime shims built with cargo from the shim crate labreport carries, into the state
directory (its target folder is the cache a rerun reuses), and installed where containerd finds
them. The build says how far it is as it goes: crates built of the total, and the time so far."""

from __future__ import annotations

import contextlib
import filecmp
import json
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from labreport.errors import LabreportError
from labreport.host import paths, proc, shim_patch
from labreport.host.shims import SHIM_DIR, SHIMS

BUILD_TIMEOUT_S = 3600
PROGRESS_EVERY_S = 20.0


def target_dir() -> Path:
    return paths.state_dir() / "cargo-target"


def built(shim_binary: str) -> Path:
    return target_dir() / "release" / shim_binary


def crate_count(manifest: Path) -> int | None:
    """How many packages a release build of the crate compiles (its normal and build
    dependencies, from cargo metadata), or None where cargo cannot tell."""
    done = proc.run(
        ["cargo", "metadata", "--format-version", "1", "--locked", "--manifest-path",
         str(manifest), "--filter-platform", _host_triple()],
        timeout_s=600, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        return None
    data = json.loads(done.stdout)
    nodes = {node["id"]: node for node in data["resolve"]["nodes"]}
    seen, todo = set(), [data["resolve"]["root"]]
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.add(current)
        for dep in nodes[current]["deps"]:
            if any(kind["kind"] in (None, "build") for kind in dep["dep_kinds"]):
                todo.append(dep["pkg"])
    return len(seen)


def _host_triple() -> str:
    done = proc.run(["rustc", "-vV"], timeout_s=60, check=False)
    for line in done.stdout.splitlines():
        if line.startswith("host:"):
            return line.split()[1]
    return ""


@dataclass
class Progress:
    """What the build has said so far."""

    total: int | None
    built: set[str]
    started: float

    def line(self) -> str:
        of = f" of about {self.total}" if self.total else ""
        return f"{len(self.built)}{of} crates built, {time.monotonic() - self.started:.0f} s so far"


def _read_messages(stream: object, progress: Progress, log: list[str]) -> None:
    """cargo's JSON messages: a crate is built when its library or binary artifact arrives."""
    for raw in iter(stream.readline, b""):  # type: ignore[attr-defined]
        try:
            message = json.loads(raw)
        except ValueError:
            continue
        reason = message.get("reason")
        if reason == "compiler-artifact" and "custom-build" not in message["target"]["kind"]:
            progress.built.add(message["package_id"])
        elif reason == "compiler-message":
            rendered = message["message"].get("rendered") or ""
            if message["message"].get("level") == "error":
                log.append(rendered)


def build(manifest: Path, say: Callable[[str], None]) -> float:
    """cargo build --release --locked of the crate (its copy with the patched dependencies,
    shim_patch.py), saying its progress; returns its seconds."""
    if paths.which("cargo") is None:
        raise LabreportError("cargo not found", "install Rust with rustup, then rerun")
    manifest = shim_patch.prepare(manifest)
    env = {**os.environ, "CARGO_TARGET_DIR": str(target_dir())}
    progress = Progress(crate_count(manifest), set(), time.monotonic())
    errors: list[str] = []
    argv = ["cargo", "build", "--release", "--locked", "--message-format=json",
            "--manifest-path", str(manifest)]  # fmt: skip
    log_path = paths.state_dir() / "shim-build.log"
    with log_path.open("wb") as log, proc.background(argv, env=env, stdout=subprocess.PIPE,
                                                    stderr=log) as process:  # fmt: skip
        reader = threading.Thread(
            target=_read_messages, args=(process.stdout, progress, errors), daemon=True
        )
        reader.start()
        shown = None  # when progress was last said: at the first crate, then every so often
        while process.poll() is None:
            elapsed = time.monotonic() - progress.started
            if elapsed > BUILD_TIMEOUT_S:
                raise LabreportError(
                    f"the shim build ran past {BUILD_TIMEOUT_S} s", f"see {log_path}"
                )
            if (shown is None and progress.built) or (
                shown is not None and elapsed - shown >= PROGRESS_EVERY_S
            ):
                say(f"shims: {progress.line()}")
                shown = elapsed
            time.sleep(0.5)
        reader.join(timeout=10)
        if process.returncode != 0:
            detail = proc.tail(" ".join(errors) or log_path.read_text(errors="replace"), 600)
            raise LabreportError(f"the shim build failed: {detail}", f"the whole log: {log_path}")
    seconds = time.monotonic() - progress.started
    say(f"shims: all {len(progress.built)} crates built in {seconds:.0f} s")
    return seconds


@dataclass(frozen=True)
class Installed:
    binary: str
    outcome: str  # "present" (the same file was there), "installed", "built" (not installable)
    detail: str


def install_shims() -> list[Installed]:
    """Each built shim copied into SHIM_DIR (containerd's PATH) when it differs, atomically;
    where SHIM_DIR is not writable, what to run instead."""
    done = []
    for shim in SHIMS:
        source, dest = built(shim.binary), SHIM_DIR / shim.binary
        if dest.is_file() and filecmp.cmp(source, dest, shallow=False):
            done.append(Installed(shim.binary, "present", f"in {dest}"))
        elif os.access(SHIM_DIR, os.W_OK):
            temporary = dest.with_name(f".{dest.name}.{os.getpid()}")
            try:
                shutil.copyfile(source, temporary)
                temporary.chmod(0o755)
                temporary.replace(dest)
            finally:
                with contextlib.suppress(FileNotFoundError):
                    temporary.unlink()
            done.append(Installed(shim.binary, "installed", f"to {dest}"))
        else:
            done.append(Installed(
                shim.binary, "built",
                f"not installed ({SHIM_DIR} is root's): sudo install -m 0755 {source} {SHIM_DIR}/",
            ))  # fmt: skip
    return done
