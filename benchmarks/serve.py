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
`--labreport-run` mode (the same server code as in a container), four ways at once: the pooling
allocator keeping memory resident (as shipped), the pool handing memory back to the kernel
(`no-keep`), instances allocated on demand (`on-demand`), and the floor that answers the same
bytes without a guest (`no-guest`: HTTP, the body, the guest slot and the CGI parse, no
instance). Rounds of --requests at concurrency 1 take turns between them, every answer checked;
then hey sends as many to each. Printed: each one's p50, p99 and rate, and the shipped way's
p50 over the floor's. Goal: within 100 us (over all requests, and as the median of the rounds).

    .venv/bin/python benchmarks/serve.py --ways [--concurrency 8] [--requests 400] [--rounds 10]

The same three guest ways with lab 12's module (`labreport build` makes it), at --concurrency,
every answer checked by the lab's rules: what each setting of the pool is worth to a Go guest.
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
from dataclasses import dataclass, field
from pathlib import Path

from measure_cli import lab, lab_check, labreport_measure

from labreport.analysis.serving import ServingView, serving_view
from labreport.host import paths
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
SHIPPED, FLOOR = "pooled (shipped)", "floor: no guest"
# The ways the caching shim can serve (LABREPORT_SHIM_BENCH_VARIANT, read in --labreport-run only).
WAYS = {
    SHIPPED: "",
    "pooled, memory not kept": "no-keep",
    "on demand": "on-demand",
    FLOOR: "no-guest",
}


