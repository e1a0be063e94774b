"""How close is labreport's timing harness to hyperfine? Both time the same command, in one run,
interleaved in blocks, and the ratio of medians is printed (1.00 = the same).

    .venv/bin/python benchmarks/harness_vs_hyperfine.py [--runs 30] [--command ...]

Default command: the lab's native binary in MODE=once (built first, as `labreport build` does).
hyperfine runs with -N (no shell) so both sides spawn the program directly.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

from labreport import build, config, proc, tools


def harness_ms(argv: list[str], env: dict[str, str], runs: int) -> list[float]:
    return [
        proc.run(argv, env=env, timeout_s=60, what="benchmark run").wall_ns / 1e6
        for _ in range(runs)
    ]


def hyperfine_ms(argv: list[str], env: dict[str, str], runs: int) -> list[float]:
    hyperfine = tools.which("hyperfine")
    if hyperfine is None:
        sys.exit("hyperfine is not installed (scripts/setup installs it)")
    with tempfile.TemporaryDirectory() as scratch:
        export = Path(scratch, "out.json")
        proc.run(
            [str(hyperfine), "-N", "--warmup", "2", "--runs", str(runs), "--export-json",
             str(export), " ".join(argv)],
            env=env,
            timeout_s=600,
            what="hyperfine",
        )
        result = json.loads(export.read_text())["results"][0]
    return [t * 1000 for t in result["times"]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--blocks", type=int, default=3)
    parser.add_argument("--command", nargs="+", help="default: the lab's native binary")
    args = parser.parse_args()
    env = {"MODE": "once"}
    if args.command:
        argv = args.command
    else:
        lab = config.load(Path(__file__).resolve().parent.parent / "lab.toml")
        out = tools.state_dir() / "benchmarks"
        argv = [str(build.go_build(lab, "native", out).path)]
    ours: list[float] = []
    theirs: list[float] = []
    for _ in range(args.blocks):  # interleaved blocks: drift hits both alike
        harness_ms(argv, env, 2)  # warm-up, as hyperfine's --warmup 2
        ours += harness_ms(argv, env, args.runs)
        theirs += hyperfine_ms(argv, env, args.runs)
    a, b = statistics.median(ours), statistics.median(theirs)
    print(f"command: {' '.join(argv)}  ({len(ours)} runs each)")
    print(f"labreport harness median {a:8.3f} ms")
    print(f"hyperfine -N      median {b:8.3f} ms")
    print(f"ratio harness/hyperfine  {a / b:8.2f}")


if __name__ == "__main__":
    main()
