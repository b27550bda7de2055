//! The soak: many concurrent clients making mixed calls through the gateway to upstream
//! servers on several transports, all on loopback, for a bounded time; what `mcpt soak` runs.
//!
//! Processes: one `mcpt serve` per upstream transport (Unix socket, WebSocket, QUIC,
//! Streamable HTTP; a stdio upstream is a child the gateway starts), and `mcpt gateway`
//! listening on the downstream transports. The clients run in this process, spread over the
//! downstream transports; each holds one 2025-11-25 session and makes calls one after the
//! other (echo with a text unique to the call, payloads, short sleeps, `tools/list`, `ping`),
//! checking every answer against its call. While they run, the resident memory and open file
//! descriptors of every server process are sampled; after they leave, the descriptors must
//! return to where they started.

mod client;
pub mod monitor;
pub mod report;

use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use mcp_transport_core::{Limits, Transport};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::BenchError;
use crate::process::{Launcher, ServerProcess};
use crate::soak::client::{Shared, Tally};
use crate::soak::monitor::{Sample, Watched};
use crate::soak::report::SoakReport;

/// A transport an upstream server listens on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upstream {
    /// A Unix socket.
    Unix,
    /// WebSocket (`ws://`).
    Ws,
    /// QUIC, the certificate pinned by fingerprint.
    Quic,
    /// Streamable HTTP (`http://`).
    Http,
    /// A child process on stdio, started by the gateway.
    Stdio,
}

impl Upstream {
    /// Every upstream transport.
    pub const ALL: [Upstream; 5] = [Upstream::Unix, Upstream::Ws, Upstream::Quic, Upstream::Http, Upstream::Stdio];

    /// Its name: `unix`, `ws`, `quic`, `http` or `stdio` (also the upstream's name in the gateway).
    pub fn name(self) -> &'static str {
        match self {
            Upstream::Unix => "unix",
            Upstream::Ws => "ws",
            Upstream::Quic => "quic",
            Upstream::Http => "http",
            Upstream::Stdio => "stdio",
        }
    }

    /// The upstream transport named `s`.
    pub fn parse(s: &str) -> Option<Upstream> {
        Upstream::ALL.into_iter().find(|u| u.name() == s)
    }
}

/// A transport the clients reach the gateway over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Downstream {
    /// A Unix socket.
    Unix,
    /// WebSocket (`ws://`).
    Ws,
    /// Streamable HTTP (`http://`).
    Http,
}

impl fmt::Display for Downstream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl Downstream {
    /// Every downstream transport.
    pub const ALL: [Downstream; 3] = [Downstream::Unix, Downstream::Ws, Downstream::Http];

    /// Its name: `unix`, `ws` or `http`.
    pub fn name(self) -> &'static str {
        match self {
            Downstream::Unix => "unix",
            Downstream::Ws => "ws",
            Downstream::Http => "http",
        }
    }

    /// The downstream transport named `s`.
    pub fn parse(s: &str) -> Option<Downstream> {
        Downstream::ALL.into_iter().find(|d| d.name() == s)
    }

    /// The gateway listener for it, with a fresh socket path under `dir` for Unix sockets.
    fn listen_url(self, dir: &Path) -> String {
        match self {
            Downstream::Unix => format!("unix://{}", dir.join("gateway.sock").display()),
            Downstream::Ws => "ws://127.0.0.1:0/mcp".to_owned(),
            Downstream::Http => "http://127.0.0.1:0/mcp".to_owned(),
        }
    }

    /// Whether the gateway logged `endpoint` as its listener for this transport.
    fn owns(self, endpoint: &str) -> bool {
        match self {
            Downstream::Unix => endpoint.starts_with("unix:"),
            Downstream::Ws => endpoint.starts_with("ws:"),
            Downstream::Http => endpoint.starts_with("http:") && endpoint.ends_with("/mcp"),
        }
    }

    /// Connects a client transport to `endpoint`.
    async fn connect(self, endpoint: &str) -> Result<Transport, String> {
        let limits = Limits::default();
        match self {
            Downstream::Unix => {
                let addr = mcp_transport_uds::UdsAddr::parse(endpoint).map_err(|e| e.to_string())?;
                let config = mcp_transport_uds::UdsConfig { limits, ..Default::default() };
                mcp_transport_uds::connect(&addr, &config).await.map_err(|e| e.to_string())
            }
            Downstream::Ws => {
                let config = mcp_transport_ws::WsClientConfig { limits, ..Default::default() };
                mcp_transport_ws::connect(endpoint, &config).await.map_err(|e| e.to_string())
            }
            Downstream::Http => {
                let config = mcp_transport_http::HttpClientConfig { limits, ..Default::default() };
                mcp_transport_http::connect(endpoint, config).await.map_err(|e| e.to_string())
            }
        }
    }
}

