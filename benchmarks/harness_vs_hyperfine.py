"""Is labreport's timing harness as accurate as hyperfine? Both time the same command in one run,
in interleaved blocks (the order alternating from block to block), each side with its own
warm-up in every block. Each block gives one ratio of medians (harness / hyperfine): the two
sides of a block ran minutes apart at most, so drift on the machine hits both alike. The ratio
printed per command is the median of the block ratios, with the order-statistic interval of that
median and its coverage.

Verdict: ok when the whole interval lies within 1.00 ± 5 %; OFF when it lies wholly outside
(exit code 1); otherwise undecided: the machine's noise is wider than the tolerance, which says
nothing about the harness (run it on a quiet machine, or with more blocks).

    .venv/bin/python benchmarks/harness_vs_hyperfine.py [--runs 10] [--blocks 12]
    .venv/bin/python benchmarks/harness_vs_hyperfine.py -- ctr --address SOCK run --rm IMAGE ID

Without a command it checks the lab's three spawn paths exactly as `labreport measure` runs them:
native (the binary), ctr-runc (`ctr run --rm` of the scratch image) and docker-cli
(`docker run --rm`). It builds them with labreport's own builds and runtimes, and removes the
image, the containerd image and every container afterwards. The harness side is `proc.timed`,
the function every timed sample goes through; hyperfine runs with -N (no shell) and its default
output to /dev/null. Both sides get the same environment.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
import statistics
import sys
import tempfile
import uuid
from collections.abc import Sequence
from pathlib import Path

from labreport import config
from labreport.analysis import stats
from labreport.build.plan import real_build
from labreport.errors import LabreportError
from labreport.host import engine, paths, proc
from labreport.host.endpoints import Endpoints
from labreport.runtimes.base import RunContext
from labreport.runtimes.ctr import CtrRuncRuntime
from labreport.runtimes.docker import DockerCliRuntime
from labreport.runtimes.native import NativeRuntime

TOLERANCE = 0.05
ROOT = Path(__file__).resolve().parent.parent


def harness_ms(argv: Sequence[str], env: dict[str, str], runs: int) -> list[float]:
    return [
        proc.timed(argv, env=env, timeout_s=60, what="benchmark run").wall_ns / 1e6
        for _ in range(runs)
    ]


def hyperfine_ms(argv: Sequence[str], env: dict[str, str], runs: int, warmup: int) -> list[float]:
    hyperfine = paths.which("hyperfine")
    if hyperfine is None:
        raise LabreportError("hyperfine is not installed", "run scripts/setup")
    with tempfile.TemporaryDirectory() as scratch:
        export = Path(scratch, "out.json")
        proc.run(
            [
                str(hyperfine),
                "-N",
                "--warmup",
                str(warmup),
                "--runs",
                str(runs),
                "--export-json",
                str(export),
                shlex.join(argv),
            ],
            env=env,
            timeout_s=1800,
            what="hyperfine",
        )
        result = json.loads(export.read_text())["results"][0]
    return [t * 1000 for t in result["times"]]


def lab_commands(undo: contextlib.ExitStack) -> dict[str, list[str]]:
    """The lab's native, ctr-runc and docker-cli commands, built and prepared as measure does."""
    lab = config.load(ROOT / "lab.toml")
    run_id = uuid.uuid4().hex[:10]
    ctx = RunContext(
        config=lab,
        run_id=run_id,
        timeout_s=60,
        endpoints=Endpoints.from_environment(),
        labels={engine.LABEL_RUN: run_id},
    )
    undo.callback(ctx.close)
    workdir = Path(undo.enter_context(tempfile.TemporaryDirectory(dir=paths.made_state_dir())))
    real_build(lab, ctx, frozenset({"native", "image", "image-archive"}), workdir, undo)
    native, runc, docker_cli = NativeRuntime(), CtrRuncRuntime(), DockerCliRuntime()
    for runtime in (native, runc, docker_cli):
        undo.callback(runtime.cleanup)
        runtime.prepare(ctx)
    env = lab.once.env  # what the container gets; the spawn itself gets the benchmark's env
    # ctr run --rm deletes the container before it returns, so one id serves every run.
    return {
        "native": native.run_argv(env),
        "ctr-runc": runc.run_argv(env, f"labreport-{run_id}-runc-bench", cli=True),
        "docker-cli": docker_cli.run_argv(env, cli=True),
    }


def compare(name: str, argv: list[str], env: dict[str, str], runs: int, blocks: int) -> str:
    """One command: the verdict (ok, OFF, undecided) on the median of the block ratios."""
    ratios: list[float] = []
    runs_each = 0
    for block in range(blocks):  # interleaved blocks, order alternating: drift hits both alike
        ours: list[float] = []
        theirs: list[float] = []

        def harness_block(ours: list[float] = ours) -> None:
            harness_ms(argv, env, 2)  # warm-up, as hyperfine's --warmup 2
            ours.extend(harness_ms(argv, env, runs))

        def hyperfine_block(theirs: list[float] = theirs) -> None:
            theirs.extend(hyperfine_ms(argv, env, runs, warmup=2))

        sides = [harness_block, hyperfine_block]
        for side in sides if block % 2 == 0 else reversed(sides):
            side()
        ratios.append(statistics.median(ours) / statistics.median(theirs))
        runs_each += len(ours)
    summary = stats.summarize(ratios)
    low, high = summary.ci_low, summary.ci_high
    if low >= 1 - TOLERANCE and high <= 1 + TOLERANCE:
        verdict = "ok"
    elif high < 1 - TOLERANCE or low > 1 + TOLERANCE:
        verdict = f"OFF by more than {TOLERANCE:.0%}"
    else:
        verdict = "undecided: the machine's noise is wider than the tolerance"
    print(
        f"{name:<11} ratio {summary.median:5.3f}  interval {low:5.3f} to {high:5.3f} "
        f"({summary.interval.coverage_text()})  block ratios "
        f"{' '.join(f'{r:.3f}' for r in ratios)}  ({runs_each} runs each side)  {verdict}"
    )
    print(f"            command: {shlex.join(argv)}")
    return verdict


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=10, help="runs per block and side")
    parser.add_argument("--blocks", type=int, default=12)
    parser.add_argument("command", nargs=argparse.REMAINDER, help="after --: one command")
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    env = {key: os.environ[key] for key in ("PATH", "HOME") if key in os.environ}
    env["MODE"] = "once"
    verdicts = []
    try:
        with contextlib.ExitStack() as undo:
            commands = {"command": command} if command else lab_commands(undo)
            for name, argv in commands.items():
                verdicts.append(compare(name, argv, env, args.runs, args.blocks))
    except LabreportError as error:
        print(f"error: {error.message}\nhint: {error.hint}", file=sys.stderr)
        return 2
    ok = verdicts.count("ok")
    off = sum(v.startswith("OFF") for v in verdicts)
    print(
        f"{ok} of {len(verdicts)} within 1.00 ± {TOLERANCE:.2f}, {off} off, "
        f"{len(verdicts) - ok - off} undecided"
    )
    return 1 if off else 0


if __name__ == "__main__":
    sys.exit(main())
