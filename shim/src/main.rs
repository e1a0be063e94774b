//! The wasmtime shim that labreport measures: runtime `io.containerd.wasmtime.v1`.
//!
//! crates.io publishes the runwasi library (`containerd-shim-wasm`) but not the
//! wasmtime shim binary, so this crate provides the one piece the library leaves
//! open: a `Sandbox` that runs a WASI preview-1 module with wasmtime.
//!
//! `run_wasi` is driven by the library's own async executor, so only the async
//! wasmtime API may be used here: the synchronous preview-1 linker starts a
//! nested tokio runtime, panics, and leaves the task hung.

use anyhow::{anyhow, Context, Result};
use containerd_shim_wasm::sandbox::context::{RuntimeContext, Source};
use containerd_shim_wasm::sandbox::Sandbox;
use containerd_shim_wasm::shim::{Cli, Shim, Version};
use wasmtime::{Config, Engine, Linker, Module, Store};
use wasmtime_wasi::p1::{self, WasiP1Ctx};
use wasmtime_wasi::{FsPerms, I32Exit, WasiCtxBuilder};

struct WasmtimeShim;

#[derive(Default)]
struct WasmtimeSandbox;

impl Shim for WasmtimeShim {
    fn name() -> &'static str {
        "wasmtime"
    }

    fn version() -> Version {
        Version {
            version: env!("CARGO_PKG_VERSION"),
            revision: "labreport",
        }
    }

    type Sandbox = WasmtimeSandbox;
}

/// wasmtime 48's error type is not `std::error::Error`; keep its full chain as text.
fn wasm_err(error: wasmtime::Error) -> anyhow::Error {
    anyhow!("{error:?}")
}

fn split_env(entry: &str) -> (String, String) {
    match entry.split_once('=') {
        Some((key, value)) => (key.to_string(), value.to_string()),
        None => (entry.to_string(), String::new()),
    }
}

impl Sandbox for WasmtimeSandbox {
    async fn run_wasi(&self, ctx: &impl RuntimeContext) -> Result<i32> {
        let entrypoint = ctx.entrypoint();
        let module_bytes = entrypoint.source.as_bytes().context("reading the module")?;
        let precompiled = entrypoint.source.is_precompiled()?;
        let is_layer = matches!(entrypoint.source, Source::Oci(_));

        let engine = Engine::new(&Config::new()).map_err(wasm_err)?;
        let module = if precompiled {
            // SAFETY: precompiled layers are produced only by this shim's own engine
            // (same wasmtime version), through the library's compile hook.
            unsafe { Module::deserialize(&engine, &module_bytes) }.map_err(wasm_err)?
        } else {
            Module::new(&engine, &module_bytes).map_err(wasm_err)?
        };

        let envs: Vec<(String, String)> = ctx.envs().iter().map(|e| split_env(e)).collect();
        let mut builder = WasiCtxBuilder::new();
        builder.inherit_stdio().args(ctx.args()).envs(&envs);
        if !is_layer {
            builder
                .preopened_dir("/", "/", FsPerms::ReadOnly)
                .map_err(wasm_err)?;
        }
        let wasi: WasiP1Ctx = builder.build_p1();

        let mut linker: Linker<WasiP1Ctx> = Linker::new(&engine);
        p1::add_to_linker_async(&mut linker, |state| state).map_err(wasm_err)?;
        let mut store = Store::new(&engine, wasi);
        let instance = linker
            .instantiate_async(&mut store, &module)
            .await
            .map_err(wasm_err)?;
        let start = instance
            .get_typed_func::<(), ()>(&mut store, &entrypoint.func)
            .map_err(wasm_err)?;
        match start.call_async(&mut store, ()).await {
            Ok(()) => Ok(0),
            Err(error) => match error.downcast_ref::<I32Exit>() {
                Some(exit) => Ok(exit.0),
                None => Err(wasm_err(error)),
            },
        }
    }
}

fn main() {
    WasmtimeShim::run(None);
}
