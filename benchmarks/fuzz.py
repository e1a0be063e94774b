"""The fuzzer at full size: mutated measurement files and valid template contexts through the
models and `render`, fuzzed templates through the sandbox, and lab folders with links and files
planted in them through `render --lab` (tests/fuzz_targets.py holds them all, and what must hold
for each: one error or a report; no process started, no file outside what was given opened).

    .venv/bin/python benchmarks/fuzz.py [--examples 10000] [--charts 200] [--templates 2000]
        [--labs 500]

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
    check_lab_folder,
    check_mutated,
    check_template,
    check_valid,
    fuzzed_lab_folders,
    fuzzed_templates,
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
    parser.add_argument("--templates", type=int, default=2000, help="fuzzed templates")
    parser.add_argument("--labs", type=int, default=500, help="lab folders with plants")
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
    tracebacks += run("fuzzed templates", fuzzed_templates(), check_template, args.templates)
    tracebacks += run("planted lab folders", fuzzed_lab_folders(), check_lab_folder, args.labs)
    total = args.examples + args.charts + args.templates + args.labs
    print(f"total: {total} examples, {tracebacks} tracebacks")
    return 1 if tracebacks else 0


if __name__ == "__main__":
    sys.exit(main())
