"""Orchestration with the fake runtime: interleaving, checks, partial files, cleanup, errors."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import pytest

from labreport import config
from labreport.analysis import sources, startup
from labreport.build.plan import BuildOutcome
from labreport.errors import LabreportError, RunInterruptedError
from labreport.measure.plan import Plan, check_plan
from labreport.measure.run import measure
from labreport.record.files import load_measurement
from labreport.record.models import Measurement
from labreport.runtimes.base import RunContext
from labreport.runtimes.wasmtime_embedded import WasmtimeEmbeddedTinygoRuntime

from . import fakes
from .fakes import FakeRuntime


def plan(tmp_path: Path, **changes: object) -> Plan:
    values: dict[str, object] = {
        "runs": 3,
        "warmup": 1,
        "timeout_s": 5,
        "output": tmp_path / "out.json",
    }
    values.update(changes)
    return Plan(**values)  # type: ignore[arg-type]


def run(lab: config.LabConfig, the_plan: Plan, *runtimes: FakeRuntime) -> Measurement:
    registry = {runtime.name: (lambda r=runtime: r) for runtime in runtimes}
    return measure(
        lab,
        the_plan,
        registry,
        environment=fakes.environment,
        endpoints=fakes.NOWHERE,
        builder=fakes.no_build,
    )


def test_runs_are_interleaved_round_robin_with_warmup_marked(
    lab: config.LabConfig, tmp_path: Path
) -> None:
    a, b = FakeRuntime(name="fake-a"), FakeRuntime(name="fake-b")
    result = run(lab, plan(tmp_path), a, b)
    order = [(s.runtime, s.round) for s in result.samples]
    assert order == [
        ("fake-a", 0),
        ("fake-b", 0),
        ("fake-a", 1),
        ("fake-b", 1),
        ("fake-a", 2),
        ("fake-b", 2),
        ("fake-a", 3),
        ("fake-b", 3),
    ]
    assert [s.warmup for s in result.samples[:2]] == [True, True]
    assert not any(s.warmup for s in result.samples[2:])
    assert all(s.ok for s in result.samples)
    assert a.calls[0] == "prepare" and a.calls[-1] == "cleanup"


def test_file_is_stable_valid_json_and_nothing_else_is_left(
    lab: config.LabConfig, tmp_path: Path
) -> None:
    result = run(lab, plan(tmp_path), FakeRuntime())
    text = (tmp_path / "out.json").read_text()
    assert text.endswith("}\n")
    assert text == json.dumps(json.loads(text), indent=2, sort_keys=True) + "\n"
    loaded = load_measurement(tmp_path / "out.json")
    assert loaded == result
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]
    assert loaded.samples[-1].wall_ns == 1_000_000 + 3 * 10_000  # the fake's fourth run


def test_bad_output_makes_a_sample_invalid_not_a_crash(
    lab: config.LabConfig, tmp_path: Path
) -> None:
    result = run(lab, plan(tmp_path), FakeRuntime(bad_output_on={2}))
    bad = [s for s in result.samples if not s.ok]
    assert len(bad) == 1
    assert bad[0].round == 2
    assert bad[0].failure.startswith("not JSON")


def test_hung_run_saves_partial_and_cleans_up(lab: config.LabConfig, tmp_path: Path) -> None:
    hanging = FakeRuntime(name="fake-hang", hang_on=2)
    other = FakeRuntime(name="fake-ok")
    with pytest.raises(LabreportError, match="did not finish"):
        run(lab, plan(tmp_path), other, hanging)
    assert not (tmp_path / "out.json").exists()
    partial = load_measurement(tmp_path / "out.partial.json")
    assert partial.partial
    assert "did not finish" in partial.partial_reason
    # rounds 0 and 1 of both, then fake-ok of round 2; fake-hang hangs in round 2
    assert [(s.runtime, s.round) for s in partial.samples][-2:] == [
        ("fake-hang", 1),
        ("fake-ok", 2),
    ]
    assert len(partial.samples) == 5
    assert hanging.calls[-1] == "cleanup" and other.calls[-1] == "cleanup"


def test_ctrl_c_saves_partial_and_cleans_up(lab: config.LabConfig, tmp_path: Path) -> None:
    runtime = FakeRuntime(interrupt_on=1)
    with pytest.raises(RunInterruptedError) as raised:
        run(lab, plan(tmp_path), runtime)
    partial = load_measurement(tmp_path / "out.partial.json")
    assert partial.partial_reason == "interrupted (Ctrl-C or SIGTERM)"
    assert runtime.calls[-1] == "cleanup"
    # The message says what was kept, where (it used to say nothing was).
    assert raised.value.message == "interrupted"
    assert raised.value.hint == (
        f"run the command again; what was measured is kept in {tmp_path / 'out.partial.json'} "
        "(add --resume to continue it)"
    )


def test_an_existing_complete_file_survives_a_failed_run(
    lab: config.LabConfig, tmp_path: Path
) -> None:
    (tmp_path / "out.json").write_text("the user's earlier file")
    with pytest.raises(LabreportError):
        run(lab, plan(tmp_path), FakeRuntime(hang_on=0))
    assert (tmp_path / "out.json").read_text() == "the user's earlier file"
    assert not (tmp_path / "out.partial.json").exists()  # nothing was measured


def test_unavailable_runtime_is_recorded_unless_asked_for(
    lab: config.LabConfig, tmp_path: Path
) -> None:
    off = FakeRuntime(name="fake-off", is_available=False)
    result = run(lab, plan(tmp_path), FakeRuntime(), off)
    record = next(r for r in result.runtimes if r.name == "fake-off")
    assert not record.available
    assert record.reason == "fake-off is switched off"
    assert off.calls == []
    with pytest.raises(LabreportError, match="runtime fake-off is not available"):
        run(lab, plan(tmp_path, include=("fake-off",)), FakeRuntime(), off)


def test_skip_and_unknown_names(lab: config.LabConfig, tmp_path: Path) -> None:
    result = run(
        lab,
        plan(tmp_path, skip=("fake-b",)),
        FakeRuntime(name="fake-a"),
        FakeRuntime(name="fake-b"),
    )
    assert {s.runtime for s in result.samples} == {"fake-a"}
    assert next(r for r in result.runtimes if r.name == "fake-b").reason.startswith("left out")
    with pytest.raises(LabreportError, match="unknown runtime: nope"):
        run(lab, plan(tmp_path, include=("nope",)), FakeRuntime())


def test_memory_records_are_kept(lab: config.LabConfig, tmp_path: Path) -> None:
    result = run(lab, plan(tmp_path), FakeRuntime())
    assert [m.runtime for m in result.memory] == ["fake"]
    assert run(lab, plan(tmp_path, memory=False), FakeRuntime()).memory == []


def test_no_memory_and_no_serving_each_leave_out_their_own(
    lab: config.LabConfig, tmp_path: Path
) -> None:
    """--no-memory keeps serving and --no-serving keeps memory (--no-memory dropped both)."""
    both = run(lab, plan(tmp_path), FakeRuntime())
    assert [m.runtime for m in both.memory] == [s.runtime for s in both.serving] == ["fake"]
    no_memory = run(lab, plan(tmp_path, memory=False), FakeRuntime())
    assert no_memory.memory == [] and [s.runtime for s in no_memory.serving] == ["fake"]
    no_serving = run(lab, plan(tmp_path, serving=False), FakeRuntime())
    assert no_serving.serving == [] and [m.runtime for m in no_serving.memory] == ["fake"]


def test_docker_wasm_support_asks_for_the_image_store_not_a_runtime_registry() -> None:
    from labreport.runtimes.docker_wasm import docker_wasm_support

    old = {"ServerVersion": "20.10.24", "Driver": "fuse-overlayfs", "DriverStatus": None}
    supported, reason = docker_wasm_support(old)
    assert not supported
    assert "graph driver (fuse-overlayfs)" in reason and "--engine private" in reason
    # Docker 26 runs io.containerd.* shims without registering them: only the store matters.
    new = {
        "ServerVersion": "26.1.5",
        "Driver": "overlayfs",
        "DriverStatus": [["driver-type", "io.containerd.snapshotter.v1"]],
        "Runtimes": {"runc": {}},
    }
    assert docker_wasm_support(new) == (True, "containerd image store (26.1.5)")


def test_a_skipped_optional_build_is_recorded_and_its_runtime_left_out(
    lab: config.LabConfig, tmp_path: Path
) -> None:
    def build_without_tinygo(
        config: config.LabConfig,
        ctx: RunContext,
        needs: frozenset[str],
        workdir: Path,
        undo: contextlib.ExitStack,
    ) -> BuildOutcome:
        ctx.built.skipped["wasm-tinygo"] = "tinygo is not on PATH"
        return BuildOutcome()

    plain, tinygo = FakeRuntime(name="fake"), FakeRuntime(name="fake-tg", needs_build="wasm-tinygo")
    registry = {r.name: (lambda r=r: r) for r in (plain, tinygo)}
    result = measure(
        lab,
        plan(tmp_path),
        registry,
        environment=fakes.environment,
        endpoints=fakes.NOWHERE,
        builder=build_without_tinygo,
    )
    assert result.skipped_builds == {"wasm-tinygo": "tinygo is not on PATH"}
    record = next(r for r in result.runtimes if r.name == "fake-tg")
    assert (record.available, record.reason) == (False, "tinygo is not on PATH")
    assert tinygo.calls == []
    assert {s.runtime for s in result.samples} == {"fake"}


def test_the_tinygo_runtime_says_why_it_cannot_run(lab: config.LabConfig) -> None:
    runtime = WasmtimeEmbeddedTinygoRuntime()
    ctx = RunContext(config=lab, run_id="t", timeout_s=5, endpoints=fakes.NOWHERE)
    ctx.built.skipped["wasm-tinygo"] = "the build failed: tinygo exited with 1"
    assert runtime.unusable(ctx) == "the build failed: tinygo exited with 1"
    ctx.built.files["wasm-tinygo"] = Path("m.wasm")
    assert runtime.unusable(ctx) == ""
    no_tinygo = lab.model_copy(
        update={"builds": {k: v for k, v in lab.builds.items() if v.toolchain == "go"}}
    )
    assert "no build with toolchain" in runtime.unusable(
        RunContext(no_tinygo, "t", 5, fakes.NOWHERE)
    )


def shape(result: Measurement) -> list[tuple[str, int, bool]]:
    return [(s.runtime, s.round, s.warmup) for s in result.samples]


def test_resume_continues_an_interrupted_run_to_the_same_structure(
    lab: config.LabConfig, tmp_path: Path
) -> None:
    whole = run(
        lab,
        plan(tmp_path / "whole", output=tmp_path / "whole.json"),
        FakeRuntime("a"),
        FakeRuntime("b"),
    )
    # Interrupted in round 2 (b's third run), after a's sample of that round.
    with pytest.raises(RunInterruptedError):
        run(lab, plan(tmp_path), FakeRuntime("a"), FakeRuntime("b", interrupt_on=2))
    partial = load_measurement(tmp_path / "out.partial.json")
    assert shape(partial)[-1] == ("a", 2, False)
    a, b = FakeRuntime("a"), FakeRuntime("b")
    resumed = run(lab, plan(tmp_path, resume=True), a, b)
    assert shape(resumed) == shape(whole)  # the unfinished round 2 was run again, whole
    assert len(resumed.resumed_at) == 1 and not resumed.partial
    assert resumed.started_at == partial.started_at
    # Warmed up again (one unrecorded run each), then rounds 2 and 3.
    assert a.calls == ["prepare", "run0", "run1", "run2", "cleanup"]
    assert load_measurement(tmp_path / "out.json") == resumed
    assert not (tmp_path / "out.partial.json").exists()


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"runs": 5}, "--runs (3 then, 5 now)"),
        ({"warmup": 0}, "--warmup (1 then, 0 now)"),
    ],
)
def test_resume_refuses_other_options(
    lab: config.LabConfig, tmp_path: Path, change: dict[str, object], expected: str
) -> None:
    with pytest.raises(RunInterruptedError):
        run(lab, plan(tmp_path), FakeRuntime("a", interrupt_on=2))
    with pytest.raises(LabreportError, match="measured under other conditions") as raised:
        run(lab, plan(tmp_path, resume=True, **change), FakeRuntime("a"))
    assert expected in raised.value.message
    assert (tmp_path / "out.partial.json").exists()  # kept as it was


def test_resume_refuses_other_runtimes_and_another_environment(
    lab: config.LabConfig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(RunInterruptedError):
        run(lab, plan(tmp_path), FakeRuntime("a", interrupt_on=2))
    with pytest.raises(LabreportError, match=r"runtimes \(a then, a, b now\)"):
        run(lab, plan(tmp_path, resume=True), FakeRuntime("a"), FakeRuntime("b"))
    other = fakes.environment().model_copy(update={"host": "elsewhere"})
    monkeypatch.setattr(fakes, "environment", lambda: other)
    with pytest.raises(LabreportError, match="host \\('testhost' then, 'elsewhere' now\\)"):
        run(lab, plan(tmp_path, resume=True), FakeRuntime("a"))


def test_resume_without_a_partial_file_is_refused_before_anything_runs(tmp_path: Path) -> None:
    with pytest.raises(LabreportError, match="no partial measurement") as raised:
        check_plan(plan(tmp_path, resume=True))
    assert "without --resume" in raised.value.hint


def test_a_finished_run_whose_file_cannot_be_written_is_kept_and_said_where(
    lab: config.LabConfig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A full disk at the very end: every sample is kept under the state directory."""
    import errno

    from labreport.host import fsutil

    monkeypatch.setenv("LABREPORT_STATE_DIR", str(tmp_path / "state"))
    real = fsutil.atomic_write_json
    output = tmp_path / "out.json"

    def full_disk(path: Path, value: object) -> None:
        if path == output:
            raise OSError(errno.ENOSPC, "No space left on device")
        real(path, value)

    monkeypatch.setattr(fsutil, "atomic_write_json", full_disk)
    with pytest.raises(LabreportError) as raised:
        run(lab, plan(tmp_path), FakeRuntime())
    assert "No space left on device" in raised.value.message
    kept = list((tmp_path / "state" / "unsaved").glob("out-*.json"))
    assert len(kept) == 1 and str(kept[0]) in raised.value.hint
    saved = load_measurement(kept[0])
    assert len(saved.samples) == 4 and not saved.partial  # the whole finished measurement
    assert not output.exists()


