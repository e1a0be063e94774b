"""How long does `labreport render` take on a file with many samples of one runtime?

Writes a made-up measurement (the synthetic fixture with its ctr-runc samples replaced by
--samples lognormal values; nothing in it was measured), renders it in memory, and prints the
time of each step. Statistics and charts must stay fast at any run count (issue: 100,000 samples
in well under a second for the statistics).

    .venv/bin/python benchmarks/render_large.py [--samples 100000]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from labreport.analysis import sources as measurement_files
from labreport.analysis import stats
from labreport.report import render

FIXTURE = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "synthetic.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--samples", type=int, default=100_000)
    args = parser.parse_args()
    data = json.loads(FIXTURE.read_text())
    template = next(s for s in data["samples"] if s["runtime"] == "ctr-runc")
    others = [s for s in data["samples"] if s["runtime"] != "ctr-runc"]
    values = np.random.default_rng(1).lognormal(np.log(110), 0.1, size=args.samples)
    data["samples"] = others + [
        dict(template, round=i, warmup=False, ok=True, failure="", wall_ns=int(v * 1e6))
        for i, v in enumerate(values)
    ]
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch, "large.json")
        path.write_text(json.dumps(data))
        started = time.perf_counter()
        summary = stats.summarize(values.tolist())
        statistics_s = time.perf_counter() - started
        render.render([FIXTURE])  # first use of matplotlib and Jinja, not counted
        started = time.perf_counter()
        sources = measurement_files.load_sources([path])
        load_s = time.perf_counter() - started
        started = time.perf_counter()
        report = render.render([path])
        render_s = time.perf_counter() - started
    print(f"samples of ctr-runc          {args.samples:>10,}")
    print(f"statistics (summarize) only  {statistics_s:10.3f} s  (median {summary.median:.2f} ms)")
    loaded = len(sources[0].measurement.samples)
    chart_chars = sum(len(c.svg) for c in report.charts)
    print(f"load and validate the file   {load_s:10.3f} s  ({loaded:,} samples)")
    print(f"whole render                 {render_s:10.3f} s  (load, statistics, charts, templates)")
    print(f"report {len(report.text):,} chars, charts {chart_chars:,} chars")


if __name__ == "__main__":
    main()
