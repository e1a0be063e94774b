"""The ground floor every step drives: primitives and drivers, no features; it imports nothing
of labreport but errors.

- proc: the one way to run a process (timeout, process group, timed spawn)
- fsutil: atomic writes, sha256; paths: the state directory and the programs labreport finds
- endpoints: which engine and containerd a command talks to, as values passed explicitly
- engine: docker-py with timeouts, labels, targets; containerd: ctr in labreport's namespace,
  containerd's events; cgroup: the memory files
- engine_layout + private_engine: labreport's own Docker 26; private_containerd: its own containerd
- shims + shim_cache: the wasmtime shims, their compiled-module cache and phase records
"""