def test_a_runtime_with_fewer_declared_runs_sits_out_the_later_rounds(
    lab: config.LabConfig, tmp_path: Path
) -> None:
    """runs_by_runtime: warm-up as everyone, then only its first N measured rounds; the others
    go on interleaved, and a comparison pairs the rounds both took part in."""
    fast, slow = FakeRuntime("fast"), FakeRuntime("slow", base_ns=9_000_000)
    result = run(lab, plan(tmp_path, runs=4, runs_by_runtime={"slow": 2}), fast, slow)
    assert shape(result) == [
        ("fast", 0, True), ("slow", 0, True),
        ("fast", 1, False), ("slow", 1, False),
        ("fast", 2, False), ("slow", 2, False),
        ("fast", 3, False),
        ("fast", 4, False),
    ]  # fmt: skip
    records = {r.name: r for r in result.runtimes}
    assert records["slow"].declared_runs == 2
    assert records["fast"].declared_runs is None
    view = startup.runtime_views(sources.load_sources([tmp_path / "out.json"]))
    assert view["slow"].measured == 2 and view["fast"].measured == 4
    remedies = {name: {w.remedy for w in view[name].warnings} for name in ("slow", "fast")}
    assert any("measure.runs_by_runtime" in remedy for remedy in remedies["slow"])
    assert not any("measure.runs_by_runtime" in remedy for remedy in remedies["fast"])
    compared = startup.compare_views(view["slow"], view["fast"], "slow", "fast")
    assert "sign test, 2 paired rounds" in compared.result.test  # those both took part in


