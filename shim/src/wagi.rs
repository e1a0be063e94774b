//! WAGI serving: the shim answers HTTP requests by running the module once per request, with the
//! CGI convention (the request in the environment and on stdin, the response on stdout), as
//! Spin's WAGI executor does for preview-1 modules. A WASI preview-1 guest cannot open a socket,
//! so the host side listens. HTTP/1.1 is hyper's, the library runwasi's wasmtime shim serves
//! `wasi:http` with: the shim parses nothing of HTTP itself, only the guest's CGI output.
//!
//! A container asks for it with `LABREPORT_WAGI_LISTEN=ADDR:PORT` in its environment; that
//! variable and the other `LABREPORT_WAGI_*` settings are the shim's, never the guest's. The
//! listener is bound in `run_wasi`, which runs in the container's init process after its
//! namespaces are applied: it lives in the container's network namespace (`docker run -p`
//! maps a port into it; `ctr run --net-host` has none of its own).
//!
//! What a request costs is only what must be per request: the module is compiled (or, by the
//! caching shim, mapped from its file cache) once per container and linked once (`InstancePre`);
//! the engine of a serving container uses wasmtime's pooling allocator (`pooling_engine`), whose
//! slots are reserved once and reused, with each memory initialised copy-on-write from the
//! module's image; every request still gets a fresh `Store` and instance, so requests share
//! nothing. Bounds: at most `concurrency` guests run at once, a guest that runs longer than
//! `timeout` is stopped by an epoch deadline (504), a request body larger than `max_body` is
//! refused (413), a request head over 16 KiB gets 431 (hyper), a guest's output is capped, and a
//! guest's linear memory is limited. A guest that traps gives 500, a response that is not CGI
//! gives 502; the server keeps serving. SIGTERM or SIGINT stops it (exit 0); SIGKILL kills it
//! like any task.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_LENGTH, CONTENT_TYPE, LOCATION};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use wasmtime::{Engine, InstancePre, Linker, Module, Store, StoreLimits, StoreLimitsBuilder, Trap};
use wasmtime_wasi::p1::{self, WasiP1Ctx};
use wasmtime_wasi::p2::pipe::{MemoryInputPipe, MemoryOutputPipe};
use wasmtime_wasi::{FsPerms, I32Exit, WasiCtxBuilder};

/// Every variable with this prefix is a setting of the shim's, removed from the guest's env.
pub const PREFIX: &str = "LABREPORT_WAGI_";
pub const LISTEN_ENV: &str = "LABREPORT_WAGI_LISTEN";
/// What the no-op guest of `benchmarks/serve.py` prints, and what the shim answers without a
/// guest when a benchmark asks for that floor (`--labreport-run` only, variant `no-guest`).
pub const NOOP_CGI: &[u8] = b"Content-Type: text/plain\n\nok\n";
const TICK: Duration = Duration::from_millis(10);
const MAX_HEAD_BYTES: usize = 16 * 1024;
const IDLE_CONNECTION: Duration = Duration::from_secs(30);
const MAX_CONNECTIONS: usize = 1024;
/// A pool slot keeps up to this much of a guest's linear memory mapped when the guest is done,
/// reset to the module's image by `memset` instead of handed back to the kernel, so that the
/// next guest in the slot takes no page fault there; with the kernel's PAGEMAP_SCAN (Linux 6.7+)
/// only the pages the guest dirtied are reset. Lab 12's Go guest dirties about 12 MiB at every
/// start: 16 MiB kept with the scan served 1.6x the requests of memory handed back (lab 12, c=8,
/// 2 cores), where the faults and the TLB shootdowns they cost between the server's threads
/// were most of the time. The price: a slot that served holds what its guest dirtied, at most
/// this much, until the server stops.
const KEEP_RESIDENT: usize = 16 << 20;
/// The same for a table (lab 12's has some thousands of 8-byte elements).
const TABLE_KEEP_RESIDENT: usize = 1 << 20;
/// A server idle this long hands the memory it keeps back to the kernel (`trim_if_idle`), checked
/// every half of it. At 500 ms, checked every 500 ms, an idle service still held its guest's pages
/// for up to a second after a request, about half of a 2 s idle reading (labreport's median of it
/// read 5.7 MiB in one run and 1.6 in the next); a request after a longer pause pays the faults.
const TRIM_AFTER: Duration = Duration::from_millis(250);
/// How `engine` says its instances come from the pool (the start of its text).
const POOLED: &str = "pooling allocator";
/// The largest table a pooled instance may have (Go's wasm modules have one of some thousands).
const MAX_TABLE_ELEMENTS: usize = 1 << 20;

