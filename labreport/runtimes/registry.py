"""Runtime names to classes. Adding a runtime touches its own module and one line here."""

from __future__ import annotations

from collections.abc import Callable

from labreport.runtimes import Runtime
from labreport.runtimes.containerd import (
    CtrRuncRuntime,
    CtrWasmtimeAotRuntime,
    CtrWasmtimeRuntime,
)
from labreport.runtimes.docker import (
    DockerApiRuntime,
    DockerCliRuntime,
    DockerWasmAotRuntime,
    DockerWasmRuntime,
)
from labreport.runtimes.native import NativeRuntime
from labreport.runtimes.wasmtime_embedded import (
    WasmtimeEmbeddedRuntime,
    WasmtimeEmbeddedTinygoRuntime,
)

REGISTRY: dict[str, Callable[[], Runtime]] = {
    "native": NativeRuntime,
    "docker-cli": DockerCliRuntime,
    "docker-api": DockerApiRuntime,
    "ctr-runc": CtrRuncRuntime,
    "ctr-wasmtime": CtrWasmtimeRuntime,
    "ctr-wasmtime-aot": CtrWasmtimeAotRuntime,
    "wasmtime-embedded": WasmtimeEmbeddedRuntime,
    "wasmtime-embedded-tinygo": WasmtimeEmbeddedTinygoRuntime,
    "docker-wasm": DockerWasmRuntime,
    "docker-wasm-aot": DockerWasmAotRuntime,
}
