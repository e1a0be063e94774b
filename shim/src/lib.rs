//! The wasmtime shims that labreport measures, on the published runwasi library.
//!
//! crates.io publishes the runwasi library (`containerd-shim-wasm`) but not the wasmtime shim
//! binary, so this crate provides the piece the library leaves open: a `Sandbox` that runs a
//! WASI preview-1 module with wasmtime. It builds two shims from one `WasmtimeShim` type:
//!
//! - `containerd-shim-wasmtime-v1` (runtime `io.containerd.wasmtime.v1`): compiles the
//!   module at every start, as the upstream wasmtime shim does for rootfs images. The baseline.
//! - `containerd-shim-wasmtime-aot-v1` (runtime `io.containerd.wasmtime-aot.v1`): keeps the
//!   compiled module in a file cache keyed by the module's sha256 and the engine's
//!   precompile-compatibility hash (see `cache`). The first start of a module compiles and
//!   stores it; later starts map the stored code. The key is the module, not the image, so it
//!   works through `ctr`, through Docker (which never hands the shim the image, runwasi #460)
//!   and for any image layout. (An earlier version cached in containerd's content store,
//!   which only `ctr` could reach and which streamed 21 MB over gRPC at every start.)
//!
//! Both shims write their phases (`phases`) when a run asks for them.
//!
//! The state directory (default `/var/cache/labreport-wasmtime`, or `$LABREPORT_WASMTIME_CACHE`
//! in the environment of the containerd that starts the shim) is opened in `main`, before the
//! library forks its zygote: `run_wasi` runs in the container's process after `pivot_root`,
//! where host paths are gone but an inherited descriptor still works. That descriptor and the
//! cache's are closed before the guest runs; only the `phases/` descriptor of a run that asked
//! for its record stays open until the guest returns (a WASM guest reaches no host descriptor:
//! WASI gives it only its preopened directories).
//!
//! `run_wasi` is driven by the library's own async executor, so only the async wasmtime API
//! may be used here: the synchronous preview-1 linker starts a nested tokio runtime, panics,
//! and leaves the task hung.

pub mod cache;
pub mod phases;
pub mod wagi;

use std::collections::hash_map::DefaultHasher;
use std::ffi::OsString;
use std::hash::{Hash, Hasher};
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::sync::Mutex;

use anyhow::{anyhow, Context, Result};
use containerd_shim_wasm::sandbox::context::{RuntimeContext, Source};
use containerd_shim_wasm::sandbox::Sandbox;
use containerd_shim_wasm::shim::{Cli, Config as ShimConfig, Shim, Version};
use rustix::fs::{mkdirat, openat, Mode, OFlags, CWD};
use rustix::io::Errno;
use wasmtime::{Config, Engine, Linker, Module, Store};
use wasmtime_wasi::p1::{self, WasiP1Ctx};
use wasmtime_wasi::{FsPerms, I32Exit, WasiCtxBuilder};

use crate::cache::Cache;
use crate::phases::Timeline;

const WASM_MAGIC: &[u8] = b"\0asm";
pub const STATE_ENV: &str = "LABREPORT_WASMTIME_CACHE";
pub const MAX_BYTES_ENV: &str = "LABREPORT_WASMTIME_CACHE_MAX_BYTES";
pub const DEFAULT_STATE_DIR: &str = "/var/cache/labreport-wasmtime";
/// A CLI start's epoch deadline: never reached, since nothing increments its engine's epoch.
const NO_DEADLINE: u64 = 1 << 62;

/// The state directory, opened by `main` and taken (so closed) by the run that uses it.
static STATE: Mutex<Option<OwnedFd>> = Mutex::new(None);
static MAX_BYTES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(cache::DEFAULT_MAX_BYTES);

/// Whether this binary is the caching shim: set once, first thing in `main`.
static CACHED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();

fn cached() -> bool {
    CACHED.get().copied().unwrap_or(false)
}

/// One shim type for both binaries; `cached()` chooses the file cache. A flag read at run time,
/// not a type parameter: the shim library's generic machinery is then compiled once, here, and
/// each binary only links it (as two instantiations, one per binary, it cost two full
/// code generations of that machinery at every build).
pub struct WasmtimeShim;

#[derive(Default)]
pub struct WasmtimeSandbox;