/// The serving settings a container asked for.
#[derive(Debug, Clone)]
pub struct Settings {
    pub listen: SocketAddr,
    pub concurrency: usize,
    pub timeout: Duration,
    pub max_body: usize,
    pub max_output: usize,
    pub max_memory: usize,
}

impl Settings {
    /// The settings from a container's environment; None when it does not ask to serve.
    pub fn from_env(envs: &[String]) -> Result<Option<Settings>> {
        let get = |name: &str| {
            envs.iter().rev().find_map(|e| e.strip_prefix(name).and_then(|r| r.strip_prefix('=')))
        };
        let Some(listen) = get(LISTEN_ENV) else { return Ok(None) };
        let number = |name: &str, default: u64| -> Result<u64> {
            match get(name) {
                None => Ok(default),
                Some(text) => text.parse::<u64>().ok().filter(|n| *n > 0).ok_or_else(|| anyhow!("{name}={text}: not a positive integer")),
            }
        };
        Ok(Some(Settings {
            listen: listen.parse().with_context(|| format!("{LISTEN_ENV}={listen}: not ADDR:PORT"))?,
            concurrency: number("LABREPORT_WAGI_CONCURRENCY", 16)? as usize,
            timeout: Duration::from_millis(number("LABREPORT_WAGI_TIMEOUT_MS", 10_000)?),
            max_body: number("LABREPORT_WAGI_MAX_BODY_BYTES", 1 << 20)? as usize,
            max_output: number("LABREPORT_WAGI_MAX_OUTPUT_BYTES", 16 << 20)? as usize,
            max_memory: number("LABREPORT_WAGI_MAX_MEMORY_BYTES", 512 << 20)? as usize,
        }))
    }
}

/// The engine of a serving container: the shim's engine (`crate::config`) with wasmtime's pooling
/// allocator, one slot (instance, memory, table, async stack) per guest that may run at once.
/// The pool's address space is reserved here, once; where the host refuses the reservation (a
/// `ulimit -v`, a strict overcommit policy) the same engine allocates on demand instead, as
/// runwasi's and Spin's probes do, and the returned text says which it is. The allocator is not
/// part of wasmtime's precompile-compatibility hash, so both engines load the code the cache
/// holds for a CLI start of the same module.
pub fn engine(settings: &Settings) -> Result<(Engine, String)> {
    if crate::variant("on-demand") {
        return Ok((crate::engine()?, "on demand (asked for)".into()));
    }
    let slots = u32::try_from(settings.concurrency).unwrap_or(u32::MAX);
    let mut pool = wasmtime::PoolingAllocationConfig::new();
    pool.total_core_instances(slots)
        .total_memories(slots)
        .total_tables(slots)
        .total_stacks(slots)
        .max_memory_size(settings.max_memory)
        .table_elements(MAX_TABLE_ELEMENTS)
        .pagemap_scan(wasmtime::Enabled::Auto);
    let kept = if crate::variant("no-keep") { 0 } else { KEEP_RESIDENT };
    pool.linear_memory_keep_resident(kept).table_keep_resident(kept.min(TABLE_KEEP_RESIDENT));
    let mut config = crate::config();
    config.allocation_strategy(pool);
    match Engine::new(&config) {
        Ok(engine) => Ok((engine, format!("{POOLED}, {slots} slots, {} MiB of memory kept resident in each", kept >> 20))),
        Err(error) => {
            let reason = format!("{error:?}");
            Ok((crate::engine()?, format!("on demand: the host refused the pooling allocator ({})", first_line(&reason))))
        }
    }
}

