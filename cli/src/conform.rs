//! `mcpt conform`: run the conformance checks against a server.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::ValueEnum;
use mcp_conformance::wire::LineWire;
use mcp_conformance::{Baseline, Budgets, Connector, Options, RawWire, SpecChoice, checks};
use mcp_transport_core::Transport;
use mcp_transport_core::transport::BoxFuture;
use mcp_transport_uds::{UdsAddr, UdsConfig};
use serde_json::Value;

use crate::Endpoint;

/// Arguments of `mcpt conform`.
#[derive(Debug, clap::Args)]
pub(crate) struct ConformArgs {
    /// The server: an endpoint URL (unix:///path.sock, unix:@name, …), or `-- CMD ARGS…` for a
    /// child process speaking stdio.
    #[arg(value_name = "TARGET", value_parser = Endpoint::parse, required_unless_present = "command")]
    target: Option<Endpoint>,
    /// A child process speaking stdio: everything after `--`.
    #[arg(last = true, value_name = "CMD")]
    command: Vec<String>,
    /// The generation to speak: auto (server/discover, else initialize), 2026-07-28,
    /// 2025-11-25, 2025-06-18 or 2025-03-26.
    #[arg(long, default_value = "auto", value_parser = parse_spec)]
    spec: SpecChoice,
    /// Report format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
    /// Write the report here instead of stdout.
    #[arg(long, value_name = "FILE")]
    output: Option<PathBuf>,
    /// A tool the harness may call, with JSON arguments: NAME or NAME={"a":1} (repeatable).
    /// No tool is ever called unless named here. A tool with "echo" in its name is used for
    /// the large-message checks; one with "progress" for the progress and cancellation checks.
    #[arg(long = "call-tool", value_name = "NAME[=JSON]", value_parser = parse_tool)]
    call_tools: Vec<(String, Value)>,
    /// Expected failures, each with a reason (TOML: [[expected]] id = "…" reason = "…").
    #[arg(long, value_name = "FILE")]
    baseline: Option<PathBuf>,
    /// Latency budgets (TOML: ping_p50_ms, ping_p99_ms, tools_list_p50_ms, tools_list_p99_ms).
    #[arg(long, value_name = "FILE")]
    budgets: Option<PathBuf>,
    /// QUIC targets: one stream per request instead of one stream for the session.
    #[arg(long)]
    quic_requests: bool,
    /// Trusted CA certificates (PEM) for wss://, https:// and quic:// targets, instead of the
    /// system roots (QUIC: or pin the certificate with ?fingerprint=sha256:HEX in the URL).
    #[arg(long, value_name = "FILE")]
    ca: Option<PathBuf>,
    /// Deadline of each check, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 15.0)]
    timeout: f64,
    /// Calls per latency measurement.
    #[arg(long, value_name = "N", default_value_t = 200)]
    latency_samples: usize,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Format {
    /// A table for the terminal.
    Text,
    /// JSON.
    Json,
    /// JUnit XML.
    Junit,
}

fn parse_spec(s: &str) -> Result<SpecChoice, String> {
    s.parse()
}

fn parse_tool(s: &str) -> Result<(String, Value), String> {
    match s.split_once('=') {
        None => Ok((s.to_owned(), Value::Object(Default::default()))),
        Some((name, json)) => {
            let args: Value = serde_json::from_str(json).map_err(|e| format!("arguments of {name}: {e}"))?;
            if !args.is_object() {
                return Err(format!("arguments of {name} must be a JSON object"));
            }
            Ok((name.to_owned(), args))
        }
    }
}

fn read_bytes(path: &PathBuf) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))
}

fn read(path: &PathBuf) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))
}

/// A Unix-socket server.
struct Unix {
    addr: UdsAddr,
}

impl Connector for Unix {
    fn describe(&self) -> String {
        self.addr.to_string()
    }

