"""Two builds of the shims against each other, side by side in one run: what a build setting
(wasmtime's features, the release profile) costs or saves at a start.

    .venv/bin/python benchmarks/shim_builds.py BASELINE_DIR CANDIDATE_DIR [--runs 20] [--module M]
    .venv/bin/python benchmarks/shim_builds.py BASELINE_DIR CANDIDATE_DIR --serve [--runs 10]

Each directory holds both binaries (containerd-shim-wasmtime-v1, containerd-shim-wasmtime-aot-v1),
as `cargo build --release` leaves them in target/release. The shims' `--labreport-run` mode runs
the lab's module in-process exactly as a container start does, so the builds are compared without
containerd's noise. Each build's caching shim first compiles and stores the module in a state
directory of its own; then, round after round, each build takes one compiling start and one
cached start, the builds' order alternating. Every run's output must be the program's JSON.

Printed: the median wall time of each kind of start per build, and candidate / baseline as the
median of the per-round ratios with its interval and the sign test (labreport's `paired`), and the
binaries' sizes.

--serve: each build's caching shim serves lab 12's module by WAGI (`--labreport-run`, the guest
slots a container gets, 16), both servers at once. Round after round, the builds' order
alternating, each takes a checked load (--concurrency, 300 requests) while its private resident
memory (RssAnon) is read every 20 ms, then idles 1.5 s and is read again: private memory under
load (the largest reading) and idle after load, and the load's rate, compared as above. The
file-backed resident pages (RssFile: the binary's and the compiled module's) are left out: they
are page cache, shared, and their count follows what the cache held of each file (two copies of
one build differed by 1.5 MiB there and by nothing in private memory).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from measure_cli import check_run, lab, lab_check
from serve import way_server

from labreport.analysis import stats
from labreport.host import paths
from labreport.host.shims import WASMTIME_AOT_SHIM, WASMTIME_SHIM
from labreport.record.models import ServingLevel
from labreport.runtimes.load import Client
from labreport.runtimes.memory import proc_status_bytes

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
    parser.add_argument("--serve", action="store_true", help="WAGI memory and rate, not starts")
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    builds = {"baseline": args.baseline, "candidate": args.candidate}
    for folder in builds.values():
        for binary in KINDS.values():
            if not (folder / binary).is_file():
                raise SystemExit(f"no {binary} in {folder}")
    if not args.module.is_file():
        raise SystemExit(f"no module at {args.module}: run `labreport build` first")
    if args.serve:
        return serve(builds, args.module, args.concurrency, args.runs)
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
        show(kind, times["baseline"][kind], times["candidate"][kind])
    for binary in KINDS.values():
        sizes = [(folder / binary).stat().st_size / 2**20 for folder in builds.values()]
        print(f"{binary}: {sizes[0]:.1f} MiB -> {sizes[1]:.1f} MiB")
    return 0


def show(
    what: str, baseline: dict[int, float], candidate: dict[int, float], words: str = ""
) -> None:
    """One line: each build's median and candidate / baseline per round, with its verdict (in
    words "larger/smaller" where the figure is not a time)."""
    compared = stats.paired(candidate, baseline)
    low, high = compared.interval.low, compared.interval.high
    verdict = str(compared.verdict)
    if words and compared.verdict is not stats.Verdict.NO_DIFFERENCE:
        larger, smaller = words.split("/")
        verdict = larger if compared.verdict is stats.Verdict.SLOWER else smaller
    print(
        f"{what:18}{stats.summarize(list(baseline.values())).median:12.2f}"
        f"{stats.summarize(list(candidate.values())).median:12.2f}   {compared.ratio:.3f} "
        f"({low:.3f}-{high:.3f}), {verdict}: {compared.test}"
    )


def serve(builds: dict[str, Path], module: Path, concurrency: int, rounds: int) -> int:
    """Lab 12 by WAGI in each build's caching shim, side by side: private memory under load and
    idle after it (MiB) and the rate (checked requests a second), per round."""
    wagi = lab().wagi
    env = {**(wagi.env if wagi else {}), "LABREPORT_WAGI_CONCURRENCY": "16"}
    kinds = ("private, load MiB", "private, idle MiB", "checked req/s")
    figures: dict[str, dict[str, dict[int, float]]] = {b: {k: {} for k in kinds} for b in builds}
    servers: dict[str, tuple[str, subprocess.Popen[bytes]]] = {}
    with tempfile.TemporaryDirectory() as scratch:
        try:
            for name, folder in builds.items():
                shim = folder / WASMTIME_AOT_SHIM.binary
                start(shim, Path(scratch, name), module)  # compile and store, as a container's
                servers[name] = way_server(shim, Path(scratch, name), module, "", env)  # first
            for url, _ in servers.values():
                Client(url, lab_check).level(concurrency, 100, 60)  # warm
            for index in range(rounds):
                for name in builds if index % 2 == 0 else reversed(builds):
                    url, process = servers[name]
                    peak, level = sampled(process.pid, Client(url, lab_check), concurrency)
                    if level.ok != level.requests:
                        raise SystemExit(f"{name}: {level.ok} of {level.requests} passed")
                    time.sleep(1.5)
                    figures[name]["private, load MiB"][index] = peak / 2**20
                    figures[name]["private, idle MiB"][index] = (
                        proc_status_bytes(process.pid, "RssAnon") / 2**20
                    )
                    figures[name]["checked req/s"][index] = level.requests / (level.wall_ns / 1e9)
        finally:
            for _, process in servers.values():
                process.terminate()
                process.communicate(timeout=30)
    print(f"lab 12 by WAGI, concurrency {concurrency}, {rounds} interleaved rounds of 300")
    print(f"{'':18}{'baseline':>12}{'candidate':>12}   candidate / baseline (interval), sign test")
    for kind in kinds:
        words = "higher/lower" if kind == "checked req/s" else "larger/smaller"
        show(kind, figures["baseline"][kind], figures["candidate"][kind], words)
    return 0


def sampled(pid: int, client: Client, concurrency: int) -> tuple[int, ServingLevel]:
    """300 requests at concurrency on a thread while pid's RssAnon is read every 20 ms: (largest
    reading, level)."""
    done: list[ServingLevel] = []
    runner = threading.Thread(target=lambda: done.append(client.level(concurrency, 300, 120)))
    runner.start()
    peak = proc_status_bytes(pid, "RssAnon")
    while runner.is_alive():
        peak = max(peak, proc_status_bytes(pid, "RssAnon"))
        time.sleep(0.02)
    runner.join()
    return peak, done[0]


if __name__ == "__main__":
    sys.exit(main())
