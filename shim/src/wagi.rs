//! WAGI serving: the shim answers HTTP requests by running the module once per request, with the
//! CGI convention (the request in the environment and on stdin, the response on stdout), as
//! Spin's WAGI executor does for preview-1 modules. A WASI preview-1 guest cannot open a socket,
//! so the host side listens.
//!
//! A container asks for it with `LABREPORT_WAGI_LISTEN=ADDR:PORT` in its environment; that
//! variable and the other `LABREPORT_WAGI_*` settings are the shim's, never the guest's. The
//! listener is bound in `run_wasi`, which runs in the container's init process after its
//! namespaces are applied: it lives in the container's network namespace (`docker run -p`
//! maps a port into it; `ctr run --net-host` has none of its own).
//!
//! The module is compiled (or, by the caching shim, mapped from its file cache) once per
//! container; every request gets a fresh `Store` and instance from one `InstancePre`, so
//! requests share nothing. Bounds: at most `concurrency` guests run at once, a guest that runs
//! longer than `timeout` is stopped by an epoch deadline (504), a request body larger than
//! `max_body` is refused (413), a guest's output is capped, and a guest's linear memory is
//! limited. A guest that traps gives 500, a response that is not CGI gives 502; the server
//! keeps serving. SIGTERM or SIGINT stops it (exit 0); SIGKILL kills it like any task.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use wasmtime::{Engine, InstancePre, Linker, Module, Store, StoreLimits, StoreLimitsBuilder, Trap};
use wasmtime_wasi::p1::{self, WasiP1Ctx};
use wasmtime_wasi::p2::pipe::{MemoryInputPipe, MemoryOutputPipe};
use wasmtime_wasi::{FsPerms, I32Exit, WasiCtxBuilder};

/// Every variable with this prefix is a setting of the shim's, removed from the guest's env.
pub const PREFIX: &str = "LABREPORT_WAGI_";
pub const LISTEN_ENV: &str = "LABREPORT_WAGI_LISTEN";
const TICK: Duration = Duration::from_millis(10);
const MAX_HEAD_BYTES: u64 = 16 * 1024;
const IDLE_CONNECTION: Duration = Duration::from_secs(30);
const MAX_CONNECTIONS: usize = 1024;

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
}

