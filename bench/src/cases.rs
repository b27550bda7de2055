//! The catalogue of cases and how each one is set up, in this process or across processes.

use std::path::Path;

use mcp_transport_stdio::ChildConfig;
use tokio::process::Command;

use crate::driver::{Driver, LinesDriver};
use crate::floors::{self, FloorKind};
use crate::ours::{self, DevCert, OurKind, SessionDriver};
use crate::peers::{self, RmcpDriver};
use crate::process::Launcher;
use crate::{BenchError, Exchange, Size};

/// Where the server runs relative to the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Placement {
    /// Client and server tasks in one process, one runtime: the cost of the code path.
    InProcess,
    /// The server in its own process, as deployed.
    CrossProcess,
    /// The server in its own process behind a lossy, delayed link (netem).
    Lossy,
}

impl Placement {
    /// The label used in tables.
    pub fn label(self) -> &'static str {
        match self {
            Placement::InProcess => "in-process",
            Placement::CrossProcess => "cross-process",
            Placement::Lossy => "lossy link",
        }
    }
}

/// What a case is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// A raw floor: no MCP logic.
    Floor,
    /// One of our transports with the session layer and the reference server.
    Ours,
    /// Another MCP implementation (rmcp).
    Peer,
}

/// What runs on each side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// A raw floor.
    Floor(FloorKind),
    /// Our transport.
    Ours(OurKind),
    /// rmcp client and server over a tokio Unix socket.
    RmcpUds,
    /// rmcp's Streamable HTTP server and its default (reqwest) client.
    RmcpHttp,
    /// rmcp's child-process client and its stdio server.
    RmcpStdio,
    /// One-way messages written in 64 KiB chunks to a raw `UnixStream`, read line by line.
    PipelinedRaw,
    /// One-way messages through our Unix-socket transport: `Sender::feed` → `Receiver::recv`.
    PipelinedOurs,
}

/// One row of the comparison.
#[derive(Debug, Clone, Copy)]
pub struct Case {
    /// Short name, used by `--transports` and budgets.
    pub id: &'static str,
    /// What it measures, for tables.
    pub label: &'static str,
    /// Floor, ours or peer.
    pub role: Role,
    /// What runs.
    pub target: Target,
    /// Payload size class.
    pub size: Size,
    /// The case it is compared with (same placement).
    pub floor: Option<&'static str>,
    /// Whether it runs in-process.
    pub in_process: bool,
    /// Whether it runs cross-process (and, for our network transports, on the lossy link).
    pub cross_process: bool,
}

const fn case(
    id: &'static str,
    label: &'static str,
    role: Role,
    target: Target,
    floor: Option<&'static str>,
    in_process: bool,
    cross_process: bool,
) -> Case {
    Case { id, label, role, target, size: Size::K1, floor, in_process, cross_process }
}

const fn big(mut c: Case) -> Case {
    c.size = Size::K32;
    c
}

use FloorKind as F;
use OurKind as O;

