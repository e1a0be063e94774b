//! `containerd-shim-wasmtime-v1`: runtime `io.containerd.wasmtime.v1`, compiles at every start.
fn main() {
    labreport_wasmtime_shim::main(false);
}
