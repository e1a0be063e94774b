"""Where the lab's program runs: one module per way of running it, behind one small protocol.

- base: the Runtime protocol (seven members), its Spec, Prepared, Scope, Served, RawRun,
  RunContext
- memory: a CLI run's cgroup peak and a service's memory, one procedure each for every runtime
- serving: the environment that makes a service listen, the one procedure for a started
  service, ContainerServing (the order a ctr or Docker runtime serves in), the WAGI and server
  checks; load and hey: labreport's checked client and the load tool
- shim: the wasmtime shim's side of a start (phase records, its cache), given to a runtime
- native, docker, docker_wasm, ctr, wasmtime_embedded: the runtimes; registry: names to them
- fake: deterministic samples for the fast tests
"""
