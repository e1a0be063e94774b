"""The floors beside the shims' WAGI serving: a small HTTP server that answers every request by
running the program afresh with the CGI convention (RFC 3875: the request in the environment and
on stdin, the response on stdout), either

- `--wasm CWASM`: the WASI module in embedded wasmtime (PyPI), from its precompiled cache, a
  fresh store and instance per request (what the caching shim does, without a container), or
- `--exec BINARY`: the native binary as a new process per request (fork/exec, classic CGI).

It runs as a process of its own (`python -m labreport.runtimes.cgi_server`), so that the load
client does not share its interpreter and its memory is a process's own. Bounds as the shims':
at most `--concurrency` programs at once, a per-request timeout (504), a body limit (413); a
program that traps or exits non-zero gives 500, output that is not CGI gives 502. SIGTERM stops
it.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

from labreport.record.checks import parse_cgi

TICK_S = 0.01


class RequestError(Exception):
    """A request that ended in an error answer: its status and message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


Program = Callable[[dict[str, str], bytes], bytes]  # CGI env, body -> stdout


def wasm_program(cwasm: Path, name: str, timeout_s: float, scratch: str) -> Program:
    """The module from its precompiled file; every call a fresh store and instance."""
    import wasmtime

    config = wasmtime.Config()
    config.epoch_interruption = True
    engine = wasmtime.Engine(config)
    module = wasmtime.Module.deserialize_file(engine, str(cwasm))
    linker = wasmtime.Linker(engine)
    linker.define_wasi()
    ticks = max(1, int(timeout_s / TICK_S))

    def tick() -> None:
        while True:
            threading.Event().wait(TICK_S)
            engine.increment_epoch()

    threading.Thread(target=tick, daemon=True).start()

    def run(env: dict[str, str], body: bytes) -> bytes:
        with tempfile.TemporaryDirectory(dir=scratch) as folder:
            stdin, stdout = Path(folder, "stdin"), Path(folder, "stdout")
            stdin.write_bytes(body)
            store = wasmtime.Store(engine)
            store.set_epoch_deadline(ticks)
            wasi = wasmtime.WasiConfig()
            wasi.argv = [name]
            wasi.env = list(env.items())
            wasi.stdin_file = str(stdin)
            wasi.stdout_file = str(stdout)
            wasi.inherit_stderr()
            store.set_wasi(wasi)
            try:
                instance = linker.instantiate(store, module)
                start = instance.exports(store)["_start"]
                assert isinstance(start, wasmtime.Func)
                start(store)
            except wasmtime.ExitTrap as trap:
                if trap.code != 0:
                    raise RequestError(500, f"the guest exited {trap.code}") from trap
            except wasmtime.Trap as trap:
                if trap.trap_code == wasmtime.TrapCode.INTERRUPT:
                    raise RequestError(504, f"the guest ran longer than {timeout_s:g} s") from trap
                raise RequestError(500, f"the guest trapped: {str(trap).splitlines()[0]}") from trap
            return stdout.read_bytes()

    return run


