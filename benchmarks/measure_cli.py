"""What the benchmarks share: `labreport measure` run as a user runs it, its command shown, and
the lab's rules applied to a run the benchmark starts itself."""

from __future__ import annotations

import functools
import subprocess
import sys
import time
from pathlib import Path

from labreport import config
from labreport.record.checks import check_output

ROOT = Path(__file__).resolve().parent.parent


def labreport_measure(*args: str) -> None:
    """`labreport measure ARGS` in the repository; fails (CalledProcessError) if it does."""
    argv = [sys.executable, "-m", "labreport.cli", "measure", *args]
    print("$", " ".join(argv[2:]), flush=True)
    subprocess.run(argv, cwd=ROOT, check=True, timeout=3600)


@functools.cache
def lab() -> config.LabConfig:
    """Lab 12's configuration (lab.toml)."""
    return config.load(ROOT / "lab.toml")


def lab_check(text: str) -> str:
    """Why text fails lab 12's rules, or "" when it passes: a load client's check."""
    verdict = check_output(text, lab().check, time.time())
    return "" if verdict.ok else verdict.reason


def check_run(done: subprocess.CompletedProcess[str], what: str) -> None:
    """Exits unless the run ended 0 with output that passes lab 12's rules (lab.toml), as every
    measured run must."""
    verdict = check_output(done.stdout, lab().check, time.time())
    if done.returncode != 0 or not verdict.ok:
        why = done.stderr.strip()[-300:] if done.returncode else verdict.reason
        raise SystemExit(f"{what}: the start failed: {why}")