/// Entry point of both binaries (`cached`: the caching shim). `--labreport-run STATE_DIR MODULE
/// [ARGS...]` runs a module in-process exactly as a container start would (cache, phases), for
/// tests and benchmarks.
pub fn main(cached: bool) {
    phases::mark_process_start();
    let _ = CACHED.set(cached);
    let args: Vec<OsString> = std::env::args_os().collect();
    if args.get(1).is_some_and(|a| a == "--labreport-run") {
        std::process::exit(match standalone(&args[2..]) {
            Ok(code) => code,
            Err(error) => {
                eprintln!("error: {error:#}");
                125
            }
        });
    }
    let dir = std::env::var_os(STATE_ENV).unwrap_or_else(|| DEFAULT_STATE_DIR.into());
    open_state(&PathBuf::from(dir));
    // The library logs every start at info level through containerd's log pipe; keep the hot
    // path to warnings.
    let config = ShimConfig { default_log_level: "warn".to_string(), ..Default::default() };
    WasmtimeShim::run(config);
}

/// Opens (creating, root-only) the state directory and its `phases/`; on failure the shim
/// still runs, without cache or phase records.
fn open_state(dir: &std::path::Path) {
    if let Ok(value) = std::env::var(MAX_BYTES_ENV) {
        if let Ok(bytes) = value.parse::<u64>() {
            MAX_BYTES.store(bytes, std::sync::atomic::Ordering::Relaxed);
        }
    }
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
    let open = || openat(CWD, dir, flags, Mode::empty());
    let fd = match open() {
        Err(Errno::NOENT) => {
            use std::os::unix::fs::DirBuilderExt;
            let _ = std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir);
            open()
        }
        other => other,
    };
    match fd {
        Ok(fd) => {
            let _ = mkdirat(&fd, "phases", Mode::from_raw_mode(0o700));
            *STATE.lock().unwrap_or_else(|e| e.into_inner()) = Some(fd);
        }
        Err(error) => log::warn!("no state directory {}: {error}", dir.display()),
    }
}

/// Settings tried by benchmarks, in `--labreport-run` mode only (the shim under containerd never
/// reads it): words from `heap-read`, `no-address-map`, `no-known` (`benchmarks/shim_settings.py`),
/// `on-demand`, `no-keep`, `no-guest` (`benchmarks/serve.py`), `no-trim` (tests).
static BENCH_VARIANT: std::sync::OnceLock<String> = std::sync::OnceLock::new();

pub(crate) fn variant(word: &str) -> bool {
    BENCH_VARIANT.get().is_some_and(|v| v.split(',').any(|w| w == word))
}

/// The settings of every engine: every compile and every load uses them, so cached code always
/// meets an engine like the one that made it. They are part of the cache key (the
/// compatibility hash); the instance allocator, which a serving engine sets (`wagi::engine`),
/// is not. Epoch interruption is on for every start (WAGI serving stops a guest at its deadline
/// with it), so a serving container maps the same cached code as a CLI start; a CLI start's
/// deadline is never reached (nothing ticks the epoch).
pub fn config() -> Config {
    let mut config = Config::new();
    config.epoch_interruption(true);
    if variant("no-address-map") {
        config.generate_address_map(false);
    }
    config
}

/// The engine of a CLI start: instances allocated on demand (a pool would reserve its address
/// space for the one instance a CLI start makes).
pub fn engine() -> Result<Engine> {
    Engine::new(&config()).map_err(wasm_err)
}

/// The engine's precompile-compatibility hash (wasmtime version, target, flags, settings).
pub fn engine_hash(engine: &Engine) -> u64 {
    let mut hasher = DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut hasher);
    hasher.finish()
}

/// wasmtime 48's error type is not `std::error::Error`; keep its full chain as text.
pub(crate) fn wasm_err(error: wasmtime::Error) -> anyhow::Error {
    anyhow!("{error:?}")
}