/// Every case, floors first.
pub const CASES: &[Case] = &[
    case("raw-uds", "raw tokio UnixStream echo", Role::Floor, Target::Floor(F::Uds), None, true, true),
    case("raw-tcp", "raw tokio TCP echo, nodelay", Role::Floor, Target::Floor(F::Tcp), None, true, true),
    case("raw-ws", "raw fastwebsockets echo", Role::Floor, Target::Floor(F::Ws), None, true, true),
    case("raw-quic", "raw quinn echo, one stream", Role::Floor, Target::Floor(F::Quic), None, true, true),
    case("raw-http", "raw axum POST echo, pooled hyper", Role::Floor, Target::Floor(F::Http), None, true, true),
    case("raw-pipe", "raw pipe echo, child process", Role::Floor, Target::Floor(F::Pipe), None, false, true),
    case("uds", "ours: Unix socket", Role::Ours, Target::Ours(O::Uds), Some("raw-uds"), true, true),
    case("ws", "ours: WebSocket ws://", Role::Ours, Target::Ours(O::Ws), Some("raw-ws"), true, true),
    case("wss", "ours: WebSocket wss://", Role::Ours, Target::Ours(O::Wss), Some("raw-ws"), true, true),
    case(
        "quic-session",
        "ours: QUIC session mode",
        Role::Ours,
        Target::Ours(O::QuicSession),
        Some("raw-quic"),
        true,
        true,
    ),
    case(
        "quic-request",
        "ours: QUIC request mode",
        Role::Ours,
        Target::Ours(O::QuicRequest),
        Some("raw-quic"),
        true,
        true,
    ),
    case("http", "ours: Streamable HTTP", Role::Ours, Target::Ours(O::Http), Some("raw-http"), true, true),
    case("stdio", "ours: stdio child", Role::Ours, Target::Ours(O::Stdio), Some("raw-pipe"), false, true),
    case("rmcp-uds", "rmcp: over a UnixStream", Role::Peer, Target::RmcpUds, Some("raw-uds"), true, false),
    case(
        "rmcp-http",
        "rmcp: Streamable HTTP, default client",
        Role::Peer,
        Target::RmcpHttp,
        Some("raw-http"),
        true,
        true,
    ),
    case("rmcp-stdio", "rmcp: child-process stdio", Role::Peer, Target::RmcpStdio, Some("raw-pipe"), false, true),
    case(
        "raw-uds-pipelined",
        "raw UnixStream, one way, 64 KiB writes",
        Role::Floor,
        Target::PipelinedRaw,
        None,
        true,
        false,
    ),
    case(
        "uds-pipelined",
        "ours: UDS feed → recv, one way",
        Role::Ours,
        Target::PipelinedOurs,
        Some("raw-uds-pipelined"),
        true,
        false,
    ),
    big(case("raw-quic-32k", "raw quinn echo, 32 KB", Role::Floor, Target::Floor(F::Quic), None, true, false)),
    big(case(
        "quic-session-32k",
        "ours: QUIC session, 32 KB",
        Role::Ours,
        Target::Ours(O::QuicSession),
        Some("raw-quic-32k"),
        true,
        false,
    )),
    big(case(
        "quic-request-32k",
        "ours: QUIC request, 32 KB",
        Role::Ours,
        Target::Ours(O::QuicRequest),
        Some("raw-quic-32k"),
        true,
        false,
    )),
];

/// Looks a case up by id.
pub fn find(id: &str) -> Option<&'static Case> {
    CASES.iter().find(|c| c.id == id)
}

impl Case {
    /// The group of cases compared with each other (measured interleaved): the transport
    /// family.
    pub fn family(&self) -> &'static str {
        match self.target {
            Target::Floor(F::Uds) | Target::Ours(O::Uds) | Target::RmcpUds => "uds",
            Target::Floor(F::Tcp) => "tcp",
            Target::Floor(F::Ws) | Target::Ours(O::Ws | O::Wss) => "ws",
            Target::Floor(F::Quic) | Target::Ours(O::QuicSession | O::QuicRequest) => "quic",
            Target::Floor(F::Http) | Target::Ours(O::Http) | Target::RmcpHttp => "http",
            Target::Floor(F::Pipe) | Target::Ours(O::Stdio) | Target::RmcpStdio => "pipe",
            Target::PipelinedRaw | Target::PipelinedOurs => "pipelined",
        }
    }

    /// Whether this case runs on the lossy link (our network transports).
    pub fn on_lossy_link(&self) -> bool {
        self.cross_process && matches!(self.target, Target::Ours(O::Ws | O::QuicSession | O::QuicRequest | O::Http))
    }
}

/// What setting cases up needs.
#[derive(Debug)]
pub struct Env {
    /// Sockets and certificates.
    pub dir: tempfile::TempDir,
    /// The certificate of `wss://` servers.
    pub cert: DevCert,
    /// How to start server processes; cross-process cases need it.
    pub launcher: Option<Launcher>,
    /// For the lossy link: the command prefix that runs servers in the other network
    /// namespace, and the address they bind.
    pub remote: Option<(Vec<String>, String)>,
}

/// A case ready to measure.
pub struct Setup {
    /// The client.
    pub driver: Box<dyn Driver>,
    /// The server's process id when it runs in its own process.
    pub server_pid: Option<u32>,
}

fn floor_role(kind: FloorKind) -> &'static str {
    match kind {
        F::Uds => "raw-uds",
        F::Tcp => "raw-tcp",
        F::Ws => "raw-ws",
        F::Quic => "raw-quic",
        F::Http => "raw-http",
        F::Pipe => "raw-pipe",
    }
}

fn floor_listen(kind: FloorKind, dir: &Path) -> String {
    match kind {
        F::Uds => dir.join(format!("floor-{}.sock", crate::unique())).display().to_string(),
        _ => "127.0.0.1:0".to_owned(),
    }
}

fn role_args(role: &str, listen: &str, size: Size) -> Vec<String> {
    let mut args = vec!["bench".into(), "--serve-role".into(), role.into(), "--size".into(), size.label().into()];
    if !listen.is_empty() {
        args.extend(["--listen".into(), listen.to_owned()]);
    }
    args.extend(["--log-format".into(), "json".into()]);
    args
}