def exec_program(binary: Path, timeout_s: float, running: set[subprocess.Popen[bytes]]) -> Program:
    """The native binary, a new process per request (its environment is the CGI one only), in a
    process group of its own: past the deadline the whole group is killed, so a child it started
    cannot hold the output pipe, and with it the pool slot, after the 504 (seen: a CGI shell
    script's `sleep`). running holds the processes alive, for the server to kill when it stops.
    """

    def run(env: dict[str, str], body: bytes) -> bytes:
        child = subprocess.Popen(
            [str(binary)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
        )
        running.add(child)
        try:
            stdout, _ = child.communicate(body, timeout=timeout_s)
        except subprocess.TimeoutExpired as error:
            kill_group(child)
            child.communicate()
            raise RequestError(504, f"the program ran longer than {timeout_s:g} s") from error
        finally:
            running.discard(child)
        if child.returncode != 0:
            raise RequestError(500, f"the program exited {child.returncode}")
        return stdout

    return run


def kill_group(child: subprocess.Popen[bytes]) -> None:
    """SIGKILL to a CGI program's process group (its pid: it leads a session of its own)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(child.pid, signal.SIGKILL)


def cgi_env(handler: BaseHTTPRequestHandler, body: bytes) -> dict[str, str]:
    target = urlsplit(handler.path)
    address = handler.server.server_address
    host, port = (address[0], address[1]) if isinstance(address, tuple) else (address, 0)
    env = {
        "GATEWAY_INTERFACE": "CGI/1.1",
        "SERVER_SOFTWARE": "labreport-cgi",
        "SERVER_PROTOCOL": handler.request_version,
        "SERVER_NAME": str(host),
        "SERVER_PORT": str(port),
        "REMOTE_ADDR": handler.client_address[0],
        "REMOTE_PORT": str(handler.client_address[1]),
        "REQUEST_METHOD": handler.command,
        "REQUEST_URI": handler.path,
        "SCRIPT_NAME": "",
        "PATH_INFO": target.path,
        "QUERY_STRING": target.query,
    }
    if body:
        env["CONTENT_LENGTH"] = str(len(body))
    for name, value in handler.headers.items():
        key = name.upper().replace("-", "_")
        if key == "CONTENT_TYPE":
            env[key] = value
        elif key not in {"CONTENT_LENGTH", "PROXY", "CONNECTION"}:
            env[f"HTTP_{key}"] = value
    return env


def make_handler(
    program: Program, pool: ThreadPoolExecutor, timeout_s: float, max_body: int
) -> type:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as the shims
        # Headers and body go out in two writes: with Nagle on, the second waits for the
        # client's delayed ACK (40 ms a response, measured here before this line).
        disable_nagle_algorithm = True

        def log_message(self, format: str, *args: object) -> None:
            pass

        def answer(self) -> None:
            try:
                if "Transfer-Encoding" in self.headers:
                    raise RequestError(411, "send a Content-Length body (no chunked requests)")
                length = int(self.headers.get("Content-Length") or 0)
                if length > max_body:
                    self.close_connection = True
                    raise RequestError(413, f"request body of {length} bytes is over {max_body}")
                body = self.rfile.read(length) if length else b""
                # The pool bounds how many programs run at once. A guest waiting in a host call
                # cannot be interrupted from here: its request gets 504 at the deadline and the
                # guest keeps its pool slot until it returns.
                running = pool.submit(program, cgi_env(self, body), body)
                try:
                    output = running.result(timeout=timeout_s + 0.25)
                except FutureTimeout as error:
                    raise RequestError(
                        504, f"the program ran longer than {timeout_s:g} s"
                    ) from error
                try:
                    status, headers, text = parse_cgi(output.decode("utf-8", "replace"))
                except ValueError as error:
                    raise RequestError(502, f"not a CGI response: {error}") from error
                payload = text.encode()
            except RequestError as outcome:
                status, payload = outcome.status, f"labreport-cgi: {outcome}\n".encode()
                headers = {"content-type": "text/plain; charset=utf-8"}
            self.send_response(status)
            for name, value in headers.items():
                if name not in {"status", "content-length", "connection", "transfer-encoding"}:
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(payload)

        do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = answer  # noqa: N815

    return Handler


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m labreport.runtimes.cgi_server")
    parser.add_argument("--listen", required=True, help="HOST:PORT")
    kind = parser.add_mutually_exclusive_group(required=True)
    kind.add_argument("--wasm", type=Path, help="the module precompiled by embedded wasmtime")
    kind.add_argument("--exec", type=Path, help="a native CGI program")
    parser.add_argument("--name", default="module.wasm", help="the guest's argv[0]")
    parser.add_argument("--timeout-s", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--max-body", type=int, default=1 << 20)
    options = parser.parse_args(argv)
    host, _, port = options.listen.rpartition(":")
    running: set[subprocess.Popen[bytes]] = set()
    with tempfile.TemporaryDirectory(prefix="labreport-cgi-") as scratch:
        if options.wasm is not None:
            program = wasm_program(options.wasm, options.name, options.timeout_s, scratch)
        else:
            program = exec_program(options.exec, options.timeout_s, running)
        pool = ThreadPoolExecutor(max_workers=options.concurrency)
        handler = make_handler(program, pool, options.timeout_s, options.max_body)
        # The default listen backlog (5) drops connections of a 32-client load: SYN
        # retransmits of a second each.
        ThreadingHTTPServer.request_queue_size = 128
        server = ThreadingHTTPServer((host, int(port)), handler)
        server.daemon_threads = True
        signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
        where = f"{host}:{server.server_address[1]}"
        print(f"labreport-cgi: serving on {where}", file=sys.stderr, flush=True)
        try:
            server.serve_forever(poll_interval=0.1)
        finally:
            server.server_close()
            for child in list(running):
                kill_group(child)
            pool.shutdown(wait=False, cancel_futures=True)
    return 0


if __name__ == "__main__":
    code = main()
    sys.stderr.flush()
    # Not sys.exit: the interpreter would wait at exit for a pool thread whose guest still
    # waits in a host call (its request already had its 504).
    os._exit(code)
