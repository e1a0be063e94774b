"""A WASI guest for the WAGI tests: what it does depends on the first byte of the request body.

no body: a good CGI response ("ok"); `t`: traps; `s`: computes forever; `w`: waits in a host call
(poll_oneoff, 60 s); `b`: writes output that is not CGI; `x`: exits 3.
"""

from __future__ import annotations

from pathlib import Path

import wasmtime

GOOD_BODY = "ok\n"

WAT = """(module
  (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_read" (func $r (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "poll_oneoff" (func $p (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory (export "memory") 1)
  (data (i32.const 100) "Content-Type: text/plain\\n\\nok\\n")
  (data (i32.const 200) "this is not CGI")
  (func $out (param $ptr i32) (param $len i32)
    (i32.store (i32.const 0) (local.get $ptr))
    (i32.store (i32.const 4) (local.get $len))
    (drop (call $w (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8))))
  (func (export "_start") (local $c i32)
    (i32.store (i32.const 16) (i32.const 300))
    (i32.store (i32.const 20) (i32.const 1))
    (drop (call $r (i32.const 0) (i32.const 16) (i32.const 1) (i32.const 24)))
    (local.set $c (i32.mul (i32.load (i32.const 24)) (i32.load8_u (i32.const 300))))
    (if (i32.eq (local.get $c) (i32.const 116)) (then unreachable))
    (if (i32.eq (local.get $c) (i32.const 115)) (then (loop $l (br $l))))
    (if (i32.eq (local.get $c) (i32.const 119)) (then
      ;; one clock subscription (48 bytes at 400): relative timeout of 60 s
      (i64.store (i32.const 400) (i64.const 1))
      (i32.store8 (i32.const 408) (i32.const 0))
      (i32.store (i32.const 416) (i32.const 1))
      (i64.store (i32.const 424) (i64.const 60000000000))
      (i64.store (i32.const 432) (i64.const 0))
      (i32.store16 (i32.const 440) (i32.const 0))
      (drop (call $p (i32.const 400) (i32.const 500) (i32.const 1) (i32.const 600)))))
    (if (i32.eq (local.get $c) (i32.const 98)) (then
      (call $out (i32.const 200) (i32.const 15)) (return)))
    (if (i32.eq (local.get $c) (i32.const 120)) (then (call $exit (i32.const 3))))
    (call $out (i32.const 100) (i32.const 29))))
"""


def write_guest(folder: Path) -> Path:
    path = folder / "wagi-guest.wasm"
    path.write_bytes(wasmtime.wat2wasm(WAT))
    return path


def precompiled(module: Path) -> Path:
    """The module compiled by embedded wasmtime with the engine settings the CGI server uses."""
    config = wasmtime.Config()
    config.epoch_interruption = True
    engine = wasmtime.Engine(config)
    out = module.with_suffix(".cwasm")
    out.write_bytes(bytes(wasmtime.Module(engine, module.read_bytes()).serialize()))
    return out


def printing_module(text: str, pages: int = 1, before: str = "") -> bytes:
    """A module whose _start runs `before` (WAT instructions, with a local $at) and then writes
    text (ASCII) to stdout; its memory has `pages` pages."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return wasmtime.wat2wasm(f"""(module
  (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") {pages})
  (data (i32.const 16) "{escaped}")
  (func (export "_start") (local $at i32)
    {before}
    (i32.store (i32.const 0) (i32.const 16))
    (i32.store (i32.const 4) (i32.const {len(text)}))
    (drop (call $w (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))""")


# The no-op WAGI guest: it prints a fixed CGI response and returns, nothing else; its bytes are
# the shim's NOOP_CGI (shim/src/wagi.rs), which the shim's no-guest floor answers without a guest.
NOOP_OUTPUT = "Content-Type: text/plain\n\nok\n"


def write_noop_guest(folder: Path) -> Path:
    path = folder / "noop.wasm"
    path.write_bytes(printing_module(NOOP_OUTPUT))
    return path


# A guest that writes one byte in each 4 KiB page of 8 MiB of its memory, then answers like
# the no-op guest: what a pool slot keeps resident after it, and hands back when idle.
DIRTY_MIB = 8
DIRTY_PAGES = f"""(local.set $at (i32.const 65536))
    (loop $pages
      (i32.store8 (local.get $at) (i32.const 1))
      (local.set $at (i32.add (local.get $at) (i32.const 4096)))
      (br_if $pages (i32.lt_u (local.get $at) (i32.const {65536 + DIRTY_MIB * 1048576}))))"""


def write_dirty_guest(folder: Path) -> Path:
    path = folder / "dirty.wasm"
    path.write_bytes(printing_module(NOOP_OUTPUT, pages=DIRTY_MIB * 16 + 1, before=DIRTY_PAGES))
    return path