/// One guest's state: its WASI context and the limits on its memory.
struct Guest {
    wasi: WasiP1Ctx,
    limits: StoreLimits,
}

/// What every request shares: the pre-linked module and the guest's fixed arguments and env.
struct Server {
    engine: Engine,
    pre: InstancePre<Guest>,
    func: String,
    args: Vec<String>,
    envs: Vec<(String, String)>,
    settings: Settings,
    guests: Semaphore,
    local: SocketAddr,
    /// The linear memories the pool keeps resident, by address and length, until `trim`.
    kept: std::sync::Mutex<Vec<(usize, usize)>>,
    /// When the last guest finished (ms on the server's clock).
    last_done: std::sync::atomic::AtomicU64,
    clock: std::time::Instant,
    /// The benchmark floor: answer `NOOP_CGI` without running a guest.
    no_guest: bool,
    /// Whether instances come from the pool: only a pool slot's memory outlives its guest, so
    /// only then is there memory to note and trim (an on-demand memory is unmapped with its
    /// store, and its addresses may be another mapping's by the time the server is idle).
    pooled: bool,
}

/// Serves until SIGTERM/SIGINT; blocks. The engine must have epoch interruption on (the
/// timeout). Runs its own runtime on a thread of its own: the caller's runtime may be one
/// whose workers did not survive the fork into the container. `allocator` says how the engine
/// allocates instances (from `engine`), for the log.
pub fn serve(engine: Engine, allocator: String, module: Module, args: Vec<String>, envs: Vec<(String, String)>, func: String, settings: Settings) -> Result<i32> {
    let mut linker: Linker<Guest> = Linker::new(&engine);
    p1::add_to_linker_async(&mut linker, |guest: &mut Guest| &mut guest.wasi).map_err(crate::wasm_err)?;
    let pre = linker.instantiate_pre(&module).map_err(crate::wasm_err)?;
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get()).max(2);
    let no_guest = crate::variant("no-guest");
    let pooled = allocator.starts_with(POOLED);
    let _ticker = Ticker::start(engine.clone());
    std::thread::spawn(move || -> Result<i32> {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(workers).enable_all().build()?;
        let result = runtime.block_on(async move {
            let listener = TcpListener::bind(settings.listen).await.with_context(|| format!("listening on {}", settings.listen))?;
            let local = listener.local_addr()?;
            let guests = Semaphore::new(settings.concurrency);
            let kept = std::sync::Mutex::new(Vec::new());
            let (last_done, clock) = (std::sync::atomic::AtomicU64::new(0), std::time::Instant::now());
            let server = Arc::new(Server { engine, pre, func, args, envs, settings, guests, local, kept, last_done, clock, no_guest, pooled });
            let trimmer = server.clone();
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(TRIM_AFTER / 2).await; // trimmed 250 to 375 ms after
                    trimmer.trim_if_idle();
                }
            });
            eprintln!("labreport-wagi: serving on {local}; instances: {allocator}");
            let connections = Arc::new(Semaphore::new(MAX_CONNECTIONS));
            let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
            let mut int = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?;
            loop {
                tokio::select! {
                    _ = term.recv() => return Ok(0),
                    _ = int.recv() => return Ok(0),
                    accepted = listener.accept() => {
                        let Ok((stream, peer)) = accepted else { continue };
                        let Ok(permit) = connections.clone().try_acquire_owned() else { continue }; // dropped: too many
                        let server = server.clone();
                        tokio::spawn(async move {
                            server.connection(stream, peer).await;
                            drop(permit);
                        });
                    }
                }
            }
        });
        // A guest still computing holds a worker until its deadline: do not wait for it.
        runtime.shutdown_background();
        result
    })
    .join()
    .map_err(|_| anyhow!("the WAGI server thread panicked"))?
}

