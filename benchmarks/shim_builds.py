"""Two builds of the shims against each other, side by side in one run: what a build setting
(wasmtime's features, the release profile) costs or saves at a start.

    .venv/bin/python benchmarks/shim_builds.py BASELINE_DIR CANDIDATE_DIR [--runs 20] [--module M]

Each directory holds both binaries (containerd-shim-wasmtime-v1, containerd-shim-wasmtime-aot-v1),
as `cargo build --release` leaves them in target/release. The shims' `--labreport-run` mode runs
the lab's module in-process exactly as a container start does, so the builds are compared without
containerd's noise. Each build's caching shim first compiles and stores the module in a state
directory of its own; then, round after round, each build takes one compiling start and one
cached start, the builds' order alternating. Every run's output must be the program's JSON.

Printed: the median wall time of each kind of start per build, and candidate / baseline as the
median of the per-round ratios with its interval and the sign test (labreport's `paired`), and the
binaries' sizes.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from measure_cli import check_run

from labreport.analysis import stats
from labreport.host import paths
from labreport.host.shims import WASMTIME_AOT_SHIM, WASMTIME_SHIM

KINDS = {"compiling start": WASMTIME_SHIM.binary, "cached start": WASMTIME_AOT_SHIM.binary}


def start(binary: Path, state: Path, module: Path) -> float:
    """One checked start; its wall time in ms."""
    began = time.perf_counter_ns()
    done = subprocess.run(
        [str(binary), "--labreport-run", str(state), str(module)],
        env={**os.environ, "MODE": "once"}, capture_output=True, text=True, timeout=300,
        check=False,
    )  # fmt: skip
    elapsed = (time.perf_counter_ns() - began) / 1e6
    check_run(done, str(binary))
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("baseline", type=Path)
    parser.add_argument("candidate", type=Path)
    parser.add_argument("--runs", type=int, default=20)
    default_module = paths.state_dir() / "artifacts" / "lab12" / "moscow-time.wasm"
    parser.add_argument("--module", type=Path, default=default_module)
    args = parser.parse_args()
    builds = {"baseline": args.baseline, "candidate": args.candidate}
    for folder in builds.values():
        for binary in KINDS.values():
            if not (folder / binary).is_file():
                raise SystemExit(f"no {binary} in {folder}")
    if not args.module.is_file():
        raise SystemExit(f"no module at {args.module}: run `labreport build` first")
    times: dict[str, dict[str, dict[int, float]]] = {b: {k: {} for k in KINDS} for b in builds}
    with tempfile.TemporaryDirectory() as scratch:
        states = {name: Path(scratch, name) for name in builds}
        for name, folder in builds.items():
            start(folder / KINDS["cached start"], states[name], args.module)  # compile and store
        for index in range(args.runs):
            order = list(builds) if index % 2 == 0 else list(reversed(builds))
            for name in order:
                for kind, binary in KINDS.items():
                    times[name][kind][index] = start(
                        builds[name] / binary, states[name], args.module
                    )
    print(f"{args.runs} interleaved rounds; median wall ms of one checked start, in-process")
    print(f"{'':18}{'baseline':>12}{'candidate':>12}   candidate / baseline (interval), sign test")
    for kind in KINDS:
        a, b = times["candidate"][kind], times["baseline"][kind]
        compared = stats.paired(a, b)
        low, high = compared.interval.low, compared.interval.high
        print(
            f"{kind:18}{stats.summarize(list(b.values())).median:12.1f}"
            f"{stats.summarize(list(a.values())).median:12.1f}   {compared.ratio:.3f} "
            f"({low:.3f}-{high:.3f}), {compared.verdict}: {compared.test}"
        )
    for binary in KINDS.values():
        sizes = [(folder / binary).stat().st_size / 2**20 for folder in builds.values()]
        print(f"{binary}: {sizes[0]:.1f} MiB -> {sizes[1]:.1f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