impl Shim for WasmtimeShim {
    fn name() -> &'static str {
        if cached() {
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
}

fn split_env(entry: &str) -> (String, String) {
    match entry.split_once('=') {
        Some((key, value)) => (key.to_string(), value.to_string()),
        None => (entry.to_string(), String::new()),
    }
}

/// Where the module is: a layer that is itself a module, else the rootfs file of arg0, opened.
fn module_source(ctx: &impl RuntimeContext) -> Result<ModuleSource> {
    if let Source::Oci(layers) = ctx.entrypoint().source {
        if let [layer] = layers {
            if layer.layer.starts_with(WASM_MAGIC) {
                return Ok(ModuleSource::Layer(layer.layer.clone()));
            }
        }
    }
    let path = ctx.args().first().map(String::as_str).unwrap_or_default();
    ModuleSource::open(PathBuf::from(path.split_once('#').map_or(path, |(file, _)| file)))
}

/// A module as a start finds it: bytes handed over, or a file not read yet.
pub enum ModuleSource {
    Layer(Vec<u8>),
    File(std::fs::File, PathBuf),
}

impl ModuleSource {
    pub fn open(path: PathBuf) -> Result<ModuleSource> {
        let file = std::fs::File::open(&path).with_context(|| format!("opening {}", path.display()))?;
        Ok(ModuleSource::File(file, path))
    }

    /// The file's identity (`cache::Identity`), read before its bytes.
    fn identity(&self) -> Option<cache::Identity> {
        match self {
            ModuleSource::File(file, _) => cache::Identity::of(file),
            ModuleSource::Layer(_) => None,
        }
    }

    /// The bytes, and the file they were mapped from: a file is mapped (reading it into the
    /// heap cost about 10 ms a start for a 9.6 MB module: page faults to zero a fresh buffer,
    /// then the copy).
    fn bytes(self) -> Result<(ModuleBytes, Option<std::fs::File>)> {
        match self {
            ModuleSource::Layer(bytes) => Ok((ModuleBytes::Owned(bytes), None)),
            ModuleSource::File(_, path) if variant("heap-read") => Ok((ModuleBytes::Owned(std::fs::read(&path)?), None)),
            ModuleSource::File(file, path) => Ok((ModuleBytes::map(&file, &path)?, Some(file))),
        }
    }
}

/// A module's bytes, owned or mapped read-only from its file.
pub enum ModuleBytes {
    Owned(Vec<u8>),
    Mapped(*mut std::ffi::c_void, usize),
}

impl ModuleBytes {
    pub fn map(file: &std::fs::File, path: &std::path::Path) -> Result<ModuleBytes> {
        let len = file.metadata()?.len() as usize;
        if len == 0 {
            return Ok(ModuleBytes::Owned(Vec::new()));
        }
        // SAFETY: a private read-only mapping; the slice lives as long as this value, which
        // unmaps it on drop. A module file changed while mapped gives other bytes, which the
        // hash (computed from these very bytes) and the compiler see alike.
        let ptr = unsafe {
            rustix::mm::mmap(std::ptr::null_mut(), len, rustix::mm::ProtFlags::READ, rustix::mm::MapFlags::PRIVATE, file, 0)
        }
        .with_context(|| format!("mapping {}", path.display()))?;
        Ok(ModuleBytes::Mapped(ptr, len))
    }
}

// SAFETY: the mapping is read-only and owned by this value; sharing or moving it between
// threads is as safe as sharing a `&[u8]`.
unsafe impl Send for ModuleBytes {}
unsafe impl Sync for ModuleBytes {}

impl std::ops::Deref for ModuleBytes {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            ModuleBytes::Owned(bytes) => bytes,
            // SAFETY: mapped in `map` with this length, unmapped only in `drop`.
            ModuleBytes::Mapped(ptr, len) => unsafe { std::slice::from_raw_parts(ptr.cast::<u8>(), *len) },
        }
    }
}

impl Drop for ModuleBytes {
    fn drop(&mut self) {
        if let ModuleBytes::Mapped(ptr, len) = self {
            // SAFETY: the mapping made in `map`.
            let _ = unsafe { rustix::mm::munmap(*ptr, *len) };
        }
    }
}