/// The clock of every guest's deadline: a thread of its own that advances the engine's epoch
/// every TICK until dropped. Not a task on the server's runtime: a guest that computes blocks
/// the worker that polls it, and while it does, tokio's timers fire only if another worker
/// happens to be parked on the driver; when none is, the tick never comes and the guest runs on
/// past its deadline (seen in CI: the compiling shim's looping guest got no 504 in 30 s).
struct Ticker {
    stop: Arc<AtomicBool>,
}

impl Ticker {
    fn start(engine: Engine) -> Ticker {
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        std::thread::spawn(move || {
            while !stopped.load(Ordering::Relaxed) {
                std::thread::sleep(TICK);
                engine.increment_epoch();
            }
        });
        Ticker { stop }
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// A response before it is handed to hyper: status, headers (hyper adds Content-Length, and
/// keeps or closes the connection as the request asked), body.
struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Reply {
    fn error(status: StatusCode, message: impl Into<String>) -> Reply {
        let mut body = message.into().into_bytes();
        body.push(b'\n');
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
        Reply { status, headers, body: body.into() }
    }

    fn into_response(self) -> Response<Full<Bytes>> {
        let mut response = Response::new(Full::new(self.body));
        *response.status_mut() = self.status;
        *response.headers_mut() = self.headers;
        response
    }
}

impl Server {
    /// One connection, served by hyper until the peer closes it, asks to close, or stays idle
    /// past IDLE_CONNECTION (hyper's header read timeout covers the wait for the next request).
    async fn connection(self: Arc<Self>, stream: TcpStream, peer: SocketAddr) {
        let _ = stream.set_nodelay(true);
        let server = self.clone();
        let service = service_fn(move |request: Request<Incoming>| {
            let server = server.clone();
            async move { Ok::<_, Infallible>(server.handle(request, peer).await.into_response()) }
        });
        let _ = http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(IDLE_CONNECTION)
            .max_buf_size(MAX_HEAD_BYTES)
            .serve_connection(TokioIo::new(stream), service)
            .await;
    }

    /// One request: its body (bounded), then the guest.
    async fn handle(&self, request: Request<Incoming>, peer: SocketAddr) -> Reply {
        let (head, body) = request.into_parts();
        let too_large = |length: u64| {
            Reply::error(StatusCode::PAYLOAD_TOO_LARGE, format!("labreport-wagi: request body of {length} bytes is over the limit of {}", self.settings.max_body))
        };
        let declared = head.headers.get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
        if let Some(length) = declared.filter(|length| *length > self.settings.max_body as u64) {
            return too_large(length);
        }
        let body = match Limited::new(body, self.settings.max_body).collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(error) if error.downcast_ref::<http_body_util::LengthLimitError>().is_some() => {
                return too_large(self.settings.max_body as u64 + 1);
            }
            Err(error) => return Reply::error(StatusCode::BAD_REQUEST, format!("labreport-wagi: reading the request body: {error}")),
        };
        let env = cgi_env(&head, body.len(), peer, self.local);
        self.answer(env, body).await
    }

    /// A fresh instance with the CGI environment; the guest's stdout is the response.
    async fn answer(&self, env: Vec<(String, String)>, body: Bytes) -> Reply {
        let Ok(_permit) = self.guests.acquire().await else {
            return Reply::error(StatusCode::SERVICE_UNAVAILABLE, "labreport-wagi: shutting down");
        };
        if self.no_guest {
            return reply_from_cgi(NOOP_CGI);
        }
        let stdout = MemoryOutputPipe::new(self.settings.max_output);
        let mut builder = WasiCtxBuilder::new();
        builder.inherit_stderr().stdout(stdout.clone()).stdin(MemoryInputPipe::new(body)).args(&self.args).envs(&self.envs).envs(&env);
        if let Err(error) = builder.preopened_dir("/", "/", FsPerms::ReadOnly) {
            return Reply::error(StatusCode::INTERNAL_SERVER_ERROR, format!("labreport-wagi: preopening /: {error:?}"));
        }
        let limits = StoreLimitsBuilder::new().memory_size(self.settings.max_memory).instances(1).build();
        let mut store = Store::new(&self.engine, Guest { wasi: builder.build_p1(), limits });
        store.limiter(|guest| &mut guest.limits);
        let ticks = (self.settings.timeout.as_millis() / TICK.as_millis()).max(1) as u64;
        store.set_epoch_deadline(ticks);
        store.epoch_deadline_trap();
        let mut made = None;
        let run = async {
            let instance = self.pre.instantiate_async(&mut store).await?;
            made = Some(instance);
            let start = instance.get_typed_func::<(), ()>(&mut store, &self.func)?;
            start.call_async(&mut store, ()).await
        };
        // The epoch deadline stops a guest that computes; this one stops a guest that waits in
        // a host call (a sleep) past the deadline.
        let outcome = tokio::time::timeout(self.settings.timeout + TICK * 10, run).await;
        if let Some(instance) = made {
            self.note_memory(&mut store, instance);
        }
        self.last_done.store(self.clock.elapsed().as_millis() as u64, Ordering::Relaxed);
        let Ok(outcome) = outcome else {
            return timed_out(self.settings.timeout);
        };
        let code = match outcome {
            Ok(()) => 0,
            Err(error) => {
                if let Some(exit) = error.downcast_ref::<I32Exit>() {
                    exit.0
                } else if error.downcast_ref::<Trap>() == Some(&Trap::Interrupt) {
                    return timed_out(self.settings.timeout);
                } else {
                    return Reply::error(StatusCode::INTERNAL_SERVER_ERROR, format!("labreport-wagi: the guest trapped: {}", first_line(&format!("{error:?}"))));
                }
            }
        };
        drop(store);
        if code != 0 {
            return Reply::error(StatusCode::INTERNAL_SERVER_ERROR, format!("labreport-wagi: the guest exited {code}"));
        }
        reply_from_cgi(&stdout.contents())
    }
}

impl Server {
    /// Remembers where a guest's linear memory is: its pool slot keeps it resident afterwards.
    fn note_memory(&self, store: &mut Store<Guest>, instance: wasmtime::Instance) {
        if !self.pooled {
            return;
        }
        let memories: Vec<wasmtime::Memory> = instance.exports(&mut *store).filter_map(|e| e.into_memory()).collect();
        let mut kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
        for memory in memories {
            let range = (memory.data_ptr(&*store) as usize, memory.data_size(&*store));
            match kept.iter_mut().find(|(base, _)| *base == range.0) {
                Some(known) => known.1 = known.1.max(range.1),
                None => kept.push(range),
            }
        }
    }