    fn connect(&self) -> BoxFuture<'_, Result<Transport, String>> {
        Box::pin(async move {
            let config = UdsConfig { limits: wide_limits(), ..UdsConfig::default() };
            mcp_transport_uds::connect(&self.addr, &config).await.map_err(|e| e.to_string())
        })
    }

    fn connect_raw(&self) -> BoxFuture<'_, Option<Result<Box<dyn RawWire>, String>>> {
        Box::pin(async move {
            let stream = mcp_transport_uds::connect_stream(&self.addr).await;
            Some(stream.map_err(|e| e.to_string()).map(|s| {
                let (r, w) = s.into_split();
                Box::new(LineWire::new(r, w)) as Box<dyn RawWire>
            }))
        })
    }
}

/// A WebSocket server.
struct Ws {
    url: String,
    config: mcp_transport_ws::WsClientConfig,
}

impl Connector for Ws {
    fn describe(&self) -> String {
        self.url.clone()
    }

    fn connect(&self) -> BoxFuture<'_, Result<Transport, String>> {
        Box::pin(async move { mcp_transport_ws::connect(&self.url, &self.config).await.map_err(|e| e.to_string()) })
    }

    fn connect_raw(&self) -> BoxFuture<'_, Option<Result<Box<dyn RawWire>, String>>> {
        Box::pin(async move {
            // Raw frames over plain ws:// only; wss:// raw checks are skipped with the reason.
            let rest = self.url.strip_prefix("ws://")?;
            let authority = rest.split('/').next().unwrap_or(rest);
            Some(ws_raw(&self.url, authority).await)
        })
    }
}

/// One text frame per payload, with the `mcp` subprotocol, through an independent WebSocket
/// implementation (tokio-tungstenite).
struct WsRawWire {
    ws: tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>,
}

async fn ws_raw(url: &str, authority: &str) -> Result<Box<dyn RawWire>, String> {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let tcp = tokio::net::TcpStream::connect(authority).await.map_err(|e| format!("{authority}: {e}"))?;
    let mut request = url.into_client_request().map_err(|e| e.to_string())?;
    request
        .headers_mut()
        .insert("Sec-WebSocket-Protocol", tokio_tungstenite::tungstenite::http::HeaderValue::from_static("mcp"));
    let (ws, _) = tokio_tungstenite::client_async(request, tcp).await.map_err(|e| e.to_string())?;
    Ok(Box::new(WsRawWire { ws }))
}

impl RawWire for WsRawWire {
    fn send<'a>(&'a mut self, payload: &'a [u8]) -> BoxFuture<'a, std::io::Result<()>> {
        use futures_util::SinkExt;
        Box::pin(async move {
            let text = String::from_utf8_lossy(payload).into_owned();
            self.ws
                .send(tokio_tungstenite::tungstenite::Message::text(text))
                .await
                .map_err(|e| std::io::Error::other(e.to_string()))
        })
    }

    fn recv(&mut self) -> BoxFuture<'_, std::io::Result<Option<Vec<u8>>>> {
        use futures_util::StreamExt;
        Box::pin(async move {
            loop {
                match self.ws.next().await {
                    None => return Ok(None),
                    Some(Err(e)) => return Err(std::io::Error::other(e.to_string())),
                    Some(Ok(tokio_tungstenite::tungstenite::Message::Text(t))) => {
                        return Ok(Some(t.as_bytes().to_vec()));
                    }
                    Some(Ok(tokio_tungstenite::tungstenite::Message::Close(_))) => return Ok(None),
                    Some(Ok(_)) => {}
                }
            }
        })
    }
}

/// A QUIC server.
struct Quic {
    url: String,
    config: mcp_transport_quic::QuicClientConfig,
}

impl Connector for Quic {
    fn describe(&self) -> String {
        self.url.clone()
    }

