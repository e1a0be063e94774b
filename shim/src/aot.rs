//! `containerd-shim-wasmtime-aot-v1`: runtime `io.containerd.wasmtime-aot.v1`, compiles an
//! image's module once and starts later runs from the cached code.
use containerd_shim_wasm::shim::Cli;
use labreport_wasmtime_shim::WasmtimeShim;

fn main() {
    WasmtimeShim::<true>::run(None);
}
