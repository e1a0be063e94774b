"""Runtime names to factories. Adding a runtime touches its own module and one line here."""

from __future__ import annotations

from collections.abc import Callable

from labreport.runtimes.base import Runtime
from labreport.runtimes.ctr import CtrRuncRuntime, ctr_wasmtime, ctr_wasmtime_aot
from labreport.runtimes.docker import DockerApiRuntime, DockerCliRuntime
from labreport.runtimes.docker_wasm import docker_wasm, docker_wasm_aot
from labreport.runtimes.native import NativeRuntime
from labreport.runtimes.wasmtime_embedded import (
    WasmtimeEmbeddedRuntime,
    WasmtimeEmbeddedTinygoRuntime,
)

Registry = dict[str, Callable[[], Runtime]]

REGISTRY: Registry = {
    "native": NativeRuntime,
    "docker-cli": DockerCliRuntime,
    "docker-api": DockerApiRuntime,
    "ctr-runc": CtrRuncRuntime,
    "ctr-wasmtime": ctr_wasmtime,
    "ctr-wasmtime-aot": ctr_wasmtime_aot,
    "wasmtime-embedded": WasmtimeEmbeddedRuntime,
    "wasmtime-embedded-tinygo": WasmtimeEmbeddedTinygoRuntime,
    "docker-wasm": docker_wasm,
    "docker-wasm-aot": docker_wasm_aot,
}
