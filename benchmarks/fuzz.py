"""The fuzzer at full size: mutated measurement files and valid template contexts through the
models and `render` (tests/fuzz_targets.py holds both, and what must hold for each).

    .venv/bin/python benchmarks/fuzz.py [--examples 10000] [--charts 200]

Unlike the CI-sized tests it does not stop at the first failure: it runs every example, counts
the ones that raised anything but the allowed error (a traceback a user would see, or a
template failing on a valid file), prints the first few, and exits 1 if there was any.
"""

from __future__ import annotations

import argparse
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.fuzz_targets import (
    check_mutated,
    check_valid,
    mutated_files,
    valid_measurements,
)


def run(
    name: str, strategy: st.SearchStrategy[Any], check: Callable[[Any], None], count: int
) -> int:
    failures: list[str] = []
    seen = 0

    @settings(
        max_examples=count,
        deadline=None,
        database=None,
        phases=[Phase.generate],  # every example new; failures are counted, not shrunk
        suppress_health_check=list(HealthCheck),
    )
    @given(strategy)
    def one(example: Any) -> None:
        nonlocal seen
        seen += 1
        try:
            check(example)
        except Exception:
            failures.append(traceback.format_exc(limit=-3))

    started = time.monotonic()
    one()
    print(
        f"{name}: {seen} examples, {len(failures)} tracebacks ({time.monotonic() - started:.0f} s)",
        flush=True,
    )
    kinds: dict[str, list[str]] = {}
    for text in failures:  # one of each kind, by the exception's last line
        kinds.setdefault(text.strip().splitlines()[-1], []).append(text)
    for last, texts in kinds.items():
        print(f"--- {len(texts)} x {last}\n{texts[0]}")
    return len(failures)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--examples", type=int, default=10_000, help="in all, without charts")
    parser.add_argument("--charts", type=int, default=200, help="valid files rendered with charts")
    args = parser.parse_args()
    mutated = args.examples * 7 // 10
    tracebacks = run("mutated files", mutated_files(), check_mutated, mutated)
    tracebacks += run("valid files", valid_measurements(), check_valid, args.examples - mutated)
    tracebacks += run(
        "valid files with charts",
        valid_measurements(),
        lambda data: check_valid(data, with_charts=True),
        args.charts,
    )
    print(f"total: {args.examples + args.charts} examples, {tracebacks} tracebacks")
    return 1 if tracebacks else 0


if __name__ == "__main__":
    sys.exit(main())
