//! The wasmtime shims that labreport measures, on the published runwasi library.
//!
//! crates.io publishes the runwasi library (`containerd-shim-wasm`) but not the wasmtime shim
//! binary, so this crate provides the piece the library leaves open: a `Sandbox` that runs a
//! WASI preview-1 module with wasmtime. It builds two shims from one `WasmtimeShim` type:
//!
//! - `containerd-shim-wasmtime-v1` (runtime `io.containerd.wasmtime.v1`): runs the module
//!   that is the entrypoint file of the image's rootfs and compiles it at every start, as the
//!   upstream wasmtime shim does for such images.
//! - `containerd-shim-wasmtime-aot-v1` (runtime `io.containerd.wasmtime-aot.v1`): also
//!   accepts the ordinary OCI tar layers as layers it handles. At the first start of an image
//!   the library hands those layers to `TarLayerCompiler`, which finds the one WASM module in
//!   them and precompiles it; the library stores the result in containerd's content store,
//!   tied to the image, and later starts deserialize it instead of compiling.
//!
//! `run_wasi` is driven by the library's own async executor, so only the async wasmtime API
//! may be used here: the synchronous preview-1 linker starts a nested tokio runtime, panics,
//! and leaves the task hung.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::io::Read;
use std::path::PathBuf;

use anyhow::{anyhow, Context, Result};
use containerd_shim_wasm::sandbox::context::{RuntimeContext, Source, WasmLayer};
use containerd_shim_wasm::sandbox::Sandbox;
use containerd_shim_wasm::shim::{Compiler, Shim, Version};
use wasmtime::{Config, Engine, Linker, Module, Store};
use wasmtime_wasi::p1::{self, WasiP1Ctx};
use wasmtime_wasi::{FsPerms, I32Exit, WasiCtxBuilder};

const WASM_MAGIC: &[u8] = b"\0asm";
const GZIP_MAGIC: &[u8] = &[0x1f, 0x8b];

/// The library's defaults (layers that *are* a module) plus the ordinary OCI and Docker
/// rootfs tar layers, which the precompiling shim opens to find the module.
const TAR_AWARE_LAYER_TYPES: &[&str] = &[
    "application/vnd.bytecodealliance.wasm.component.layer.v0+wasm",
    "application/wasm",
    "application/vnd.oci.image.layer.v1.tar",
    "application/vnd.oci.image.layer.v1.tar+gzip",
    "application/vnd.docker.image.rootfs.diff.tar",
    "application/vnd.docker.image.rootfs.diff.tar.gzip",
];

/// One shim type for both binaries; `PRECOMPILE` chooses the compile-once path.
pub struct WasmtimeShim<const PRECOMPILE: bool>;

#[derive(Default)]
pub struct WasmtimeSandbox;

/// Both the compiler and the sandbox build their engine here, so that precompiled bytes
/// always meet an engine with the same configuration.
fn engine() -> Result<Engine> {
    Engine::new(&Config::new()).map_err(wasm_err)
}

/// wasmtime 48's error type is not `std::error::Error`; keep its full chain as text.
fn wasm_err(error: wasmtime::Error) -> anyhow::Error {
    anyhow!("{error:?}")
}

impl<const PRECOMPILE: bool> Shim for WasmtimeShim<PRECOMPILE> {
    fn name() -> &'static str {
        if PRECOMPILE {
            "wasmtime-aot"
        } else {
            "wasmtime"
        }
    }

    fn version() -> Version {
        Version {
            version: env!("CARGO_PKG_VERSION"),
            revision: "labreport",
        }
    }

    type Sandbox = WasmtimeSandbox;

    async fn compiler() -> Option<impl Compiler> {
        if !PRECOMPILE {
            return None;
        }
        match engine() {
            Ok(engine) => Some(TarLayerCompiler { engine }),
            Err(error) => {
                log::error!("no precompiler, the engine failed to start: {error:#}");
                None
            }
        }
    }

    fn supported_layers_types() -> &'static [&'static str] {
        if PRECOMPILE {
            TAR_AWARE_LAYER_TYPES
        } else {
            &TAR_AWARE_LAYER_TYPES[..2]
        }
    }
}

pub struct TarLayerCompiler {
    engine: Engine,
}

impl Compiler for TarLayerCompiler {
    /// The cached code is valid only for this engine: the compatibility hash covers the
    /// target, the compiler flags, the configuration and the wasmtime version.
    fn cache_key(&self) -> impl Hash {
        let mut hasher = DefaultHasher::new();
        self.engine.precompile_compatibility_hash().hash(&mut hasher);
        hasher.finish()
    }

