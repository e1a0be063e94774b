"""Where the lab's program runs: one module per way of running it, behind one small protocol.

- base: the Runtime protocol, its Requirements (typed), RawRun, RunContext
- memory: one memory procedure for all; serving: waiting for a server, WAGI and server checks
- shim: the wasmtime shim's side of a start (phase records, its cache), given to a runtime
- native, docker, docker_wasm, ctr, wasmtime_embedded: the runtimes; registry: names to them
- fake: deterministic samples for the fast tests
"""