    fn connect(&self) -> BoxFuture<'_, Result<Transport, String>> {
        Box::pin(async move { mcp_transport_quic::connect(&self.url, &self.config).await.map_err(|e| e.to_string()) })
    }

    fn connect_raw(&self) -> BoxFuture<'_, Option<Result<Box<dyn RawWire>, String>>> {
        Box::pin(async move {
            let raw = async {
                let url = mcp_transport_quic::QuicUrl::parse(&self.url).map_err(|e| e.to_string())?;
                let (endpoint, connection) =
                    mcp_transport_quic::raw::connect(&url, &self.config).await.map_err(|e| e.to_string())?;
                let (send, recv) = connection.open_bi().await.map_err(|e| e.to_string())?;
                let mut wire = LineWire::new(recv, send);
                // The first stream is announced with an empty line (see the transport's docs).
                wire.send(b"").await.map_err(|e| e.to_string())?;
                Ok(Box::new(QuicWire { wire, _connection: connection, _endpoint: endpoint }) as Box<dyn RawWire>)
            };
            Some(raw.await)
        })
    }
}

/// Lines on the first bidirectional stream of a raw quinn connection.
struct QuicWire {
    wire: LineWire<quinn::RecvStream, quinn::SendStream>,
    _connection: quinn::Connection,
    _endpoint: quinn::Endpoint,
}

impl RawWire for QuicWire {
    fn send<'a>(&'a mut self, payload: &'a [u8]) -> BoxFuture<'a, std::io::Result<()>> {
        self.wire.send(payload)
    }

    fn recv(&mut self) -> BoxFuture<'_, std::io::Result<Option<Vec<u8>>>> {
        self.wire.recv()
    }
}

/// A child process speaking stdio, spawned anew for every connection.
struct Child {
    command: Vec<String>,
    children: std::sync::Mutex<Vec<mcp_transport_stdio::StdioChild>>,
}

/// A raw connection to a child: its stdin and stdout as lines; the child is killed on drop.
struct ChildWire {
    wire: LineWire<tokio::process::ChildStdout, tokio::process::ChildStdin>,
    _child: tokio::process::Child,
}

impl RawWire for ChildWire {
    fn send<'a>(&'a mut self, payload: &'a [u8]) -> BoxFuture<'a, std::io::Result<()>> {
        self.wire.send(payload)
    }

    fn recv(&mut self) -> BoxFuture<'_, std::io::Result<Option<Vec<u8>>>> {
        self.wire.recv()
    }
}

impl Connector for Child {
    fn describe(&self) -> String {
        format!("-- {}", self.command.join(" "))
    }

    fn connect(&self) -> BoxFuture<'_, Result<Transport, String>> {
        Box::pin(async move {
            let config =
                mcp_transport_stdio::ChildConfig::new(&self.command[0]).args(&self.command[1..]).limits(wide_limits());
            let mut child = mcp_transport_stdio::spawn(config).map_err(|e| e.to_string())?;
            let transport = child.take_transport().ok_or("the child's transport was already taken")?;
            self.children.lock().unwrap_or_else(|p| p.into_inner()).push(child);
            Ok(transport)
        })
    }

    fn connect_raw(&self) -> BoxFuture<'_, Option<Result<Box<dyn RawWire>, String>>> {
        Box::pin(async move {
            let spawned = tokio::process::Command::new(&self.command[0])
                .args(&self.command[1..])
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::null())
                .kill_on_drop(true)
                .spawn();
            Some(match spawned {
                Err(e) => Err(format!("{}: {e}", self.command[0])),
                Ok(mut child) => match (child.stdout.take(), child.stdin.take()) {
                    (Some(out), Some(inp)) => {
                        Ok(Box::new(ChildWire { wire: LineWire::new(out, inp), _child: child }) as Box<dyn RawWire>)
                    }
                    _ => Err("the child has no stdin or stdout pipe".to_owned()),
                },
            })
        })
    }
}

/// Limits that let the 10 MB checks through.
fn wide_limits() -> mcp_transport_core::Limits {
    mcp_transport_core::Limits { max_message_size: 32 << 20, ..Default::default() }
}

