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

Goals: the shim's WAGI median latency <= 2x the embedded floor's; its throughput >= native
CGI's. Exit code 1 when one is missed, or when a service did not answer every request.

    .venv/bin/python benchmarks/serve.py --noop [--requests 400] [--rounds 10]

The shim's own cost of a request, without the lab's program: the caching shim serves a no-op
WAGI guest (it prints a fixed CGI response, `tests/integration/wagi_guest.py`), in its
`--labreport-run` mode (the same server code as in a container), three ways at once: with the
pooling allocator (as shipped), allocating on demand, and the floor that answers the same bytes
without a guest (the benchmark variant `no-guest`: HTTP, the body, the guest slot and the CGI
parse, no instance). Rounds of --requests at concurrency 1 take turns between them, every answer
checked; then hey sends as many to each. Printed: each one's p50 and p99, and per round the p50
over the floor's. Goal: the pooled guest's p50 within 100 us of the floor's (median of rounds).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from measure_cli import labreport_measure

from labreport.analysis.serving import ServingView, serving_view
from labreport.host.shims import WASMTIME_AOT_SHIM
from labreport.record.files import load_measurement
from labreport.runtimes import hey
from labreport.runtimes.load import Client
from labreport.runtimes.serving import WAGI_LISTEN_ENV, free_port

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.integration.wagi_guest import NOOP_OUTPUT, write_noop_guest

ROOT = Path(__file__).resolve().parent.parent
GOAL = 2.0
NOOP_GOAL_US = 100.0
NOOP_WAYS = {"pooling (shipped)": "", "on demand": "on-demand", "floor: no guest": "no-guest"}


def noop_server(
    shim: Path, state: Path, guest: Path, variant: str
) -> tuple[str, subprocess.Popen[bytes]]:
    port = free_port()
    env = {
        **os.environ, WAGI_LISTEN_ENV: f"127.0.0.1:{port}", "LABREPORT_WAGI_CONCURRENCY": "8",
        "LABREPORT_SHIM_BENCH_VARIANT": variant,
    }  # fmt: skip
    argv = [str(shim), "--labreport-run", str(state), str(guest)]
    process = subprocess.Popen(argv, env=env, stderr=subprocess.PIPE, start_new_session=True)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 60
    while True:
        if process.poll() is not None:
            raise SystemExit(
                f"{variant or 'shipped'}: the shim exited: {process.communicate()[1]!r}"
            )
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return url, process
        except OSError:
            if time.monotonic() > deadline:
                raise SystemExit(f"{variant or 'shipped'}: nothing listened on {port}") from None
            time.sleep(0.05)


def noop_rounds(
    urls: dict[str, str], check: Callable[[str], str], requests: int, rounds: int
) -> tuple[dict[str, list[float]], dict[str, list[int]]]:
    """Rounds at concurrency 1, the ways' order rotating: each round's p50 (us) per way, and
    every latency (ns)."""
    p50s: dict[str, list[float]] = {way: [] for way in urls}
    latencies: dict[str, list[int]] = {way: [] for way in urls}
    for round_ in range(rounds):
        ways = list(urls)
        ways = ways[round_ % len(ways) :] + ways[: round_ % len(ways)]
        for way in ways:
            level = Client(urls[way], check).level(1, requests, 120)
            if level.ok != requests:
                raise SystemExit(f"{way}: {level.ok} of {requests} answers passed: {level.errors}")
            latencies[way] += level.latencies_ns
            p50s[way].append(statistics.median(level.latencies_ns) / 1e3)
    return p50s, latencies


def noop_hey(urls: dict[str, str], requests: int) -> dict[str, float]:
    """hey's p50 (us, at its 0.1 ms resolution) per way, at concurrency 1; none without hey."""
    tool = hey.find_tool()
    if isinstance(tool, str):
        return {}
    found = {}
    for way, url in urls.items():
        level = tool.level(url, 1, requests, 120)
        if level.failure or level.statuses != {"200": requests}:
            raise SystemExit(f"hey against {way}: {level.failure or level.statuses}")
        found[way] = statistics.median(level.latencies_ns) / 1e3
    return found


def noop(requests: int, rounds: int) -> int:
    found = WASMTIME_AOT_SHIM.find()
    if found is None:
        raise SystemExit("the caching shim is not installed: labreport setup --shims")
    body = NOOP_OUTPUT.split("\n\n", 1)[1]

    def check(text: str) -> str:
        return "" if text == body else f"not the no-op body: {text[:40]!r}"

    with tempfile.TemporaryDirectory() as scratch:
        guest = write_noop_guest(Path(scratch))
        servers = {}
        try:
            for way, variant in NOOP_WAYS.items():
                servers[way] = noop_server(found, Path(scratch, "state"), guest, variant)
            for url, _ in servers.values():  # warm: the first requests fill the pool's slots
                Client(url, check).level(1, 200, 60)
            p50s, latencies = noop_rounds(
                {w: u for w, (u, _) in servers.items()}, check, requests, rounds
            )
            tool_p50 = noop_hey({w: u for w, (u, _) in servers.items()}, requests * 2)
        finally:
            said = {}
            for way, (_, process) in servers.items():
                process.terminate()
                said[way] = process.communicate(timeout=30)[1].decode(errors="replace")
    floor = "floor: no guest"
    for way, text in said.items():
        print(f"{way}: {text.splitlines()[0] if text else 'said nothing'}")
    print(f"\nno-op WAGI guest, concurrency 1, {rounds} rounds of {requests} checked requests:")
    over = {way: [a - b for a, b in zip(p50s[way], p50s[floor], strict=True)] for way in servers}
    for way in servers:
        ordered = sorted(latencies[way])
        p50, p99 = statistics.median(ordered) / 1e3, ordered[int(len(ordered) * 0.99) - 1] / 1e3
        line = f"  {way:20} p50 {p50:7.1f} us  p99 {p99:7.1f} us"
        if way in tool_p50:
            line += f"  hey p50 {tool_p50[way]:7.1f} us"
        if way != floor:
            rows = over[way]
            line += f"  over the floor: {statistics.median(rows):6.1f} us"
            line += f" (rounds {min(rows):.1f} to {max(rows):.1f})"
        print(line)
    cost = statistics.median(over["pooling (shipped)"])
    met = cost <= NOOP_GOAL_US
    verdict = "met" if met else "MISSED"
    print(f"the shim's own cost of a no-op request: {cost:.1f} us over the floor")
    print(f"goal <= {NOOP_GOAL_US:g} us: {verdict}")
    return 0 if met else 1


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
    parser.add_argument("--noop", action="store_true", help="the no-op guest against its floor")
    parser.add_argument("--rounds", type=int, default=10, help="rounds of the --noop part")
    args = parser.parse_args()
    if args.noop:
        return noop(args.requests, args.rounds)
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
