//! `containerd-shim-wasmtime-aot-v1`: runtime `io.containerd.wasmtime-aot.v1`, compiles a
//! module at its first start and maps the stored code at later starts (see `cache`).
fn main() {
    labreport_wasmtime_shim::main(true);
}
