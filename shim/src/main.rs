//! `containerd-shim-wasmtime-v1`: runtime `io.containerd.wasmtime.v1`, compiles at every start.
use containerd_shim_wasm::shim::Cli;
use labreport_wasmtime_shim::WasmtimeShim;

fn main() {
    WasmtimeShim::<false>::run(None);
}