/// The compiled module: from the cache (mapped) or compiled now, and then stored. A module file
/// the cache knows (`Cache::load_known`) is neither read nor hashed. Every cache failure is a
/// miss with its reason in the timeline, never an error.
fn cached_module(engine: &Engine, source: ModuleSource, state: Option<&OwnedFd>, timeline: &mut Timeline) -> Result<Module> {
    let engine_hash = engine_hash(engine);
    let max_bytes = MAX_BYTES.load(std::sync::atomic::Ordering::Relaxed);
    let cache = match state.map(|fd| Cache::open(fd, max_bytes)) {
        Some(Ok(cache)) => Some(cache),
        Some(Err(error)) => {
            timeline.fact("cache", format!("miss: cache directory not usable: {error}"));
            None
        }
        None => {
            timeline.fact("cache", "miss: no state directory");
            None
        }
    };
    let identity = source.identity();
    if let (Some(cache), Some(identity)) = (&cache, &identity) {
        if variant("no-known") {
            timeline.fact("known", "not asked (benchmark)");
        } else {
            match cache.load_known(engine, identity, engine_hash) {
                Ok((module, digest)) => {
                    timeline.mark("load");
                    timeline.fact("module_sha256", cache::hex(&digest));
                    timeline.fact("key", "known file");
                    timeline.fact("cache", "hit");
                    return Ok(module);
                }
                Err(reason) => timeline.fact("known", reason),
            }
        }
    }
    let (bytes, file) = source.bytes()?;
    timeline.mark("read");
    timeline.fact("module_bytes", bytes.len());
    let digest = cache::module_digest(&bytes);
    timeline.fact("module_sha256", cache::hex(&digest));
    timeline.fact("key", "sha256 of the module");
    timeline.mark("key");
    // The hash is of the bytes this identity names only if the file did not change meanwhile.
    let hashed = identity.filter(|before| file.as_ref().and_then(cache::Identity::of) == Some(*before));
    if let Some(cache) = &cache {
        match cache.load(engine, &digest, engine_hash) {
            Ok((module, entry)) => {
                timeline.mark("load");
                timeline.fact("cache", "hit");
                remember(cache, hashed, entry, engine_hash, &digest, timeline);
                return Ok(module);
            }
            Err(reason) => timeline.fact("cache", format!("miss: {reason}")),
        }
    }
    let artifact = engine.precompile_module(&bytes).map_err(wasm_err)?;
    timeline.mark("compile");
    timeline.fact("artifact_bytes", artifact.len());
    if let Some(cache) = &cache {
        match cache.store(&digest, engine_hash, &artifact) {
            Ok(_) => {
                timeline.mark("store");
                timeline.fact("stored", "yes");
                if let Ok((module, entry)) = cache.load(engine, &digest, engine_hash) {
                    timeline.mark("load");
                    remember(cache, hashed, entry, engine_hash, &digest, timeline);
                    return Ok(module);
                }
            }
            Err(error) => {
                timeline.mark("store");
                timeline.fact("stored", format!("no: {error}"));
            }
        }
    }
    // SAFETY: these bytes were produced just now by this engine.
    let module = unsafe { Module::deserialize(engine, &artifact) }.map_err(wasm_err)?;
    timeline.mark("load");
    Ok(module)
}

/// Writes the known-file record of a module file hashed unchanged (`hashed`) and the entry
/// checked for it, and says in the timeline whether it did.
fn remember(cache: &Cache, hashed: Option<cache::Identity>, entry: Option<cache::Identity>, engine_hash: u64, digest: &[u8; 32], timeline: &mut Timeline) {
    let outcome = match (hashed, entry) {
        (None, _) => "no: the module is no file with an identity, or it changed while hashed".to_string(),
        (_, None) => "no: the entry has no identity".to_string(),
        (Some(file), Some(entry)) => match cache.remember(&file, engine_hash, digest, &entry) {
            Ok(()) => "yes".to_string(),
            Err(error) => format!("no: {error}"),
        },
    };
    timeline.fact("remembered", outcome);
}