/// Sets a case up.
pub async fn setup(case: &Case, placement: Placement, env: &Env) -> Result<Setup, BenchError> {
    let exchange = Exchange::new(case.size);
    if placement == Placement::InProcess {
        return in_process(case, env, &exchange).await;
    }
    let launcher = env.launcher.as_ref().ok_or_else(|| BenchError::Setup {
        case: case.id.into(),
        reason: "server processes need a launcher (the mcpt binary)".into(),
    })?;
    let (prefix, host) = match (placement, &env.remote) {
        (Placement::Lossy, Some((prefix, host))) => (prefix.clone(), host.clone()),
        (Placement::Lossy, None) => {
            return Err(BenchError::Setup { case: case.id.into(), reason: "no lossy link was set up".into() });
        }
        _ => (Vec::new(), "127.0.0.1".to_owned()),
    };
    match case.target {
        Target::Floor(F::Pipe) => {
            let mut child = launcher
                .command(&prefix, role_args("raw-pipe", "", case.size))
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::null())
                .spawn()
                .map_err(|e| BenchError::Setup { case: case.id.into(), reason: e.to_string() })?;
            let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
                unreachable!("both were piped")
            };
            let pid = child.id();
            let lines = LinesDriver::new(stdout, stdin, &exchange.request, exchange.response.len());
            Ok(Setup { driver: Box::new(Guarded { inner: lines, _guard: child }), server_pid: pid })
        }
        Target::Floor(kind) => {
            let args = role_args(floor_role(kind), &floor_listen(kind, env.dir.path()), case.size);
            let server = launcher.start(&prefix, &args, 1).await?;
            let driver = floors::connect(kind, &server.endpoints[0], &exchange).await?;
            let pid = server.pid();
            Ok(Setup { driver: Box::new(Guarded { inner: driver, _guard: server }), server_pid: pid })
        }
        Target::Ours(O::Stdio) => {
            let config = ChildConfig::new(&launcher.program).args(["serve", "--listen", "stdio:"]);
            let mut child = mcp_transport_stdio::spawn(config)
                .map_err(|e| BenchError::Setup { case: case.id.into(), reason: e.to_string() })?;
            let pid = child.pid();
            let transport = child.take_transport().expect("a fresh child has its transport");
            let driver = SessionDriver::start(transport, &exchange, Box::new(child)).await?;
            Ok(Setup { driver: Box::new(driver), server_pid: Some(pid) })
        }
        Target::Ours(kind) => {
            let server = launcher.start(&prefix, &ours::serve_args(kind, env.dir.path(), &env.cert, &host), 1).await?;
            let transport = ours::connect_transport(kind, &server.endpoints[0], &env.cert).await?;
            let pid = server.pid();
            let driver = SessionDriver::start(transport, &exchange, Box::new(server)).await?;
            Ok(Setup { driver: Box::new(driver), server_pid: pid })
        }
        Target::RmcpHttp => {
            let server = launcher.start(&prefix, &role_args("rmcp-http", &format!("{host}:0"), case.size), 1).await?;
            let transport = rmcp::transport::StreamableHttpClientTransport::from_uri(server.endpoints[0].clone());
            let pid = server.pid();
            let driver = RmcpDriver::start(transport, &exchange, Box::new(server)).await?;
            Ok(Setup { driver: Box::new(driver), server_pid: pid })
        }
        Target::RmcpStdio => {
            let command: Command = launcher.command(&prefix, role_args("rmcp-stdio", "", case.size));
            let (transport, _) = rmcp::transport::TokioChildProcess::builder(command)
                .stderr(std::process::Stdio::null())
                .spawn()
                .map_err(|e| BenchError::Setup { case: case.id.into(), reason: e.to_string() })?;
            let pid = transport.id();
            let driver = RmcpDriver::start(transport, &exchange, Box::new(())).await?;
            Ok(Setup { driver: Box::new(driver), server_pid: pid })
        }
        Target::RmcpUds | Target::PipelinedRaw | Target::PipelinedOurs => {
            Err(BenchError::Setup { case: case.id.into(), reason: "runs in-process only".into() })
        }
    }
}