    /// Hands the memory the pool keeps resident back to the kernel once the server has been idle
    /// for TRIM_AFTER, so that an idle service holds what it held before its first request.
    /// Safe because it holds every guest slot's permit: a `Store`, and so an instance, exists
    /// only while its request holds a permit, so no instance uses any of these slots, and
    /// `madvise(MADV_DONTNEED)` leaves each slot as wasmtime's own reset does for the memory it
    /// does not keep (anonymous pages read back as zeros, the module's image mapping as the
    /// image).
    fn trim_if_idle(&self) {
        if crate::variant("no-trim") {
            return;
        }
        let now = self.clock.elapsed().as_millis() as u64;
        if now.saturating_sub(self.last_done.load(Ordering::Relaxed)) < TRIM_AFTER.as_millis() as u64 {
            return;
        }
        let Ok(_every_slot) = self.guests.try_acquire_many(self.settings.concurrency as u32) else {
            return; // a guest runs or waits: not idle
        };
        let mut kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
        if kept.is_empty() {
            return; // trimmed already: no guest ran since
        }
        for (base, len) in kept.drain(..) {
            // SAFETY: see above; the range is a pool slot's linear memory, mapped while the
            // engine lives (the server holds it).
            let _ = unsafe { rustix::mm::madvise(base as *mut std::ffi::c_void, len, rustix::mm::Advice::LinuxDontNeed) };
        }
        // The heap's free memory too (glibc keeps what its arenas freed: the connections'
        // buffers and the guests' WASI contexts after a load at high concurrency).
        #[cfg(target_env = "gnu")]
        // SAFETY: malloc_trim only returns free heap pages to the kernel; callable at any time.
        unsafe {
            malloc_trim(0);
        }
    }
}

#[cfg(target_env = "gnu")]
extern "C" {
    /// glibc: releases free memory at the top of the heap and, since 2.8, free pages inside
    /// every arena.
    fn malloc_trim(pad: usize) -> std::ffi::c_int;
}

fn reply_from_cgi(output: &[u8]) -> Reply {
    match parse_cgi(output) {
        Ok(reply) => reply,
        Err(reason) => Reply::error(StatusCode::BAD_GATEWAY, format!("labreport-wagi: not a CGI response: {reason}")),
    }
}

fn timed_out(timeout: Duration) -> Reply {
    Reply::error(StatusCode::GATEWAY_TIMEOUT, format!("labreport-wagi: the guest ran longer than {} ms", timeout.as_millis()))
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or_default()
}

/// The CGI/1.1 environment of a request (RFC 3875), headers as HTTP_* (not Proxy: httpoxy).
/// A header value that is not text is left out.
fn cgi_env(head: &hyper::http::request::Parts, body_len: usize, peer: SocketAddr, local: SocketAddr) -> Vec<(String, String)> {
    let target = head.uri.path_and_query().map_or("/", |p| p.as_str());
    let mut env = vec![
        ("GATEWAY_INTERFACE".to_string(), "CGI/1.1".to_string()),
        ("SERVER_SOFTWARE".into(), "labreport-wagi".into()),
        ("SERVER_PROTOCOL".into(), format!("{:?}", head.version)),
        ("SERVER_NAME".into(), local.ip().to_string()),
        ("SERVER_PORT".into(), local.port().to_string()),
        ("REMOTE_ADDR".into(), peer.ip().to_string()),
        ("REMOTE_PORT".into(), peer.port().to_string()),
        ("REQUEST_METHOD".into(), head.method.as_str().to_string()),
        ("REQUEST_URI".into(), target.to_string()),
        ("SCRIPT_NAME".into(), String::new()),
        ("PATH_INFO".into(), head.uri.path().to_string()),
        ("QUERY_STRING".into(), head.uri.query().unwrap_or_default().to_string()),
    ];
    if body_len > 0 {
        env.push(("CONTENT_LENGTH".into(), body_len.to_string()));
    }
    for (name, value) in &head.headers {
        let Ok(value) = value.to_str() else { continue };
        let key = name.as_str().to_ascii_uppercase().replace('-', "_");
        match key.as_str() {
            "CONTENT_TYPE" => env.push((key, value.to_string())),
            "CONTENT_LENGTH" | "PROXY" | "CONNECTION" | "TRANSFER_ENCODING" => {}
            _ => env.push((format!("HTTP_{key}"), value.to_string())),
        }
    }
    env
}

/// A CGI response: header lines, a blank line, the body. `Status` gives the status (else 302
/// with a `Location`, else 200); at least one of Status, Content-Type, Location is required.
fn parse_cgi(output: &[u8]) -> Result<Reply, String> {
    let crlf = find(output, b"\r\n\r\n").map(|i| (i, i + 4));
    let lf = find(output, b"\n\n").map(|i| (i, i + 2));
    let (end, body_start) = match (crlf, lf) {
        (Some(a), Some(b)) => if a.0 <= b.0 { a } else { b },
        (Some(a), None) | (None, Some(a)) => a,
        (None, None) => return Err(format!("no blank line after the headers in {} bytes of output", output.len())),
    };
    let head = std::str::from_utf8(&output[..end]).map_err(|_| "headers are not UTF-8".to_string())?;
    let mut status = None;
    let mut headers = HeaderMap::new();
    for line in head.split('\n').map(|l| l.trim_end_matches('\r')) {
        let (name, value) = line.split_once(':').ok_or_else(|| format!("header line {line:?} has no ':'"))?;
        let (name, value) = (name.trim(), value.trim());
        if name.eq_ignore_ascii_case("status") {
            let code = value.split(' ').next().and_then(|c| c.parse::<u16>().ok()).filter(|c| (100..=599).contains(c));
            let code = code.ok_or_else(|| format!("bad Status {value:?}"))?;
            status = Some(StatusCode::from_u16(code).map_err(|_| format!("bad Status {value:?}"))?);
            continue;
        }
        let name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| format!("bad header name {name:?}"))?;
        if [CONTENT_LENGTH, hyper::header::CONNECTION, hyper::header::TRANSFER_ENCODING].contains(&name) {
            continue;
        }
        let value = HeaderValue::from_str(value).map_err(|_| format!("bad value of header {name}"))?;
        headers.append(name, value);
    }
    let status = match status {
        Some(code) => code,
        None if headers.contains_key(LOCATION) => StatusCode::FOUND,
        None if headers.contains_key(CONTENT_TYPE) => StatusCode::OK,
        None => return Err("none of Status, Content-Type, Location".into()),
    };
    Ok(Reply { status, headers, body: Bytes::copy_from_slice(&output[body_start..]) })
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cgi_status_headers_and_body() {
        let reply = parse_cgi(b"Content-Type: application/json\r\nStatus: 201 Created\r\nX-A: b\r\n\r\n{}").unwrap();
        assert_eq!(reply.status, StatusCode::CREATED);
        assert_eq!(&reply.body[..], b"{}");
        assert_eq!(reply.headers.get("x-a").unwrap(), "b");
        assert_eq!(&parse_cgi(b"Content-Type: text/plain\n\nhi\n\nthere").unwrap().body[..], b"hi\n\nthere");
        assert_eq!(parse_cgi(b"Location: /x\n\n").unwrap().status, StatusCode::FOUND);
        assert_eq!(parse_cgi(NOOP_CGI).unwrap().status, StatusCode::OK);
    }

