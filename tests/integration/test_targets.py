"""Targets for real: the host's engine and the private engine as two targets of one report, and
a remote engine on a test host of the project's own (a network namespace) measured over TCP."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from labreport.record.files import load_measurement

from . import remote_host
from .common import labreport
from .test_engines import NO_TRACES, private_engine_traces

pytestmark = pytest.mark.docker


def measured(*args: str) -> None:
    process = labreport("measure", *args)
    _, stderr = process.communicate(timeout=1200)
    assert process.returncode == 0, stderr


def test_two_engines_as_two_targets_in_one_report_and_compared(
    tmp_path: Path, needs: Callable[[str], None]
) -> None:
    needs("docker-engine")
    needs("docker-engine-private")
    needs("go")
    host, private = tmp_path / "host.json", tmp_path / "private.json"
    common = (
        "--runtime",
        "docker-cli,docker-api",
        "--runs",
        "6",
        "--warmup",
        "1",
        "--no-memory",
        "--no-serving",
    )
    measured(*common, "--engine", "host", "-o", str(host))
    measured(*common, "--engine", "private", "-o", str(private))
    engines = {path.name: load_measurement(path).environment.engine for path in (host, private)}
    assert engines["host.json"]["source"] == "host"
    assert engines["private.json"]["source"] == "private"
    assert engines["host.json"]["engine_id"] != engines["private.json"]["engine_id"]

    report = tmp_path / "report.md"
    process = labreport("render", str(host), str(private), "-o", str(report))
    _, stderr = process.communicate(timeout=300)
    assert process.returncode == 0, stderr
    markdown = report.read_text()
    assert "2 targets, one engine on one host each" in markdown
    for runtime in ("docker-cli", "docker-api"):
        across = [line for line in markdown.splitlines() if f"| **{runtime} on " in line]
        assert len(across) == 1 and "Mann-Whitney U, 6 against 6 runs" in across[0]

    process = labreport("compare", str(host), str(private), "--format", "md")
    stdout, stderr = process.communicate(timeout=300)
    assert process.returncode == 0, stderr
    rows = [line for line in stdout.splitlines() if line.startswith("| docker-")]
    assert len(rows) == 2
    assert all(("NEW faster" in r or "NEW slower" in r or "no difference shown" in r) for r in rows)
    process = labreport("compare", str(host), str(host), "--fail-above", "1.0")
    _, stderr = process.communicate(timeout=300)
    assert process.returncode == 2, stderr  # a file against itself is said, not compared
    assert "OLD and NEW are the same file" in stderr
    again = tmp_path / "host-again.json"
    shutil.copy(host, again)
    process = labreport("compare", str(host), str(again), "--fail-above", "1.0")
    stdout, stderr = process.communicate(timeout=300)
    assert process.returncode == 0, stderr  # the same samples: nothing is slower
    assert stdout.count("no difference shown") == 2
    assert private_engine_traces() == NO_TRACES


def test_a_remote_engine_in_a_network_namespace_measured_over_tcp(
    tmp_path: Path, needs: Callable[[str], None]
) -> None:
    needs("docker-engine-private")  # its unpacked dockerd serves the test host
    needs("go")
    output = tmp_path / "remote.json"
    root = remote_host.short_root()
    with remote_host.remote_engine(root) as url:
        measured(
            "--docker-host", url, "--skip", "docker-wasm,docker-wasm-aot", "--runs", "3",
            "--warmup", "1", "-o", str(output),
        )  # fmt: skip
    assert remote_host.traces(root) == remote_host.NO_TRACES
    assert not root.exists()
    result = load_measurement(output)
    facts = result.environment.engine
    assert facts["source"] == "given" and facts["url"] == url
    assert facts["shares_host_with_client"] == "no"
    records = {record.name: record for record in result.runtimes}
    for name in ("native", "ctr-runc", "ctr-wasmtime", "wasmtime-embedded"):
        assert not records[name].available
        assert records[name].reason.startswith("not on this target"), records[name].reason
    for name in ("docker-cli", "docker-api"):
        samples = [s for s in result.samples if s.runtime == name]
        assert len(samples) == 4 and all(s.ok for s in samples), [s.failure for s in samples]
    # Through the network: the engine's own run time is recorded beside the client's, where the
    # engine's clock gives one. dockerd stamps StartedAt when it marks the container running, so
    # a run this short can end "before" it started (moby/moby#45445); such a sample records
    # none rather than a made-up span. Every span recorded lies within the client's wall time.
    api = [s for s in result.samples if s.runtime == "docker-api"]
    assert any(s.engine_run_ns for s in api if not s.warmup), [s.engine_run_ns for s in api]
    assert all(0 < s.engine_run_ns < s.wall_ns for s in api if s.engine_run_ns is not None)
    memory = [m for m in result.memory if m.runtime == "docker-api"]
    assert memory and all("remote engine's host" in m.failure for m in memory)
    # The host's engine and its bridge are untouched.
    shown = subprocess.run(["ip", "link", "show", "docker0"], capture_output=True, check=False)
    assert shown.returncode == 0


def test_a_remote_target_cannot_be_asked_for_a_client_host_runtime(
    tmp_path: Path, needs: Callable[[str], None]
) -> None:
    needs("docker-engine-private")
    root = remote_host.short_root()
    with remote_host.remote_engine(root) as url:
        process = labreport(
            "measure", "--docker-host", url, "--runtime", "native", "-o", str(tmp_path / "x.json")
        )
        _, stderr = process.communicate(timeout=300)
    assert process.returncode == 2
    assert "runtime native is not available on this host: not on this target" in stderr
    assert "Traceback" not in stderr
    assert remote_host.traces(root) == remote_host.NO_TRACES