def way_server(
    shim: Path, state: Path, guest: Path, variant: str, env: dict[str, str]
) -> tuple[str, subprocess.Popen[bytes]]:
    """The caching shim serving guest by WAGI in its --labreport-run mode, one way (8 guest
    slots unless env says otherwise)."""
    port = free_port()
    env = {
        **os.environ, "LABREPORT_WAGI_CONCURRENCY": "8", **env,
        WAGI_LISTEN_ENV: f"127.0.0.1:{port}", "LABREPORT_SHIM_BENCH_VARIANT": variant,
    }  # fmt: skip
    argv = [str(shim), "--labreport-run", str(state), str(guest)]
    process = subprocess.Popen(argv, env=env, stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.monotonic() + 60
    while True:
        if process.poll() is not None:
            raise SystemExit(
                f"{variant or 'shipped'}: the shim exited: {process.communicate()[1]!r}"
            )
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return f"http://127.0.0.1:{port}/", process
        except OSError:
            if time.monotonic() > deadline:
                raise SystemExit(f"{variant or 'shipped'}: nothing listened on {port}") from None
            time.sleep(0.05)


@dataclass
class Way:
    """One way's figures: per round its p50 (us) and its rate (req/s); every latency (ns)."""

    p50_us: list[float] = field(default_factory=list)
    rates: list[float] = field(default_factory=list)
    latencies: list[int] = field(default_factory=list)
    hey_p50_us: float | None = None
    said: str = ""

    def p50(self) -> float:
        return statistics.median(self.latencies) / 1e3

    def p99(self) -> float:
        ordered = sorted(self.latencies)
        return ordered[int(len(ordered) * 0.99) - 1] / 1e3


def compare_ways(
    guest: Path, ways: list[str], load: tuple[int, int, int], check: Callable[[str], str],
    env: dict[str, str],
) -> dict[str, Way]:  # fmt: skip
    """Servers of each way at once; rounds of (concurrency, requests) in rotating order, every
    answer checked; then hey at the same load."""
    found = WASMTIME_AOT_SHIM.find()
    if found is None:
        raise SystemExit("the caching shim is not installed: labreport setup --shims")
    concurrency, requests, rounds = load
    results = {way: Way() for way in ways}
    servers: dict[str, tuple[str, subprocess.Popen[bytes]]] = {}
    with tempfile.TemporaryDirectory() as scratch:
        try:
            for way in ways:
                servers[way] = way_server(found, Path(scratch, "state"), guest, WAYS[way], env)
            for url, _ in servers.values():  # warm: the first requests fill the pool's slots
                Client(url, check).level(concurrency, 100, 60)
            for round_ in range(rounds):
                for way in ways[round_ % len(ways) :] + ways[: round_ % len(ways)]:
                    level = Client(servers[way][0], check).level(concurrency, requests, 120)
                    if level.ok != requests:
                        raise SystemExit(f"{way}: {level.ok} of {requests} passed: {level.errors}")
                    results[way].latencies += level.latencies_ns
                    results[way].p50_us.append(statistics.median(level.latencies_ns) / 1e3)
                    results[way].rates.append(requests / (level.wall_ns / 1e9))
            tool = hey.find_tool()
            for way, (url, _) in servers.items():
                if isinstance(tool, str):
                    break
                told = tool.level(url, concurrency, requests, 120)
                if told.failure or told.statuses != {"200": told.requested}:
                    raise SystemExit(f"hey against {way}: {told.failure or told.statuses}")
                results[way].hey_p50_us = statistics.median(told.latencies_ns) / 1e3
        finally:
            for way, (_, process) in servers.items():
                process.terminate()
                text = process.communicate(timeout=30)[1].decode(errors="replace")
                results[way].said = text.splitlines()[0] if text else "said nothing"
    return results


def show_ways(results: dict[str, Way], title: str) -> None:
    for way, result in results.items():
        print(f"{way}: {result.said}")
    print(f"\n{title}")
    base = results[SHIPPED]
    for way, result in results.items():
        line = f"  {way:24} p50 {result.p50():8.1f} us  p99 {result.p99():8.1f} us"
        line += f"  {statistics.median(result.rates):6.0f} req/s"
        if result.hey_p50_us is not None:
            line += f"  hey p50 {result.hey_p50_us:7.0f} us"
        if way != SHIPPED:
            ratio = statistics.median(a / b for a, b in zip(base.rates, result.rates, strict=True))
            line += f"  shipped serves {ratio:.2f}x its req/s"
        print(line)


def noop(requests: int, rounds: int) -> int:
    """The shim's own cost of a request: the no-op guest against the no-guest floor, c=1."""
    body = NOOP_OUTPUT.split("\n\n", 1)[1]

    def check(text: str) -> str:
        return "" if text == body else f"not the no-op body: {text[:40]!r}"

    with tempfile.TemporaryDirectory() as scratch:
        guest = write_noop_guest(Path(scratch))
        results = compare_ways(guest, list(WAYS), (1, requests, rounds), check, {})
    show_ways(results, f"no-op WAGI guest, concurrency 1, {rounds} rounds of {requests} checked:")
    shipped, floor = results[SHIPPED], results[FLOOR]
    cost = shipped.p50() - floor.p50()
    per_round = statistics.median(a - b for a, b in zip(shipped.p50_us, floor.p50_us, strict=True))
    met = max(cost, per_round) <= NOOP_GOAL_US
    print(
        f"the shim's own cost of a no-op request: p50 {cost:.1f} us over the floor's (all "
        f"requests), {per_round:.1f} us (median of the rounds' differences); goal <= "
        f"{NOOP_GOAL_US:g} us: {'met' if met else 'MISSED'}"
    )
    return 0 if met else 1


def lab_ways(concurrency: int, requests: int, rounds: int) -> int:
    """Lab 12's module served the shim's ways at once, every answer checked by the lab's rules."""
    module = paths.state_dir() / "artifacts" / "lab12" / "moscow-time.wasm"
    if not module.is_file():
        raise SystemExit(f"no module at {module}: run `labreport build` first")
    ways = [way for way in WAYS if way != FLOOR]
    wagi = lab().wagi
    results = compare_ways(
        module, ways, (concurrency, requests, rounds), lab_check, wagi.env if wagi else {}
    )
    show_ways(results, f"lab 12 by WAGI, concurrency {concurrency}, {rounds} rounds of {requests}:")
    return 0


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
    parser.add_argument("--ways", action="store_true", help="lab 12 served the shim's ways")
    parser.add_argument("--rounds", type=int, default=10, help="rounds of --noop and --ways")
    args = parser.parse_args()
    if args.noop:
        return noop(args.requests, args.rounds)
    if args.ways:
        return lab_ways(args.concurrency, args.requests, args.rounds)
    return against_floors(args)


def against_floors(args: argparse.Namespace) -> int:
    """The caching shim's WAGI in a container, measured by `labreport measure` beside its
    floors."""
    with tempfile.TemporaryDirectory() as scratch:
        lab = lab_copy(Path(scratch), args.requests, args.concurrency)
        output = args.keep or Path(scratch, "serve.json")
        labreport_measure(
            "--config", str(lab), "--runtime", RUNTIMES, "--runs", "1", "--warmup", "0",
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
        if floor == "wasmtime-embedded":
            met = p50 <= GOAL
            goal = f"  goal p50 <= {GOAL:g}x: {'met' if met else 'MISSED'}"
        else:
            met = rate >= 1.0
            goal = f"  goal throughput >= 1x: {'met' if met else 'MISSED'}"
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
