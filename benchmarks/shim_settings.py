"""What the caching shim's settings cost at a cached start, measured in the shim itself.

    .venv/bin/python benchmarks/shim_settings.py [--runs 30] [--shim PATH] [--module PATH]

The shim's `--labreport-run` mode runs the lab's module in-process exactly as a container start
does (file cache, phase records), so the shim's own phases can be compared without containerd's
noise. Each variant gets one compile-and-store start, then all variants take turns, one cached
start each per round. Printed: the median of each in-shim phase per variant, the artifact's size,
and each variant's in-shim total against the shipped setting (ratio of medians, same run).

Variants (`LABREPORT_SHIM_BENCH_VARIANT`, read in this mode only):
- `shipped`: a known module file (neither read nor hashed: shim/src/cache.rs), wasmtime's
  default engine settings;
- `no-known`: the module file mapped and hashed (sha-256) at every start, its entry checked
  whole (what the shim did before known-file records);
- `no-known,heap-read`: as `no-known`, the module read into the heap instead of mapped;
- `no-address-map`: `Config::generate_address_map(false)`: no wasm-offset map in the compiled
  code (smaller; traps still trap, their backtraces lose wasm offsets).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from measure_cli import check_run

from labreport.host import paths
from labreport.host import shim_cache as shimcache
from labreport.host.shims import WASMTIME_AOT_SHIM

VARIANTS = ("shipped", "no-known", "no-known,heap-read", "no-address-map")
IN_SHIM = ("engine", "open", "read", "key", "load", "instantiate", "exit")


def token(variant: str) -> str:
    return variant.replace(",", "_")


def start(shim: Path, state: Path, module: Path, variant: str, token: str) -> dict[str, object]:
    env = {
        **os.environ,
        "MODE": "once",
        shimcache.PHASES_ENV: token,
        "LABREPORT_SHIM_BENCH_VARIANT": variant,
    }
    done = subprocess.run(
        [str(shim), "--labreport-run", str(state), str(module)],
        env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    check_run(done, str(variant))
    record = shimcache.take_record(token, state)
    if record is None:
        raise SystemExit(f"{variant}: no phase record")
    marks = record.marks
    phases = {name: (at - marks[i - 1][1]) / 1e6 for i, (name, at) in enumerate(marks) if i}
    return {"phases": phases, "facts": record.facts}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--shim", type=Path, default=WASMTIME_AOT_SHIM.find())
    default_module = paths.state_dir() / "artifacts" / "lab12" / "moscow-time.wasm"
    parser.add_argument("--module", type=Path, default=default_module)
    args = parser.parse_args()
    if args.shim is None or not args.module.is_file():
        raise SystemExit("needs the shim (scripts/setup) and the module (labreport build)")
    with tempfile.TemporaryDirectory() as scratch:
        state = Path(scratch)
        sizes = {}
        for variant in VARIANTS:
            first = start(args.shim, state, args.module, variant, f"first-{token(variant)}")
            facts = first["facts"]
            assert isinstance(facts, dict)
            # The variants but no-address-map share the shipped engine: their first start hits.
            sizes[variant] = int(facts.get("artifact_bytes", sizes.get("shipped", 0)))
        phases: dict[str, dict[str, list[float]]] = {v: {} for v in VARIANTS}
        for index in range(args.runs):
            for variant in VARIANTS:
                result = start(args.shim, state, args.module, variant, f"r{index}-{token(variant)}")
                facts = result["facts"]
                assert isinstance(facts, dict) and facts["cache"] == "hit", facts
                timed = result["phases"]
                assert isinstance(timed, dict)
                for name in IN_SHIM:
                    phases[variant].setdefault(name, []).append(timed.get(name, 0.0))
                phases[variant].setdefault("in-shim total", []).append(
                    sum(timed.get(name, 0.0) for name in IN_SHIM)
                )
    names = [*IN_SHIM, "in-shim total"]
    print(f"{args.runs} cached starts per variant, interleaved; median ms")
    print(f"{'phase':16}" + "".join(f"{v:>20}" for v in VARIANTS))
    for name in names:
        row = "".join(f"{statistics.median(phases[v][name]):20.2f}" for v in VARIANTS)
        print(f"{name:16}{row}")
    print(f"{'artifact bytes':16}" + "".join(f"{sizes[v]:20,}" for v in VARIANTS))
    shipped = statistics.median(phases["shipped"]["in-shim total"])
    for variant in VARIANTS[1:]:
        ratio = statistics.median(phases[variant]["in-shim total"]) / shipped
        print(f"{variant} / shipped, in-shim total: {ratio:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