    #[test]
    fn framing_headers_of_the_guest_are_dropped() {
        let reply = parse_cgi(b"Content-Type: text/plain\nContent-Length: 999\nConnection: close\nTransfer-Encoding: chunked\n\nok").unwrap();
        assert_eq!(reply.headers.len(), 1);
    }

    #[test]
    fn bad_cgi_is_an_error() {
        assert!(parse_cgi(b"hello world").is_err());
        assert!(parse_cgi(b"X-Only: 1\n\nbody").is_err());
        assert!(parse_cgi(b"Status: abc\n\n").is_err());
        assert!(parse_cgi(b"no colon here\n\n").is_err());
        assert!(parse_cgi(b"Bad Name: x\nContent-Type: text/plain\n\n").is_err());
        assert!(parse_cgi(b"Content-Type: a\x01b\n\n").is_err());
    }

    #[test]
    fn settings_only_when_asked() {
        assert!(Settings::from_env(&["A=b".into()]).unwrap().is_none());
        let settings = Settings::from_env(&[format!("{LISTEN_ENV}=127.0.0.1:0"), "LABREPORT_WAGI_CONCURRENCY=3".into()]).unwrap().unwrap();
        assert_eq!(settings.concurrency, 3);
        assert!(Settings::from_env(&[format!("{LISTEN_ENV}=nope")]).is_err());
        assert!(Settings::from_env(&[format!("{LISTEN_ENV}=127.0.0.1:1"), "LABREPORT_WAGI_TIMEOUT_MS=0".into()]).is_err());
    }

    #[test]
    fn a_pool_for_the_guests_that_may_run_at_once() {
        let settings = Settings::from_env(&[format!("{LISTEN_ENV}=127.0.0.1:0"), "LABREPORT_WAGI_CONCURRENCY=4".into()]).unwrap().unwrap();
        let (_, allocator) = engine(&settings).unwrap();
        assert_eq!(allocator, "pooling allocator, 4 slots, 16 MiB of memory kept resident in each");
        assert!(allocator.starts_with(POOLED));
    }
}
