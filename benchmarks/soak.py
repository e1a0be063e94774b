"""A soak: a thousand and more checked runs, interleaved across every runtime the host has, then
a count of everything a run could leak, and of samples that went missing.

    .venv/bin/python benchmarks/soak.py [--runs 112] [--engine private]

One `labreport measure` with every runtime (the private Docker 26 engine by default, so that
Docker's WASM path is among them), memory and checks included. Before and after, it counts:
containers and run-tagged or dangling labreport images on the engine (the private one is started
again to look inside it), containers, tasks, snapshots, images and content blobs in labreport's
containerd namespace, the shim's cache entries and phase records, and processes (ctr, shims,
dockerd and containerd of labreport's own). Every figure that grew is a leak. Lost samples are
runs that should be in the file (each runtime's warmup and measured runs, the fewer its lab
config declares where it does) and are not. Exit code 1 for any leak or lost sample. Last, the
host's leak audit (labreport/inventory/leftovers.py, `labreport clean --check`): whatever it
finds that it did not find before the run is a leak as well.
"""

from __future__ import annotations

import argparse
import contextlib
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from labreport.host import engine, paths, private_engine, proc, shim_cache
from labreport.host.containerd import Ctr
from labreport.host.endpoints import Endpoints
from labreport.inventory import leftovers
from labreport.record.files import load_measurement

ROOT = Path(__file__).resolve().parent.parent
PROCESS_NAMES = ("ctr", "containerd-shim-wasmtime-v1", "containerd-shim-wasmtime-aot-v1")


def processes() -> int:
    """Processes a run starts and must end: ctr clients, wasm shims, the private daemons."""
    count = 0
    for _, argv in proc.command_lines():
        name = Path(argv[0].decode(errors="replace")).name if argv else ""
        if name in PROCESS_NAMES or (
            name in ("dockerd", "containerd") and str(paths.state_dir()).encode() in b" ".join(argv)
        ):
            count += 1
    return count


def on_engine(endpoints: Endpoints) -> dict[str, int]:
    client = engine.connect(timeout_s=30, url=endpoints.engine.url)
    try:
        label = f"{engine.LABEL_MANAGED}=true"
        # Low-level lists: one call each, no inspect of an object that may vanish meanwhile.
        containers = client.api.containers(all=True, filters={"label": label})
        images = client.api.images(all=True)
        tagged = [t for image in images for t in image.get("RepoTags") or [] if ":run-" in t]
        dangling = client.api.images(all=True, filters={"dangling": True, "label": label})
        return {"containers": len(containers), "images": len(tagged) + len(dangling)}
    finally:
        client.close()


def in_containerd(endpoints: Endpoints) -> dict[str, int]:
    ctr = Ctr.find(endpoints.containerd)
    return {
        "ctr containers": len(ctr.container_ids()),
        "ctr tasks": len(ctr.task_ids()),
        "ctr snapshots": len(ctr.snapshot_keys()),
        "ctr images": len(ctr.image_names()),
        "ctr content blobs": len(ctr.content()),
    }


@contextlib.contextmanager
def engine_to_count(mode: str) -> Iterator[Endpoints]:
    """The engine the run used; the private one is started again to look inside it."""
    if mode != "private":
        yield Endpoints.from_environment()
        return
    with private_engine.running() as started:
        yield started.endpoints


def count(mode: str) -> dict[str, int]:
    with engine_to_count(mode) as endpoints:
        counts = {**on_engine(endpoints), **in_containerd(endpoints)}
    counts["shim cache entries"] = len(shim_cache.entries())
    counts["shim phase records"] = len(list((shim_cache.cache_dir() / "phases").glob("*")))
    counts["processes"] = processes()
    return counts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=112, help="measured rounds")
    parser.add_argument("--engine", default="private", choices=("private", "host"))
    args = parser.parse_args()
    before = count(args.engine)
    audited = {
        item.line() for item in leftovers.leaks(leftovers.every_probe(Endpoints.from_environment()))
    }  # the host's audit, before the run
    with tempfile.TemporaryDirectory() as scratch:
        output = Path(scratch, "soak.json")
        argv = [
            sys.executable, "-m", "labreport.cli", "measure", "--engine", args.engine,
            "--runs", str(args.runs), "--warmup", "1", "-o", str(output),
        ]  # fmt: skip
        started = time.monotonic()
        done = subprocess.run(argv, cwd=ROOT, timeout=4 * 3600, check=False)
        wall = time.monotonic() - started
        if done.returncode != 0:
            print(f"measure failed with exit code {done.returncode}")
            return 1
        result = load_measurement(output)
    after = count(args.engine)
    active = [r.name for r in result.runtimes if r.available]
    # Each runtime takes the warmup and its measured runs: --runs, or the fewer the lab config
    # declares for it (declared_runs, e.g. 8 for the runtimes that compile at every start).
    expected = sum(
        result.warmup + (r.declared_runs or result.runs) for r in result.runtimes if r.available
    )
    checked = sum(1 for s in result.samples if s.ok)
    failed = len(result.samples) - checked
    lost = expected - len(result.samples)
    print(f"\nruntimes ({len(active)}): {', '.join(active)}")
    print(
        f"runs: {len(result.samples)} of {expected} expected, {checked} checked ok, {failed} failed"
    )
    print(f"lost samples: {lost}")
    print(f"wall time: {wall / 60:.1f} min")
    leaks = 0
    for key in before:
        grew = after[key] - before[key]
        leaks += max(grew, 0)
        print(f"leaked {key}: {grew} ({before[key]} before, {after[key]} after)")
    # The audit the test command ends with, on the host: anything new is a leak too.
    for item in leftovers.leaks(leftovers.every_probe(Endpoints.from_environment())):
        if item.line() not in audited:
            leaks += 1
            print(f"left behind: {item.line()}")
    print(f"total leaks: {leaks}")
    return 1 if leaks or lost or failed else 0


if __name__ == "__main__":
    sys.exit(main())
