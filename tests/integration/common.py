"""What the integration tests share: running the real CLI, and a config whose runs hang."""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from labreport.config import ServerConfig
from labreport.host import engine, shim_cache
from labreport.host.endpoints import EngineEndpoint
from labreport.record.models import Sample, ServingRecord
from labreport.runtimes import hey

from ..conftest import ROOT, lab_copy


def engine_holds(url: str | None = None) -> dict[str, set[str]]:
    """On the engine at url (default: the host's), what labreport made and must not keep: its
    labelled containers, run-tagged images and dangling images with its label (the build
    cache is kept tagged, as labreport/stage-cache)."""
    label = f"{engine.LABEL_MANAGED}=true"
    client = engine.connect(url=url or EngineEndpoint.from_environment().url)
    try:
        # The low-level lists: one call each, no inspect of an object that may vanish meanwhile.
        listed = client.api.containers(all=True, filters={"label": label})
        containers = {str(c["Names"][0]).lstrip("/") for c in listed if c.get("Names")}
        images = client.api.images(all=True)
        tags = {t for image in images for t in image.get("RepoTags") or [] if ":run-" in t}
        # Untagged images no other is built on (as `docker images` lists them): a kept
        # cache's step images are its parents, not leftovers.
        dangling = client.api.images(filters={"dangling": True, "label": label})
        stages = {str(image["Id"]) for image in dangling}
    finally:
        client.close()
    return {"containers": containers, "images": tags | stages}


def engine_gained(before: dict[str, set[str]]) -> dict[str, set[str]]:
    """What engine_holds() lists now and did not before: what a run left. (A run may remove a
    dangling image of an earlier build of labreport's: it removes them all, by design.)"""
    now = engine_holds()
    return {kind: now[kind] - before.get(kind, set()) for kind in now}


NOTHING = {"containers": set[str](), "images": set[str]()}


STARTED: list[subprocess.Popen[str]] = []  # stopped after each test (tests/conftest.py)


