"""What the benchmarks share: `labreport measure` run as a user runs it, its command shown."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def labreport_measure(*args: str) -> None:
    """`labreport measure ARGS` in the repository; fails (CalledProcessError) if it does."""
    argv = [sys.executable, "-m", "labreport.cli", "measure", *args]
    print("$", " ".join(argv[2:]), flush=True)
    subprocess.run(argv, cwd=ROOT, check=True, timeout=3600)
