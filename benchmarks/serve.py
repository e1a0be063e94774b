"""WAGI serving in the caching shim against its floors, measured side by side in one run.

    .venv/bin/python benchmarks/serve.py [--requests 400] [--concurrency 8] [--keep FILE]

It runs `labreport measure` once (one CLI round each, then serving) with ctr-wasmtime-aot (WAGI
in the caching shim, a container per service, an instance per request), wasmtime-embedded (the
same instance per request in embedded wasmtime, no container), native (the program's own server,
and the binary as CGI: a process per request) and ctr-runc (the program's own server in a runc
container), on a copy of the lab whose serving load is one level at --concurrency. Every
response is checked, as in any measurement. It prints, at that concurrency:

- WAGI in the caching shim against the embedded-wasmtime floor and against native CGI: the
  ratio of median latencies and of throughputs;
- the idle memory of one WASM service (the caching shim's task cgroup) against one runc service
  (the same method).

Goal: the shim's WAGI median latency <= 2x the embedded floor's. Exit code 1 when it is missed,
or when a service did not answer every request.
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
import tempfile
from pathlib import Path

from measure_cli import labreport_measure

from labreport.analysis.serving import ServingView, serving_view
from labreport.record.files import load_measurement

ROOT = Path(__file__).resolve().parent.parent
GOAL = 2.0
RUNTIMES = "ctr-wasmtime-aot,wasmtime-embedded,native,ctr-runc"


def lab_copy(folder: Path, requests: int, concurrency: int) -> Path:
    """The default lab with one serving level; app/ copied beside it (paths stay inside)."""
    shutil.copytree(ROOT / "app", folder / "app")
    text = (ROOT / "lab.toml").read_text()
    text = re.sub(r"(?m)^load_requests = \d+$", f"load_requests = {requests}", text)
    text = text.replace("[server]\n", f"[server]\nconcurrency = [{concurrency}]\n", 1)
    path = folder / "lab.toml"
    path.write_text(text)
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--keep", type=Path, help="also keep the measurement file here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        config = lab_copy(Path(scratch), args.requests, args.concurrency)
        output = args.keep or Path(scratch, "serve.json")
        labreport_measure(
            "--config", str(config), "--runtime", RUNTIMES, "--runs", "1", "--warmup", "0",
            "-o", str(output),
        )  # fmt: skip
        result = load_measurement(output)
    views = {view.label: view for view in map(serving_view, result.serving)}
    c = args.concurrency
    failed = [label for label, view in views.items() if not view.ok]
    print(f"\nserving at concurrency {c}, {args.requests} checked requests each:")
    for label, view in views.items():
        level = view.level(c)
        if level is None or level.p50_ms is None:
            print(f"  {label:28} not measured: {view.record.failure}")
            continue
        print(
            f"  {label:28} {view.record.model:6} p50 {level.p50_ms:8.2f} ms  "
            f"p99 {level.p99_ms or 0:8.2f} ms  {level.per_second:8.0f} req/s  "
            f"ok {level.ok}/{level.requests}"
        )
    shim = views.get("ctr-wasmtime-aot")
    code = 1 if failed else 0

    def ratio(a: ServingView | None, b: ServingView | None, what: str) -> float | None:
        la = a.level(c) if a else None
        lb = b.level(c) if b else None
        x, y = (getattr(la, what, None), getattr(lb, what, None))
        return x / y if x and y else None

    for floor in ("wasmtime-embedded", "native (CGI)"):
        p50 = ratio(shim, views.get(floor), "p50_ms")
        rate = ratio(shim, views.get(floor), "per_second")
        if p50 is None or rate is None:
            print(f"WAGI in the caching shim / {floor}: not measured")
            code = 1
            continue
        goal = ""
        if floor == "wasmtime-embedded":
            met = p50 <= GOAL
            goal = f"  goal p50 <= {GOAL:g}x: {'met' if met else 'MISSED'}"
            code |= 0 if met else 1
        print(f"WAGI in the caching shim / {floor}: p50 {p50:.2f}x, throughput {rate:.2f}x{goal}")
    idle = {
        m.runtime: m.idle_median_bytes()
        for m in result.memory
        if m.mode == "server" and not m.failure
    }
    wasm, runc = idle.get("ctr-wasmtime-aot"), idle.get("ctr-runc")
    if wasm and runc:
        print(
            f"idle service memory (task cgroup): WASM {wasm / 2**20:.2f} MiB, runc "
            f"{runc / 2**20:.2f} MiB, ratio {wasm / runc:.2f}x"
        )
    else:
        print("idle service memory: not measured")
    if failed:
        print("services that did not answer every request: " + ", ".join(failed))
    return code


if __name__ == "__main__":
    sys.exit(main())