/// Connects to `target`, or to a child process running `command`, with limits wide enough for
/// 10 MB messages; `ca` is trusted for wss://, https:// and quic://.
pub(crate) fn connector(
    target: Option<&Endpoint>,
    command: &[String],
    ca: Option<&PathBuf>,
    quic_requests: bool,
) -> Result<Arc<dyn Connector>, String> {
    let connector: Arc<dyn Connector> = match (target, command.is_empty()) {
        (Some(Endpoint::Unix(url)), true) => Arc::new(Unix { addr: UdsAddr::parse(url).map_err(|e| e.to_string())? }),
        (Some(Endpoint::Ws(url)), true) => {
            let mut config = mcp_transport_ws::WsClientConfig { limits: wide_limits(), ..Default::default() };
            if let Some(ca) = ca {
                config.tls = mcp_transport_ws::ClientTls::PemFile(ca.clone());
            }
            Arc::new(Ws { url: url.clone(), config })
        }
        (Some(Endpoint::Http(url)), true) => {
            let mut config = mcp_transport_http::HttpClientConfig { limits: wide_limits(), ..Default::default() };
            if let Some(ca) = ca {
                let pem = read_bytes(ca)?;
                config.tls = config.tls.with_root_pem(&pem).map_err(|e| format!("{}: {e}", ca.display()))?;
            }
            Arc::new(crate::conform_http::Http { url: url.clone(), config })
        }
        (Some(Endpoint::Quic(url)), true) => {
            let mut config = mcp_transport_quic::QuicClientConfig {
                mode: if quic_requests { mcp_transport_quic::Mode::Request } else { mcp_transport_quic::Mode::Session },
                ca_file: ca.cloned(),
                ..Default::default()
            };
            config.settings.limits = wide_limits();
            Arc::new(Quic { url: url.clone(), config })
        }
        (Some(other), true) => {
            return Err(format!("{other}: connecting to this kind of endpoint is not supported"));
        }
        (Some(_), false) => return Err("give either TARGET or -- CMD, not both".into()),
        (None, false) => Arc::new(Child { command: command.to_vec(), children: Default::default() }),
        (None, true) => return Err("no target: give an endpoint URL or -- CMD ARGS".into()),
    };
    Ok(connector)
}

pub(crate) async fn run(args: ConformArgs) -> Result<bool, String> {
    let connector = connector(args.target.as_ref(), &args.command, args.ca.as_ref(), args.quic_requests)?;
    let baseline = match &args.baseline {
        Some(p) => Baseline::parse(&p.display().to_string(), &read(p)?).map_err(|e| e.to_string())?,
        None => Baseline::default(),
    };
    let budgets = match &args.budgets {
        Some(p) => Some(toml_budgets(p)?),
        None => None,
    };
    if !(args.timeout.is_finite() && args.timeout > 0.0) {
        return Err(format!("--timeout must be a positive number of seconds, not {}", args.timeout));
    }
    let options = Options {
        spec: args.spec,
        call_tools: args.call_tools,
        check_timeout: Duration::from_secs_f64(args.timeout),
        latency_samples: args.latency_samples,
        budgets,
    };
    let report =
        mcp_conformance::run(connector, options, &checks::all(), &baseline).await.map_err(|e| e.to_string())?;
    let text = match args.format {
        Format::Text => report.to_text(),
        Format::Json => report.to_json().map_err(|e| e.to_string())?,
        Format::Junit => report.to_junit(),
    };
    match &args.output {
        Some(path) => std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))?,
        None => print_out(&text),
    }
    Ok(!report.failed())
}

fn toml_budgets(path: &PathBuf) -> Result<Budgets, String> {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct File {
        latency: Budgets,
    }
    let file: File = toml::from_str(&read(path)?).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(file.latency)
}

#[allow(clippy::print_stdout)]
fn print_out(text: &str) {
    print!("{text}");
}