/// Serves until SIGTERM/SIGINT; blocks. The engine must have epoch interruption on (the
/// timeout). Runs its own runtime on a thread of its own: the caller's runtime may be one
/// whose workers did not survive the fork into the container.
pub fn serve(engine: Engine, module: Module, args: Vec<String>, envs: Vec<(String, String)>, func: String, settings: Settings) -> Result<i32> {
    let mut linker: Linker<Guest> = Linker::new(&engine);
    p1::add_to_linker_async(&mut linker, |guest: &mut Guest| &mut guest.wasi).map_err(crate::wasm_err)?;
    let pre = linker.instantiate_pre(&module).map_err(crate::wasm_err)?;
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get()).max(2);
    let _ticker = Ticker::start(engine.clone());
    std::thread::spawn(move || -> Result<i32> {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(workers).enable_all().build()?;
        let result = runtime.block_on(async move {
            let listener = TcpListener::bind(settings.listen).await.with_context(|| format!("listening on {}", settings.listen))?;
            let local = listener.local_addr()?;
            let guests = Semaphore::new(settings.concurrency);
            let server = Arc::new(Server { engine, pre, func, args, envs, settings, guests, local });
            eprintln!("labreport-wagi: serving on {local}");
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
                            let _ = server.connection(stream, peer).await;
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

/// A parsed request head and its body.
struct Request {
    method: String,
    target: String,
    version: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

/// Why a request could not be read: the peer went away, or an error answer and close.
enum Refusal {
    Gone,
    Answer(u16, String),
}

/// A response: status, headers (without Content-Length and Connection), body.
struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Response {
    fn error(status: u16, message: impl Into<String>) -> Response {
        let mut body = message.into().into_bytes();
        body.push(b'\n');
        Response { status, headers: vec![("Content-Type".into(), "text/plain; charset=utf-8".into())], body }
    }
}

impl Server {
    async fn connection(self: Arc<Self>, stream: TcpStream, peer: SocketAddr) -> Result<()> {
        stream.set_nodelay(true)?;
        let (read, mut write) = stream.into_split();
        let mut reader = BufReader::new(read);
        loop {
            let request = match tokio::time::timeout(IDLE_CONNECTION, read_request(&mut reader, self.settings.max_body)).await {
                Err(_) | Ok(Err(Refusal::Gone)) => return Ok(()),
                Ok(Err(Refusal::Answer(status, message))) => {
                    write_response(&mut write, &Response::error(status, message), false, false).await?;
                    return Ok(());
                }
                Ok(Ok(request)) => request,
            };
            let keep_alive = wants_keep_alive(&request);
            let head = request.method == "HEAD";
            let response = self.answer(request, peer).await;
            write_response(&mut write, &response, keep_alive, head).await?;
            if !keep_alive {
                return Ok(());
            }
        }
    }

    /// One request: a fresh instance, the CGI environment, the guest's stdout as the response.
    async fn answer(&self, request: Request, peer: SocketAddr) -> Response {
        let Ok(_permit) = self.guests.acquire().await else {
            return Response::error(503, "labreport-wagi: shutting down");
        };
        let stdout = MemoryOutputPipe::new(self.settings.max_output);
        let mut builder = WasiCtxBuilder::new();
        builder
            .inherit_stderr()
            .stdout(stdout.clone())
            .args(&self.args)
            .envs(&self.envs)
            .envs(&cgi_env(&request, peer, self.local));
        builder.stdin(MemoryInputPipe::new(request.body));
        if let Err(error) = builder.preopened_dir("/", "/", FsPerms::ReadOnly) {
            return Response::error(500, format!("labreport-wagi: preopening /: {error:?}"));
        }
        let guest = Guest { wasi: builder.build_p1(), limits: StoreLimitsBuilder::new().memory_size(self.settings.max_memory).instances(1).build() };
        let mut store = Store::new(&self.engine, guest);
        store.limiter(|guest| &mut guest.limits);
        let ticks = (self.settings.timeout.as_millis() / TICK.as_millis()).max(1) as u64;
        store.set_epoch_deadline(ticks);
        store.epoch_deadline_trap();
        let run = async {
            let instance = self.pre.instantiate_async(&mut store).await?;
            let start = instance.get_typed_func::<(), ()>(&mut store, &self.func)?;
            start.call_async(&mut store, ()).await
        };
        // The epoch deadline stops a guest that computes; this one stops a guest that waits in
        // a host call (a sleep) past the deadline.
        let outcome = match tokio::time::timeout(self.settings.timeout + TICK * 10, run).await {
            Err(_) => return timed_out(self.settings.timeout),
            Ok(outcome) => outcome,
        };
        let code = match outcome {
            Ok(()) => 0,
            Err(error) => {
                if let Some(exit) = error.downcast_ref::<I32Exit>() {
                    exit.0
                } else if error.downcast_ref::<Trap>() == Some(&Trap::Interrupt) {
                    return timed_out(self.settings.timeout);
                } else {
                    return Response::error(500, format!("labreport-wagi: the guest trapped: {}", first_line(&format!("{error:?}"))));
                }
            }
        };
        drop(store);
        if code != 0 {
            return Response::error(500, format!("labreport-wagi: the guest exited {code}"));
        }
        let output = stdout.contents();
        match parse_cgi(&output) {
            Ok(response) => response,
            Err(reason) => Response::error(502, format!("labreport-wagi: not a CGI response: {reason}")),
        }
    }
}

fn timed_out(timeout: Duration) -> Response {
    Response::error(504, format!("labreport-wagi: the guest ran longer than {} ms", timeout.as_millis()))
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or_default()
}

fn wants_keep_alive(request: &Request) -> bool {
    let connection = header(&request.headers, "connection").map(str::to_ascii_lowercase);
    match request.version.as_str() {
        "HTTP/1.1" => connection.as_deref() != Some("close"),
        _ => connection.as_deref() == Some("keep-alive"),
    }
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers.iter().find(|(key, _)| key.eq_ignore_ascii_case(name)).map(|(_, value)| value.as_str())
}

/// Reads one request: the head (at most MAX_HEAD_BYTES), then a Content-Length body.
async fn read_request<R: AsyncRead + Unpin>(reader: &mut BufReader<R>, max_body: usize) -> Result<Request, Refusal> {
    let mut head = Vec::new();
    let mut limited = (&mut *reader).take(MAX_HEAD_BYTES);
    loop {
        let before = head.len();
        match limited.read_until(b'\n', &mut head).await {
            Err(_) => return Err(Refusal::Gone),
            Ok(0) if head.is_empty() => return Err(Refusal::Gone),
            Ok(0) => return Err(Refusal::Answer(431, "labreport-wagi: request head too large or cut short".into())),
            Ok(_) => {}
        }
        let line = &head[before..];
        if line == b"\r\n" || line == b"\n" {
            if before == 0 {
                head.clear(); // blank lines before a request are allowed
                continue;
            }
            break;
        }
    }
    let bad = |what: &str| Refusal::Answer(400, format!("labreport-wagi: bad request: {what}"));
    let text = std::str::from_utf8(&head).map_err(|_| bad("head is not UTF-8"))?;
    let mut lines = text.split('\n').map(|l| l.trim_end_matches('\r'));
    let request_line = lines.next().unwrap_or_default();
    let mut parts = request_line.split(' ');
    let (Some(method), Some(target), Some(version), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Err(bad("request line"));
    };
    if method.is_empty() || !method.bytes().all(|b| b.is_ascii_uppercase()) || !target.starts_with('/') || !version.starts_with("HTTP/1.") {
        return Err(bad("request line"));
    }
    let mut headers = Vec::new();
    for line in lines.filter(|l| !l.is_empty()) {
        let (name, value) = line.split_once(':').ok_or_else(|| bad("header line"))?;
        if name.is_empty() || name.bytes().any(|b| !(b.is_ascii_alphanumeric() || b == b'-' || b == b'_')) {
            return Err(bad("header name"));
        }
        headers.push((name.to_string(), value.trim().to_string()));
    }
    if header(&headers, "transfer-encoding").is_some() {
        return Err(Refusal::Answer(411, "labreport-wagi: send a Content-Length body (no chunked requests)".into()));
    }
    let length = match header(&headers, "content-length") {
        None => 0,
        Some(text) => text.parse::<usize>().map_err(|_| bad("Content-Length"))?,
    };
    if length > max_body {
        return Err(Refusal::Answer(413, format!("labreport-wagi: request body of {length} bytes is over the limit of {max_body}")));
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).await.map_err(|_| Refusal::Gone)?;
    Ok(Request { method: method.into(), target: target.into(), version: version.into(), headers, body })
}

/// The CGI/1.1 environment of a request (RFC 3875), headers as HTTP_* (not Proxy: httpoxy).
fn cgi_env(request: &Request, peer: SocketAddr, local: SocketAddr) -> Vec<(String, String)> {
    let (path, query) = request.target.split_once('?').unwrap_or((&request.target, ""));
    let mut env = vec![
        ("GATEWAY_INTERFACE".to_string(), "CGI/1.1".to_string()),
        ("SERVER_SOFTWARE".into(), "labreport-wagi".into()),
        ("SERVER_PROTOCOL".into(), request.version.clone()),
        ("SERVER_NAME".into(), local.ip().to_string()),
        ("SERVER_PORT".into(), local.port().to_string()),
        ("REMOTE_ADDR".into(), peer.ip().to_string()),
        ("REMOTE_PORT".into(), peer.port().to_string()),
        ("REQUEST_METHOD".into(), request.method.clone()),
        ("REQUEST_URI".into(), request.target.clone()),
        ("SCRIPT_NAME".into(), String::new()),
        ("PATH_INFO".into(), path.to_string()),
        ("QUERY_STRING".into(), query.to_string()),
    ];
    if !request.body.is_empty() {
        env.push(("CONTENT_LENGTH".into(), request.body.len().to_string()));
    }
    for (name, value) in &request.headers {
        let key = name.to_ascii_uppercase().replace('-', "_");
        match key.as_str() {
            "CONTENT_TYPE" => env.push((key, value.clone())),
            "CONTENT_LENGTH" | "PROXY" | "CONNECTION" => {}
            _ => env.push((format!("HTTP_{key}"), value.clone())),
        }
    }
    env
}

/// A CGI response: header lines, a blank line, the body. `Status` gives the status (else 302
/// with a `Location`, else 200); at least one of Status, Content-Type, Location is required.
fn parse_cgi(output: &[u8]) -> Result<Response, String> {
    let crlf = find(output, b"\r\n\r\n").map(|i| (i, i + 4));
    let lf = find(output, b"\n\n").map(|i| (i, i + 2));
    let (end, body_start) = match (crlf, lf) {
        (Some(a), Some(b)) => if a.0 <= b.0 { a } else { b },
        (Some(a), None) | (None, Some(a)) => a,
        (None, None) => return Err(format!("no blank line after the headers in {} bytes of output", output.len())),
    };
    let head = std::str::from_utf8(&output[..end]).map_err(|_| "headers are not UTF-8".to_string())?;
    let mut status = None;
    let mut headers = Vec::new();
    for line in head.split('\n').map(|l| l.trim_end_matches('\r')) {
        let (name, value) = line.split_once(':').ok_or_else(|| format!("header line {line:?} has no ':'"))?;
        let (name, value) = (name.trim(), value.trim());
        if name.is_empty() || name.bytes().any(|b| !(b.is_ascii_alphanumeric() || b == b'-' || b == b'_')) {
            return Err(format!("bad header name {name:?}"));
        }
        if name.eq_ignore_ascii_case("status") {
            let code = value.split(' ').next().and_then(|c| c.parse::<u16>().ok()).filter(|c| (100..=599).contains(c));
            status = Some(code.ok_or_else(|| format!("bad Status {value:?}"))?);
        } else if !["content-length", "connection", "transfer-encoding"].iter().any(|h| name.eq_ignore_ascii_case(h)) {
            headers.push((name.to_string(), value.to_string()));
        }
    }
    let status = match status {
        Some(code) => code,
        None if header(&headers, "location").is_some() => 302,
        None if header(&headers, "content-type").is_some() => 200,
        None => return Err("none of Status, Content-Type, Location".into()),
    };
    Ok(Response { status, headers, body: output[body_start..].to_vec() })
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        301 => "Moved Permanently",
        302 => "Found",
        304 => "Not Modified",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        411 => "Length Required",
        413 => "Content Too Large",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "",
    }
}

async fn write_response<W: AsyncWriteExt + Unpin>(write: &mut W, response: &Response, keep_alive: bool, head: bool) -> std::io::Result<()> {
    let mut out = format!("HTTP/1.1 {} {}\r\n", response.status, reason(response.status)).into_bytes();
    for (name, value) in &response.headers {
        out.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
    }
    let connection = if keep_alive { "keep-alive" } else { "close" };
    out.extend_from_slice(format!("Content-Length: {}\r\nConnection: {connection}\r\n\r\n", response.body.len()).as_bytes());
    if !head {
        out.extend_from_slice(&response.body);
    }
    write.write_all(&out).await?;
    write.flush().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cgi_status_headers_and_body() {
        let response = parse_cgi(b"Content-Type: application/json\r\nStatus: 201 Created\r\nX-A: b\r\n\r\n{}").unwrap();
        assert_eq!(response.status, 201);
        assert_eq!(response.body, b"{}");
        assert_eq!(header(&response.headers, "x-a"), Some("b"));
        assert_eq!(parse_cgi(b"Content-Type: text/plain\n\nhi\n\nthere").unwrap().body, b"hi\n\nthere");
        assert_eq!(parse_cgi(b"Location: /x\n\n").unwrap().status, 302);
    }

    #[test]
    fn bad_cgi_is_an_error() {
        assert!(parse_cgi(b"hello world").is_err());
        assert!(parse_cgi(b"X-Only: 1\n\nbody").is_err());
        assert!(parse_cgi(b"Status: abc\n\n").is_err());
        assert!(parse_cgi(b"no colon here\n\n").is_err());
    }

    #[test]
    fn settings_only_when_asked() {
        assert!(Settings::from_env(&["A=b".into()]).unwrap().is_none());
        let settings = Settings::from_env(&[format!("{LISTEN_ENV}=127.0.0.1:0"), "LABREPORT_WAGI_CONCURRENCY=3".into()]).unwrap().unwrap();
        assert_eq!(settings.concurrency, 3);
        assert!(Settings::from_env(&[format!("{LISTEN_ENV}=nope")]).is_err());
        assert!(Settings::from_env(&[format!("{LISTEN_ENV}=127.0.0.1:1"), "LABREPORT_WAGI_TIMEOUT_MS=0".into()]).is_err());
    }
}