/// Everything a start does after the runtime hands over: engine, module (cache or compile),
/// instantiation and the guest's run, with the phases marked and, when asked, written.
async fn run(
    args: &[String],
    envs: &[String],
    func: &str,
    open: impl FnOnce() -> Result<ModuleSource>,
    state: Option<OwnedFd>,
) -> Result<i32> {
    let mut timeline = Timeline::start();
    let token = envs
        .iter()
        .find_map(|e| e.strip_prefix(phases::ENV).and_then(|r| r.strip_prefix('=')))
        .filter(|t| phases::valid_token(t))
        .map(str::to_owned);
    let serving = wagi::Settings::from_env(envs)?;
    let (engine, allocator) = match &serving {
        Some(settings) => wagi::engine(settings)?,
        None => (engine()?, "on demand".to_string()),
    };
    timeline.mark("engine");
    timeline.fact("allocator", &allocator);
    let source = open()?;
    timeline.mark("open");
    let module = if cached() {
        cached_module(&engine, source, state.as_ref(), &mut timeline)?
    } else {
        timeline.fact("cache", "off: compiled at every start");
        let (bytes, _) = source.bytes()?;
        timeline.mark("read");
        timeline.fact("module_bytes", bytes.len());
        let module = Module::new(&engine, &bytes[..]).map_err(wasm_err)?;
        timeline.mark("compile");
        module
    };
    let phases_dir = match (&token, &state) {
        (Some(_), Some(fd)) => openat(fd, "phases", OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty()).ok(),
        _ => None,
    };
    drop(state); // the host directory is closed before the guest runs

    let envs: Vec<(String, String)> = envs
        .iter()
        .filter(|e| !e.starts_with(&format!("{}=", phases::ENV)) && !e.starts_with(wagi::PREFIX))
        .map(|e| split_env(e))
        .collect();
    if let Some(settings) = serving {
        drop(phases_dir);
        return wagi::serve(engine, allocator, module, args.to_vec(), envs, func.to_string(), settings);
    }
    let mut builder = WasiCtxBuilder::new();
    builder
        .inherit_stdio()
        .args(args)
        .envs(&envs)
        .preopened_dir("/", "/", FsPerms::ReadOnly)
        .map_err(wasm_err)?;
    let wasi: WasiP1Ctx = builder.build_p1();
    let mut linker: Linker<WasiP1Ctx> = Linker::new(&engine);
    p1::add_to_linker_async(&mut linker, |state| state).map_err(wasm_err)?;
    let mut store = Store::new(&engine, wasi);
    store.set_epoch_deadline(NO_DEADLINE);
    let instance = linker.instantiate_async(&mut store, &module).await.map_err(wasm_err)?;
    let start = instance.get_typed_func::<(), ()>(&mut store, func).map_err(wasm_err)?;
    timeline.mark("instantiate");
    let outcome = match start.call_async(&mut store, ()).await {
        Ok(()) => Ok(0),
        Err(error) => match error.downcast_ref::<I32Exit>() {
            Some(exit) => Ok(exit.0),
            None => Err(wasm_err(error)),
        },
    };
    timeline.mark("exit");
    if let (Some(token), Some(dir)) = (token, phases_dir) {
        timeline.fact("exit", match &outcome { Ok(code) => code.to_string(), Err(_) => "trap".into() });
        timeline.write(dir, &token, WasmtimeShim::name());
    }
    outcome
}

impl Sandbox for WasmtimeSandbox {
    async fn run_wasi(&self, ctx: &impl RuntimeContext) -> Result<i32> {
        let state = STATE.lock().unwrap_or_else(|e| e.into_inner()).take();
        let func = ctx.entrypoint().func;
        run(ctx.args(), ctx.envs(), &func, || module_source(ctx), state).await
    }
}

/// `--labreport-run STATE_DIR MODULE [ARGS...]`: the same start, in this process, with this
/// process's environment (a missing STATE_DIR is created, as `main` does).
fn standalone(args: &[OsString]) -> Result<i32> {
    let [dir, module, ..] = args else {
        return Err(anyhow!("usage: --labreport-run STATE_DIR MODULE [ARGS...]"));
    };
    open_state(&PathBuf::from(dir));
    let _ = BENCH_VARIANT.set(std::env::var("LABREPORT_SHIM_BENCH_VARIANT").unwrap_or_default());
    let state = STATE.lock().unwrap_or_else(|e| e.into_inner()).take();
    let guest_args: Vec<String> = args[1..].iter().map(|a| a.to_string_lossy().into_owned()).collect();
    let envs: Vec<String> = std::env::vars().map(|(k, v)| format!("{k}={v}")).collect();
    let path = PathBuf::from(module);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(run(
        &guest_args,
        &envs,
        "_start",
        || ModuleSource::open(path),
        state,
    ))
}