/// What to run.
#[derive(Debug, Clone)]
pub struct SoakOptions {
    /// Starts `mcpt serve` and `mcpt gateway` children.
    pub launcher: Launcher,
    /// Concurrent clients.
    pub clients: usize,
    /// How long the clients make calls.
    pub duration: Duration,
    /// Upstream transports, one server each.
    pub upstreams: Vec<Upstream>,
    /// Downstream transports, the clients spread over them in turn.
    pub downstreams: Vec<Downstream>,
    /// How long one call may take before it counts as lost.
    pub call_timeout: Duration,
    /// Interval between resource samples.
    pub sample_every: Duration,
    /// How long the gateway's descriptors may take to return to the start after the clients
    /// leave.
    pub settle: Duration,
}

/// Clients connecting at the same time (the rest wait their turn).
const CONNECTING_AT_ONCE: usize = 64;

/// Runs the soak and reports what it saw.
pub async fn run(options: SoakOptions) -> Result<SoakReport, BenchError> {
    if options.clients == 0 || options.upstreams.is_empty() || options.downstreams.is_empty() {
        return Err(setup("the soak needs at least one client, one upstream and one downstream transport"));
    }
    raise_fd_limit(options.clients)?;
    let dir = tempfile::tempdir().map_err(|e| setup(format!("temporary directory: {e}")))?;
    let mut servers: Vec<(Upstream, ServerProcess)> = Vec::new();
    for &up in options.upstreams.iter().filter(|u| **u != Upstream::Stdio) {
        let listen = match up {
            Upstream::Unix => format!("unix://{}", dir.path().join("upstream.sock").display()),
            Upstream::Ws => "ws://127.0.0.1:0/mcp".to_owned(),
            Upstream::Quic => "quic://127.0.0.1:0".to_owned(),
            Upstream::Http => "http://127.0.0.1:0/mcp".to_owned(),
            Upstream::Stdio => unreachable!("filtered out above"),
        };
        let args = ["serve", "--listen", &listen, "--log-format", "json"].map(str::to_owned);
        servers.push((up, options.launcher.start(&[], &args, 1).await?));
    }
    let config = gateway_config(&options, dir.path(), &servers);
    let config_path = dir.path().join("gateway.toml");
    std::fs::write(&config_path, config).map_err(|e| setup(format!("{}: {e}", config_path.display())))?;
    let args = ["gateway", "--config", &config_path.display().to_string(), "--log-format", "json"].map(str::to_owned);
    let gateway = options.launcher.start(&[], &args, options.downstreams.len() + 1).await?;
    let admin = gateway
        .endpoints
        .iter()
        .find(|e| e.starts_with("http:") && !e.ends_with("/mcp"))
        .ok_or_else(|| setup(format!("the gateway logged no admin endpoint: {:?}", gateway.endpoints)))?
        .clone();
    wait_ready(&admin).await?;
    let endpoints: Vec<(Downstream, String)> = options
        .downstreams
        .iter()
        .map(|&d| {
            gateway
                .endpoints
                .iter()
                .find(|e| d.owns(e))
                .map(|e| (d, e.clone()))
                .ok_or_else(|| setup(format!("the gateway logged no {d} listener: {:?}", gateway.endpoints)))
        })
        .collect::<Result<_, _>>()?;

    let gateway_pid = gateway.pid().ok_or_else(|| setup("the gateway exited"))?;
    let mut watched = vec![Watched { name: "gateway".into(), pid: gateway_pid }];
    for (up, server) in &servers {
        let pid = server.pid().ok_or_else(|| setup(format!("the {} upstream exited", up.name())))?;
        watched.push(Watched { name: format!("upstream {}", up.name()), pid });
    }
    if options.upstreams.contains(&Upstream::Stdio) {
        for pid in monitor::children(gateway_pid) {
            watched.push(Watched { name: "upstream stdio (child of the gateway)".into(), pid });
        }
    }
    let before = monitor::sample(&watched, Duration::ZERO, 0);

    let started = Instant::now();
    let shared = Arc::new(Shared {
        upstreams: options.upstreams.iter().map(|u| u.name().to_owned()).collect(),
        separator: SEPARATOR.to_owned(),
        deadline: started + options.duration,
        call_timeout: options.call_timeout,
        answered: AtomicU64::new(0),
    });
    let connecting = Arc::new(Semaphore::new(CONNECTING_AT_ONCE));
    let connected = Arc::new(AtomicU64::new(0));
    let mut clients = JoinSet::new();
    for index in 0..options.clients {
        let (via, endpoint) = endpoints[index % endpoints.len()].clone();
        let shared = shared.clone();
        let connecting = connecting.clone();
        let connected = connected.clone();
        clients.spawn(async move {
            let permit = connecting.acquire_owned().await;
            let tally = client::run(index, via, endpoint, shared, move || {
                drop(permit);
                connected.fetch_add(1, Ordering::Relaxed);
            })
            .await;
            (via, tally)
        });
    }
    tracing::info!(clients = options.clients, "soak started");

    let mut samples: Vec<Sample> = Vec::new();
    let mut all_connected_after = None;
    let mut per_via: Vec<(Downstream, Tally)> = Vec::new();
    let mut failures = Vec::new();
    let mut ticker = tokio::time::interval(options.sample_every);
    let mut peak_fds = before.fds.clone();
    loop {
        tokio::select! {
            done = clients.join_next() => match done {
                Some(Ok((via, t))) => {
                    if let Some(f) = &t.failure { failures.push(f.clone()); }
                    match per_via.iter_mut().find(|(v, _)| *v == via) {
                        Some((_, tally)) => tally.merge(t),
                        None => per_via.push((via, t)),
                    }
                }
                Some(Err(e)) => failures.push(format!("a client task failed: {e}")),
                None => break,
            },
            _ = ticker.tick() => {
                let s = monitor::sample(&watched, started.elapsed(), shared.answered.load(Ordering::Relaxed));
                for (peak, now) in peak_fds.iter_mut().zip(&s.fds) { *peak = (*peak).max(*now); }
                let now_connected = connected.load(Ordering::Relaxed) as usize;
                if all_connected_after.is_none() && now_connected == options.clients {
                    all_connected_after = Some(started.elapsed());
                }
                samples.push(s);
            }
        }
    }
    let load_time = started.elapsed();
    tracing::info!("clients done; waiting for the servers to release their descriptors");

    // After the clients leave: the descriptors go back to where they started.
    let settle_until = Instant::now() + options.settle;
    let after = loop {
        let s = monitor::sample(&watched, started.elapsed(), shared.answered.load(Ordering::Relaxed));
        if s.fds.iter().zip(&before.fds).all(|(now, start)| now <= start) || Instant::now() >= settle_until {
            break s;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let settled_after = started.elapsed() - load_time;
    drop(gateway);
    drop(servers);
    failures.sort();
    failures.dedup();
    Ok(report::build(report::Inputs {
        options: &options,
        watched,
        before,
        after,
        samples,
        peak_fds,
        per_via,
        failures,
        load_time,
        all_connected_after,
        settled_after,
    }))
}

/// The separator of the gateway's namespaced names.
pub(crate) const SEPARATOR: &str = "__";

/// The gateway configuration: the listeners, the admin endpoint and one upstream per server.
fn gateway_config(options: &SoakOptions, dir: &Path, servers: &[(Upstream, ServerProcess)]) -> String {
    let listen: Vec<String> = options.downstreams.iter().map(|d| format!("{:?}", d.listen_url(dir))).collect();
    let mut text = format!("separator = \"{SEPARATOR}\"\nlisten = [{}]\nadmin = \"127.0.0.1:0\"\n", listen.join(", "));
    let timeout = options.call_timeout.as_secs().max(1);
    for &up in &options.upstreams {
        text.push_str(&format!(
            "\n[[upstream]]\nname = \"{}\"\nrequired = true\nrequest_timeout = \"{timeout}s\"\n",
            up.name()
        ));
        if up == Upstream::Http {
            // Pooled connections from a burst are closed 2 s after it, well within the time
            // the soak waits for descriptors to return to the start.
            text.push_str("idle_timeout = \"2s\"\n");
        }
        match servers.iter().find(|(u, _)| *u == up) {
            Some((_, server)) => text.push_str(&format!("url = {:?}\n", server.endpoints[0])),
            None => {
                let program = options.launcher.program.display().to_string();
                text.push_str(&format!("command = [{program:?}, \"serve\", \"--listen\", \"stdio:\"]\n"));
            }
        }
    }
    text
}

/// Polls the gateway's `/readyz` until every upstream is connected.
async fn wait_ready(admin: &str) -> Result<(), BenchError> {
    let addr = admin.trim_start_matches("http://").to_owned();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut last = String::new();
    while Instant::now() < deadline {
        match readyz(&addr).await {
            Ok(status) if status.starts_with("HTTP/1.1 200") || status.starts_with("HTTP/1.0 200") => return Ok(()),
            Ok(status) => last = status,
            Err(e) => last = e.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(setup(format!("the gateway's upstreams were not all ready within 30 s: /readyz said {last:?}")))
}

/// The status line of `GET /readyz`.
async fn readyz(addr: &str) -> std::io::Result<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    stream.write_all(format!("GET /readyz HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n\r\n").as_bytes()).await?;
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), stream.take(4096).read_to_end(&mut buf))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "no answer from /readyz"))??;
    Ok(String::from_utf8_lossy(&buf).lines().next().unwrap_or_default().to_owned())
}

/// Makes sure this process (and the children it starts) may open a descriptor per client and
/// then some: raises the soft limit up to the hard one when needed.
fn raise_fd_limit(clients: usize) -> Result<(), BenchError> {
    let needed = clients as u64 * 2 + 256;
    let (soft, hard) = rlimit::getrlimit(rlimit::Resource::NOFILE).map_err(|e| setup(format!("getrlimit: {e}")))?;
    if soft >= needed {
        return Ok(());
    }
    if hard < needed {
        return Err(setup(format!(
            "{clients} clients need about {needed} open files, and the hard limit is {hard} (raise it, e.g. ulimit -Hn)"
        )));
    }
    rlimit::setrlimit(rlimit::Resource::NOFILE, needed, hard).map_err(|e| setup(format!("setrlimit: {e}")))
}

/// A setup error of the soak.
fn setup(reason: impl Into<String>) -> BenchError {
    BenchError::Setup { case: "soak".into(), reason: reason.into() }
}
