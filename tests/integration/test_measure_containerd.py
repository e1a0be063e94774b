"""The WASM container path for real: ctr + the wasmtime shim, ctr + runc, embedded wasmtime.

Every test ends by checking that labreport's containerd namespace holds nothing of ours:
no container, task, image or snapshot, after success, a hung run and Ctrl-C alike.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from labreport import config
from labreport.host import private_containerd, proc
from labreport.host.containerd import Ctr
from labreport.host.endpoints import ContainerdEndpoint
from labreport.record.files import load_measurement

from ..conftest import SMALL_LOAD, lab_copy
from .common import (
    assert_hey_served,
    assert_shim_cache_used,
    labreport,
    measure_hanging,
    measure_interrupted,
    shim_records,
)

pytestmark = [pytest.mark.containerd, pytest.mark.shim, pytest.mark.wasmtime]


def leftovers(endpoint: ContainerdEndpoint | None = None) -> dict[str, list[str]]:
    """What labreport's namespace holds, content too (default: on the engine's containerd)."""
    ctr = Ctr.find(endpoint or ContainerdEndpoint.from_environment())
    return {
        "containers": ctr.container_ids(),
        "tasks": ctr.task_ids(),
        "images": ctr.image_names(),
        "snapshots": ctr.snapshot_keys(),
        "content": sorted(ctr.content()),
    }


NOTHING: dict[str, list[str]] = {
    "containers": [],
    "tasks": [],
    "images": [],
    "snapshots": [],
    "content": [],
}
SHIMS = ("containerd-shim-wasmtime-v1", "containerd-shim-wasmtime-aot-v1")


@pytest.fixture
def wasm_stack(needs: Callable[[str], None]) -> None:
    for component in ("docker-engine", "go", "containerd", *SHIMS, "wasmtime"):
        needs(component)


@pytest.mark.usefixtures("wasm_stack")
def test_wasm_and_runc_through_ctr_and_embedded_wasmtime(
    tmp_path: Path, lab: config.LabConfig
) -> None:
    output = tmp_path / "m.json"
    small = lab_copy(tmp_path / "lab", *SMALL_LOAD)
    served = config.load(small).server
    records_before = shim_records()
    runtimes = "ctr-wasmtime,ctr-wasmtime-aot,ctr-runc,wasmtime-embedded"
    process = labreport(
        "measure", "--config", str(small), "--runtime", runtimes, "--runs", "2", "--warmup", "1",
        "-o", str(output),
    )  # fmt: skip
    _, stderr = process.communicate(timeout=900)
    assert process.returncode == 0, stderr
    result = load_measurement(output)
    for runtime in runtimes.split(","):
        samples = [s for s in result.samples if s.runtime == runtime]
        assert len(samples) == 3
        assert all(s.ok for s in samples), [s.failure for s in samples]

    wasm_image = next(i for i in result.images if i.platform == "wasi/wasm")
    module = next(a for a in result.artifacts if a.name == lab.wasm_image.build)
    assert wasm_image.content_size_uncompressed_bytes == module.size_bytes
    assert wasm_image.layers_size_compressed_bytes < module.size_bytes

    checks = {(c.name, c.runtime): c for c in result.checks}
    for runtime in ("ctr-wasmtime", "ctr-wasmtime-aot", "wasmtime-embedded"):
        wagi = checks["wagi", runtime]
        assert wagi.ok, wagi.detail
        assert "moscow_time" in wagi.output  # the CGI response that run wrote, kept
    # Every runtime serves: runc the program's own server, the shims and embedded wasmtime an
    # instance per request (WAGI); the program's own server under WASI preview 1 cannot.
    for runtime in ("ctr-runc", "ctr-wasmtime", "ctr-wasmtime-aot", "wasmtime-embedded"):
        assert checks["server-mode", runtime].ok, checks["server-mode", runtime].detail
        assert "moscow_time" in checks["server-mode", runtime].output  # its first answer
    assert {o.runtime for o in result.outputs} >= {"ctr-runc", "ctr-wasmtime-aot"}
    assert not checks["own-server", "wasmtime-embedded"].ok
    serving = {s.runtime: s for s in result.serving}
    assert serving["ctr-runc"].model == "server"
    for runtime in ("ctr-wasmtime", "ctr-wasmtime-aot", "wasmtime-embedded"):
        assert serving[runtime].model == "wagi"
        assert all(lv.ok == lv.requests == served.load_requests for lv in serving[runtime].levels)
        assert_hey_served(serving[runtime], served)
    idle = {m.runtime: m.idle_median_bytes() for m in result.memory if m.mode == "server"}
    assert idle["ctr-wasmtime-aot"] and idle["ctr-runc"]

    once = {m.runtime: m for m in result.memory if m.mode == "once"}
    assert once["ctr-runc"].peak_bytes and once["ctr-wasmtime"].peak_bytes
    assert once["wasmtime-embedded"].linear_memory_bytes
    details = {r.name: r.details for r in result.runtimes}
    assert float(details["wasmtime-embedded"]["compile_seconds"]) > 0
    assert details["ctr-wasmtime"]["module_compilation"]
    # The caching shim started from an empty cache entry, compiled once and mapped after; the
    # run's cleanup removed the entry and every phase record.
    assert str(details["ctr-wasmtime-aot"]["cache_before_first_start"]).startswith(
        ("empty", "emptied")
    )
    assert_shim_cache_used(
        result.samples, "ctr-wasmtime-aot", "ctr-wasmtime", module.sha256, records_before
    )
    assert result.environment.containerd["available"] == "yes"
    assert leftovers() == NOTHING


@pytest.mark.usefixtures("wasm_stack")
@pytest.mark.parametrize("runtime", ["ctr-runc", "ctr-wasmtime", "ctr-wasmtime-aot"])
def test_hung_task_is_killed_and_removed(tmp_path: Path, runtime: str) -> None:
    measure_hanging(tmp_path, runtime, timeout_s=8)
    assert leftovers() == NOTHING


@pytest.mark.usefixtures("wasm_stack")
def test_ctrl_c_leaves_nothing_in_containerd(tmp_path: Path) -> None:
    records_before = shim_records()
    runtimes = "ctr-runc,ctr-wasmtime,ctr-wasmtime-aot"
    measure_interrupted(tmp_path, runtimes, lambda: bool(leftovers()["tasks"]))
    assert leftovers() == NOTHING
    assert shim_records() <= records_before  # not even a record written as its task was removed


def daemons_using(config_file: Path) -> list[int]:
    """containerd processes started with this config file."""
    return [pid for pid, argv in proc.command_lines() if str(config_file).encode() in argv]


@pytest.mark.usefixtures("wasm_stack")
def test_private_containerd_is_started_recorded_and_stopped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = tmp_path / "st"  # short: the socket path must stay under 108 bytes
    monkeypatch.setenv("LABREPORT_STATE_DIR", str(state))
    output = tmp_path / "m.json"
    process = labreport(
        "measure", "--containerd", "private", "--runtime", "ctr-runc,ctr-wasmtime-aot",
        "--runs", "1", "--warmup", "1", "--no-memory", "--no-serving", "-o", str(output),
        env={"LABREPORT_STATE_DIR": str(state)},
    )  # fmt: skip
    _, stderr = process.communicate(timeout=600)
    assert process.returncode == 0, stderr
    result = load_measurement(output)
    facts = result.environment.containerd
    assert facts["socket"] == str(private_containerd.socket_path())
    assert facts["source"].startswith("a private containerd started and stopped by labreport")
    assert {s.runtime for s in result.samples} == {"ctr-runc", "ctr-wasmtime-aot"}
    assert all(s.ok for s in result.samples), [s.failure for s in result.samples]
    # Stopped afterwards, its sockets gone; started again, it holds nothing of the run.
    assert daemons_using(private_containerd.home() / "config.toml") == []
    assert not private_containerd.socket_path().exists()
    with private_containerd.running() as started:
        assert leftovers(started) == NOTHING
    assert daemons_using(private_containerd.home() / "config.toml") == []


def test_sweep_removes_a_snapshot_that_a_killed_ctr_run_left_without_its_container(
    needs: Callable[[str], None],
) -> None:
    """`ctr run` killed between preparing the rootfs snapshot (keyed by the container id) and
    creating the container leaves the snapshot alone; the run's sweep must find it by its key.
    Seen once after Ctrl-C in CI; made here on purpose, since the timing cannot be forced."""
    needs("containerd")
    ctr = Ctr.find(ContainerdEndpoint.from_environment())
    prefix = "labreport-sweeptest-wasm-"
    ctr.call("snapshots", "prepare", prefix + "0")
    ctr.call("snapshots", "prepare", "someone-elses-snapshot")
    try:
        assert prefix + "0" in ctr.snapshot_keys()
        ctr.sweep(prefix)
        keys = ctr.snapshot_keys()
        assert prefix + "0" not in keys
        assert "someone-elses-snapshot" in keys  # only what carries the run's prefix
    finally:
        ctr.call("snapshots", "rm", "someone-elses-snapshot", check=False)
        ctr.remove_namespace_if_empty()
    assert leftovers() == NOTHING