def labreport(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    """The real CLI in a child process, as a user runs it (so Ctrl-C can be sent to it); one
    still running when its test ends, on any way out, is stopped and waited for."""
    process = subprocess.Popen(
        [sys.executable, "-m", "labreport.cli", *args],
        cwd=ROOT,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=None if env is None else {**os.environ, **env},
    )
    STARTED.append(process)
    return process


def stop_started() -> None:
    """SIGTERM (labreport cleans up as on Ctrl-C), then SIGKILL; each one waited for."""
    while STARTED:
        process = STARTED.pop()
        if process.poll() is None:
            process.terminate()
            try:
                process.communicate(timeout=180)
            except subprocess.TimeoutExpired:
                process.kill()
                process.communicate()


def hanging_config(tmp_path: Path) -> Path:
    """The lab config, but the 'once' run starts the server, which never exits."""
    return lab_copy(tmp_path, 'env = { MODE = "once" }', 'env = { MODE = "serve-forever" }')


def assert_one_line_error(stderr: str) -> None:
    lines = stderr.strip().splitlines()
    assert lines[-2].startswith("error: "), stderr
    assert lines[-1].startswith("hint: "), stderr
    assert "Traceback" not in stderr


def measure_hanging(tmp_path: Path, runtime: str, timeout_s: int) -> str:
    """A measure run whose only run hangs: it must fail in one line; returns stderr."""
    process = labreport(
        "measure", "--config", str(hanging_config(tmp_path)), "--runtime", runtime,
        "--runs", "1", "--warmup", "0", "--timeout", str(timeout_s), "--no-memory", "--no-serving",
        "-o", str(tmp_path / "out.json"),
    )  # fmt: skip
    _, stderr = process.communicate(timeout=300)
    assert process.returncode == 2, stderr
    assert_one_line_error(stderr)
    assert f"{timeout_s} s" in stderr.strip().splitlines()[-2]
    assert not (tmp_path / "out.json").exists()
    return stderr


def wait_until_started(
    process: subprocess.Popen[str], started: Callable[[], bool], timeout_s: float = 300
) -> None:
    """Until started() sees the run's work alive; fails if the run ends or never gets there."""
    deadline = time.monotonic() + timeout_s
    while not started():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "the run never started anything"
        time.sleep(0.05)


def measure_interrupted(
    tmp_path: Path,
    runtimes: str,
    started: Callable[[], bool],
    sig: signal.Signals = signal.SIGINT,
    extra: tuple[str, ...] = (),
) -> None:
    """A long measure run, interrupted (Ctrl-C, or SIGTERM) once started() sees something of it
    alive: it must stop with exit 130 and a one-line error, and write no measurement file."""
    output = tmp_path / "out.json"
    process = labreport(
        "measure", "--runtime", runtimes, "--runs", "200", "--warmup", "0", "--no-memory",
        "--no-serving", "-o", str(output), *extra,
    )  # fmt: skip
    wait_until_started(process, started)
    os.kill(process.pid, sig)
    _, stderr = process.communicate(timeout=180)
    assert process.returncode == 130, stderr
    assert stderr.strip().splitlines()[-2] == "error: interrupted"
    assert "Traceback" not in stderr
    assert not output.exists()


def shim_records() -> set[str]:
    return {p.name for p in (shim_cache.cache_dir() / "phases").glob("*")}


def assert_shim_cache_used(
    samples: list[Sample], cached: str, compiling: str, module: str, records_before: set[str]
) -> None:
    """The shims' records of a run: the caching runtime's first start compiled and stored, its
    later starts hit; the other compiled every time; every record's phases add up to the
    sample's wall time; and the run left no cache entry or record behind."""
    by_round = sorted((s for s in samples if s.runtime == cached), key=lambda s: s.round)
    records = [s.shim for s in by_round]
    assert all(records), f"{cached}: a start without the shim's record"
    first, *later = [r for r in records if r]
    assert first.facts["cache"] == "miss: no entry" and first.facts["stored"] == "yes"
    assert first.facts["module_sha256"] == module
    assert {r.cache for r in later} == {"hit"}, [r.facts for r in later]
    compiling_records = [s.shim for s in samples if s.runtime == compiling]
    assert compiling_records and all(r and r.cache == "off" for r in compiling_records)
    for sample in samples:
        if sample.shim is not None:
            assert sum(p.ns for p in sample.shim.phases) == sample.wall_ns
            assert sample.shim.phases[0].name == "shim_main"
    assert not [e for e in shim_cache.entries() if e.module_sha256 == module]
    assert shim_records() <= records_before


def assert_hey_served(record: ServingRecord, server: ServerConfig) -> None:
    """The load tool ran beside the checked client at every level, and every answer was a 200."""
    assert record.tool.startswith("hey "), record.tool_missing
    assert [level.concurrency for level in record.tool_levels] == server.concurrency
    for level in record.tool_levels:
        sent = hey.sent_by(level.concurrency, server.load_requests)
        assert level.requested == sent > server.load_requests - level.concurrency
        assert (level.statuses, level.unanswered) == ({"200": sent}, 0), level.failure
        assert len(level.latencies_ns) == sent and level.span_ns


@contextlib.contextmanager
def throwaway_user() -> Iterator[tuple[str, Path]]:
    """A user made for one test module (name, home), in the docker group, not root, with no
    sudo; removed after, with its home and every process it left."""
    name = f"lrtest{secrets.token_hex(3)}"
    subprocess.run(
        ["useradd", "--create-home", "--groups", "docker", "--shell", "/bin/sh", name],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    home = Path(f"/home/{name}")
    uid = int(
        subprocess.run(
            ["id", "-u", name], check=True, capture_output=True, text=True, timeout=30
        ).stdout
    )
    try:
        yield name, home
    finally:
        subprocess.run(["pkill", "-KILL", "-u", name], check=False, timeout=30)
        subprocess.run(["userdel", "--remove", name], check=False, capture_output=True, timeout=60)
        shutil.rmtree(home, ignore_errors=True)
        # What buildah (doctor asks its version) makes for a user with no XDG_RUNTIME_DIR.
        for runtime_dir in (f"/tmp/containers-user-{uid}", f"/tmp/podman-run-{uid}"):
            shutil.rmtree(runtime_dir, ignore_errors=True)