def test_a_declared_count_above_runs_is_capped_and_an_unknown_runtime_refused(
    lab: config.LabConfig, tmp_path: Path
) -> None:
    result = run(lab, plan(tmp_path, runs=2, runs_by_runtime={"fake": 5}), FakeRuntime())
    assert len([s for s in result.samples if not s.warmup]) == 2
    with pytest.raises(LabreportError, match="runs_by_runtime names podman, which is not"):
        run(lab, plan(tmp_path, runs_by_runtime={"podman": 2}), FakeRuntime())


def test_resume_with_a_declared_count_finishes_the_rounds_it_left(
    lab: config.LabConfig, tmp_path: Path
) -> None:
    counts = {"runs": 4, "runs_by_runtime": {"b": 1}}
    whole = run(
        lab,
        plan(tmp_path / "whole", output=tmp_path / "whole.json", **counts),
        FakeRuntime("a"),
        FakeRuntime("b"),
    )
    # b took part in rounds 0 and 1 only; the run is cut in round 3, where only a runs.
    with pytest.raises(RunInterruptedError):
        run(lab, plan(tmp_path, **counts), FakeRuntime("a", interrupt_on=3), FakeRuntime("b"))
    resumed = run(lab, plan(tmp_path, resume=True, **counts), FakeRuntime("a"), FakeRuntime("b"))
    assert shape(resumed) == shape(whole)


def test_each_runtime_keeps_the_output_of_its_first_checked_measured_run(
    lab: config.LabConfig, tmp_path: Path
) -> None:
    """Warm-up runs and runs whose output failed the checks are never kept; the file says it
    keeps outputs, and each is what that run printed."""
    failing_first = FakeRuntime(name="fake-a", bad_output_on={1})  # round 1: the first measured
    fine = FakeRuntime(name="fake-b")
    result = run(lab, plan(tmp_path), failing_first, fine)
    assert result.outputs_kept
    kept = {o.runtime: o for o in result.outputs}
    assert kept["fake-a"].round == 2 and kept["fake-b"].round == 1
    assert json.loads(kept["fake-b"].text)["moscow_time"]  # what the fake printed, checked
    assert not kept["fake-a"].truncated
    assert load_measurement(tmp_path / "out.json").outputs == result.outputs


def test_a_runtime_whose_every_run_failed_keeps_no_output(
    lab: config.LabConfig, tmp_path: Path
) -> None:
    result = run(lab, plan(tmp_path), FakeRuntime(bad_output_on={0, 1, 2, 3}))
    assert result.outputs_kept and result.outputs == []