    /// Precompiles the image's one WASM module, in whichever layer it is. With no module,
    /// or more than one (which one is the entrypoint is not known here), nothing is
    /// precompiled and the sandbox runs the rootfs file as the plain shim does.
    async fn compile(&self, layers: &[WasmLayer]) -> Result<Vec<Option<Vec<u8>>>> {
        let mut modules = Vec::with_capacity(layers.len());
        for layer in layers {
            modules.push(wasm_modules_in(&layer.layer)?);
        }
        let mut compiled = vec![None; layers.len()];
        let found: Vec<usize> = (0..layers.len())
            .filter(|&i| !modules[i].is_empty())
            .collect();
        match (found.as_slice(), modules.iter().map(Vec::len).sum::<usize>()) {
            ([index], 1) => {
                let module = &modules[*index][0];
                compiled[*index] = Some(self.engine.precompile_module(module).map_err(wasm_err)?);
            }
            (_, count) => log::info!("{count} WASM modules in the image layers; not precompiling"),
        }
        Ok(compiled)
    }
}

/// The WASM modules in one layer: the layer itself, or the regular files of a (gzipped) tar
/// layer whose bytes start with the WASM magic.
fn wasm_modules_in(layer: &[u8]) -> Result<Vec<Vec<u8>>> {
    if layer.starts_with(WASM_MAGIC) {
        return Ok(vec![layer.to_vec()]);
    }
    if layer.starts_with(GZIP_MAGIC) {
        let mut tar = Vec::new();
        flate2::read::GzDecoder::new(layer)
            .read_to_end(&mut tar)
            .context("unpacking a gzip layer")?;
        return wasm_modules_in_tar(&tar);
    }
    wasm_modules_in_tar(layer)
}

fn wasm_modules_in_tar(tar_bytes: &[u8]) -> Result<Vec<Vec<u8>>> {
    let mut modules = Vec::new();
    let mut archive = tar::Archive::new(tar_bytes);
    for entry in archive.entries().context("reading a tar layer")? {
        let mut entry = entry.context("reading a tar layer entry")?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let mut magic = [0u8; 4];
        if entry.read_exact(&mut magic).is_err() || magic != WASM_MAGIC {
            continue;
        }
        let mut module = magic.to_vec();
        entry.read_to_end(&mut module).context("reading a module")?;
        modules.push(module);
    }
    Ok(modules)
}

fn split_env(entry: &str) -> (String, String) {
    match entry.split_once('=') {
        Some((key, value)) => (key.to_string(), value.to_string()),
        None => (entry.to_string(), String::new()),
    }
}

/// The module to run: precompiled code from the content store when the library hands over
/// exactly one precompiled layer, otherwise the entrypoint file of the rootfs, compiled now.
fn load_module(engine: &Engine, ctx: &impl RuntimeContext) -> Result<Module> {
    let entrypoint = ctx.entrypoint();
    if let Source::Oci(layers) = entrypoint.source {
        let precompiled: Vec<&WasmLayer> = layers.iter().filter(|l| l.precompiled).collect();
        if let [layer] = precompiled.as_slice() {
            // SAFETY: precompiled layers are written only by TarLayerCompiler, with an engine
            // built by `engine()`, and the library files them under a cache key that holds
            // the wasmtime version and the engine's compatibility hash.
            return unsafe { Module::deserialize(engine, &layer.layer) }.map_err(wasm_err);
        }
        if let [layer] = layers {
            if layer.layer.starts_with(WASM_MAGIC) {
                return Module::new(engine, &layer.layer).map_err(wasm_err);
            }
        }
    }
    let path = ctx.args().first().map(String::as_str).unwrap_or_default();
    let path = PathBuf::from(path.split_once('#').map_or(path, |(file, _)| file));
    let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
    Module::new(engine, &bytes).map_err(wasm_err)
}

impl Sandbox for WasmtimeSandbox {
    async fn run_wasi(&self, ctx: &impl RuntimeContext) -> Result<i32> {
        let engine = engine()?;
        let module = load_module(&engine, ctx)?;

        let envs: Vec<(String, String)> = ctx.envs().iter().map(|e| split_env(e)).collect();
        let mut builder = WasiCtxBuilder::new();
        builder
            .inherit_stdio()
            .args(ctx.args())
            .envs(&envs)
            .preopened_dir("/", "/", FsPerms::ReadOnly)
            .map_err(wasm_err)?;
        let wasi: WasiP1Ctx = builder.build_p1();

        let mut linker: Linker<WasiP1Ctx> = Linker::new(&engine);
        p1::add_to_linker_async(&mut linker, |state| state).map_err(wasm_err)?;
        let mut store = Store::new(&engine, wasi);
        let instance = linker
            .instantiate_async(&mut store, &module)
            .await
            .map_err(wasm_err)?;
        let func = ctx.entrypoint().func;
        let start = instance
            .get_typed_func::<(), ()>(&mut store, &func)
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
