"""Cached WASM starts against runc, through the same client, measured side by side in one run.

    .venv/bin/python benchmarks/wasm_start.py [--runs 30] [--engine private] [--keep FILE]

It runs `labreport measure` once with ctr-runc, ctr-wasmtime-aot, docker-cli and docker-wasm-aot
(and, unless --no-compiling, ctr-wasmtime, the shim that compiles at every start) in
interleaved rounds on one engine (the private Docker 26 engine by default: Docker's WASM path
needs the containerd image store, and ctr then uses that engine's containerd). Every run's
output is checked, as in any measurement. It prints:

- per client, the caching shim's median against runc's and their per-round ratio (the
  median of per-round ratios, with its interval and the sign test), and whether the goal is met:
  at most 0.6 through ctr and 0.9 through Docker (issue 37), the interval's upper end included,
  and faster by the sign test;
- the first start of each caching runtime (compile and store) against the compiling shim's
  median start (compile at every start), which it must not exceed by much;
- the median of each phase of a cached start, as the shim timed it.

Exit code 1 when a goal is not met.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from measure_cli import labreport_measure

from labreport.analysis import stats
from labreport.analysis.sources import Source
from labreport.analysis.startup import runtime_views
from labreport.record.files import load_measurement

GOALS = {"ctr": 0.6, "docker": 0.9}
PAIRS = (("ctr-wasmtime-aot", "ctr-runc", "ctr"), ("docker-wasm-aot", "docker-cli", "docker"))


def measure(runs: int, engine: str, compiling: bool, output: Path) -> None:
    runtimes = [name for pair in PAIRS for name in pair[:2]]
    if compiling:
        runtimes.append("ctr-wasmtime")
    labreport_measure(
        "--engine", engine, "--runtime", ",".join(runtimes), "--runs", str(runs),
        "--warmup", "1", "--no-memory", "--no-serving", "-o", str(output),
    )  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--engine", default="private", choices=("private", "host", "auto"))
    parser.add_argument("--no-compiling", action="store_true", help="leave out ctr-wasmtime")
    parser.add_argument("--keep", type=Path, help="also keep the measurement file here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        output = args.keep or Path(scratch, "wasm_start.json")
        measure(args.runs, args.engine, not args.no_compiling, output)
        result = load_measurement(output)
    by_name = runtime_views([Source(str(output), "", result)])
    engine = result.environment.engine.get("engine_version", "?")
    containerd = result.environment.containerd.get("version", "?")
    print(f"\nDocker {engine}, containerd {containerd}, {args.runs} interleaved rounds\n")
    met = True
    print(f"{'client':8} {'caching shim':>13} {'runc':>9} {'ratio (interval)':>26}  goal")
    for cached, runc, client in PAIRS:
        a, b = by_name.get(cached), by_name.get(runc)
        if not (a and b and a.startup and b.startup):
            print(f"{client:8} not measured")
            met = False
            continue
        c = stats.paired(a.valid_by_round, b.valid_by_round)
        goal = GOALS[client]
        ok = c.interval.high <= goal and c.verdict == "faster"
        met &= ok
        interval = f"{c.ratio:.3f} ({c.interval.low:.3f}-{c.interval.high:.3f})"
        print(
            f"{client:8} {a.startup.median:10.1f} ms {b.startup.median:6.1f} ms {interval:>26}  "
            f"<= {goal}: {'met' if ok else 'NOT MET'}  "
            f"[{c.verdict}{': ' + c.reason if c.reason else ''}]"
        )
    compiling = by_name.get("ctr-wasmtime")
    print()
    for cached, _, client in PAIRS:
        view = by_name.get(cached)
        if view is None or view.first_ms is None:
            continue
        against = ""
        if compiling and compiling.startup:
            against = (
                f", {view.first_ms / compiling.startup.median:.2f}x the compiling shim's "
                f"median start ({compiling.startup.median:.0f} ms)"
            )
        cache = view.shim.first_cache if view.shim else "no shim record"
        print(f"first start through {client}: {view.first_ms:.0f} ms ({cache}){against}")
    for cached, _, client in PAIRS:
        view = by_name.get(cached)
        if view is None or view.shim is None:
            continue
        shim = view.shim
        print(
            f"\nphases of {shim.count} {shim.basis} through {client} (median ms; {shim.outcomes}):"
        )
        for phase in shim.phases:
            print(f"  {phase.name:14} {phase.median_ms:9.2f}")
        print(f"  {'sum':14} {shim.total_ms:9.2f}")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