async fn in_process(case: &Case, env: &Env, exchange: &Exchange) -> Result<Setup, BenchError> {
    let driver: Box<dyn Driver> = match case.target {
        Target::Floor(kind) => {
            let endpoint = floors::start_server(kind, &floor_listen(kind, env.dir.path()), exchange).await?;
            floors::connect(kind, &endpoint, exchange).await?
        }
        Target::Ours(kind) => {
            let endpoint = ours::start_server(kind, env.dir.path(), &env.cert).await?;
            let transport = ours::connect_transport(kind, &endpoint, &env.cert).await?;
            Box::new(SessionDriver::start(transport, exchange, Box::new(())).await?)
        }
        Target::RmcpUds => {
            let path = env.dir.path().join(format!("rmcp-{}.sock", crate::unique()));
            peers::serve_uds(&path)?;
            let stream = tokio::net::UnixStream::connect(&path)
                .await
                .map_err(|e| BenchError::Setup { case: case.id.into(), reason: e.to_string() })?;
            Box::new(RmcpDriver::start(stream, exchange, Box::new(())).await?)
        }
        Target::RmcpHttp => {
            let url = peers::serve_http("127.0.0.1:0").await?;
            let transport = rmcp::transport::StreamableHttpClientTransport::from_uri(url);
            Box::new(RmcpDriver::start(transport, exchange, Box::new(())).await?)
        }
        Target::RmcpStdio => {
            return Err(BenchError::Setup { case: case.id.into(), reason: "runs cross-process only".into() });
        }
        Target::PipelinedRaw | Target::PipelinedOurs => {
            return Err(BenchError::Setup {
                case: case.id.into(),
                reason: "measured one way, not by round trips".into(),
            });
        }
    };
    Ok(Setup { driver, server_pid: None })
}

/// A driver that keeps something (a child process) alive as long as it lives.
struct Guarded<D, G> {
    inner: D,
    _guard: G,
}

impl<D: Driver, G: Send> Driver for Guarded<D, G> {
    fn round_trip(&mut self) -> mcp_transport_core::transport::BoxFuture<'_, Result<(), BenchError>> {
        self.inner.round_trip()
    }

    fn burst(&mut self, k: usize) -> mcp_transport_core::transport::BoxFuture<'_, Result<(), BenchError>> {
        self.inner.burst(k)
    }
}

impl Driver for Box<dyn Driver> {
    fn round_trip(&mut self) -> mcp_transport_core::transport::BoxFuture<'_, Result<(), BenchError>> {
        (**self).round_trip()
    }

    fn burst(&mut self, k: usize) -> mcp_transport_core::transport::BoxFuture<'_, Result<(), BenchError>> {
        (**self).burst(k)
    }
}

/// Runs a hidden server role in this process (what `mcpt bench --serve-role` does): binds,
/// logs the endpoint as `endpoint`, and serves until the process is stopped or, for the
/// stdio roles, until stdin closes.
pub async fn serve_role(role: &str, listen: Option<&str>, size: Size) -> Result<(), BenchError> {
    let exchange = Exchange::new(size);
    let fail = |reason: String| BenchError::Setup { case: role.to_owned(), reason };
    let kind = match role {
        "raw-pipe" => {
            let mut line = exchange.response.clone();
            line.push(b'\n');
            let (stdin, stdout) = nonblocking_stdio().map_err(|e| fail(e.to_string()))?;
            crate::driver::serve_lines(stdin, stdout, &line).await;
            return Ok(());
        }
        "rmcp-stdio" => return peers::serve_stdio().await,
        "rmcp-http" => {
            let url = peers::serve_http(listen.unwrap_or("127.0.0.1:0")).await?;
            tracing::info!(endpoint = %url, "serving rmcp");
            return std::future::pending().await;
        }
        other => ["raw-uds", "raw-tcp", "raw-ws", "raw-quic", "raw-http"]
            .iter()
            .position(|r| *r == other)
            .map(|i| [F::Uds, F::Tcp, F::Ws, F::Quic, F::Http][i])
            .ok_or_else(|| fail(format!("unknown role {other:?}")))?,
    };
    let listen = listen.ok_or_else(|| fail("needs --listen".into()))?;
    let endpoint = floors::start_server(kind, listen, &exchange).await?;
    tracing::info!(endpoint = %endpoint, "serving a raw floor");
    std::future::pending().await
}

/// This process's stdin and stdout as non-blocking pipe ends (tokio's own `stdin()` reads on
/// a blocking thread, which would not be a floor).
fn nonblocking_stdio() -> std::io::Result<(tokio::net::unix::pipe::Receiver, tokio::net::unix::pipe::Sender)> {
    use std::os::fd::AsFd;
    let stdin = std::io::stdin().as_fd().try_clone_to_owned()?;
    let stdout = std::io::stdout().as_fd().try_clone_to_owned()?;
    Ok((
        tokio::net::unix::pipe::Receiver::from_owned_fd(stdin)?,
        tokio::net::unix::pipe::Sender::from_owned_fd(stdout)?,
    ))
}
