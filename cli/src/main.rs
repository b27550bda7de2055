//! `mcpt`: the command line of mcp-transports.
#![forbid(unsafe_code)]

mod bench;
mod bridge;
mod conform;
mod conform_http;
mod endpoint;
mod gateway;
#[cfg(feature = "otel")]
mod otel;
mod serve;
mod soak;

use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

use crate::endpoint::Endpoint;

/// Fast, interchangeable transports for the Model Context Protocol (Unix sockets, stdio,
/// WebSocket, QUIC, Streamable HTTP): a reference server, a conformance harness, benchmarks, a
/// gateway and a bridge.
#[derive(Debug, Parser)]
#[command(name = "mcpt", version, propagate_version = true)]
struct Cli {
    /// Log line format (filter with RUST_LOG, e.g. RUST_LOG=debug). Logs go to stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// Export the command's tracing spans as OpenTelemetry traces over OTLP/HTTP (protobuf) to
    /// this base URL (spans are POSTed to URL/v1/traces), e.g. http://127.0.0.1:4318.
    #[cfg(feature = "otel")]
    #[arg(long, global = true, env = "OTEL_EXPORTER_OTLP_ENDPOINT", value_name = "URL")]
    otlp_endpoint: Option<String>,
    /// Without the `otel` cargo feature the flag only explains how to get it.
    #[cfg(not(feature = "otel"))]
    #[arg(long, global = true, hide = true, value_name = "URL")]
    otlp_endpoint: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the reference MCP server on one or more endpoints at once.
    Serve(serve::ServeArgs),
    /// Check an MCP server's conformance: lifecycle, JSON-RPC, utilities, listings, tool
    /// results, transport behaviour and latency. Exit status 0 only when no check failed.
    Conform(conform::ConformArgs),
    /// Compare every transport side by side on loopback, with raw floors and rmcp in the same
    /// run: latency percentiles, throughput, CPU and memory, ratios to floors, budgets.
    Bench(bench::BenchArgs),
    /// Run the gateway: one endpoint in front of many MCP servers (aggregation, auth, rate
    /// limits, caching, metrics, circuit breaking, health).
    Gateway(gateway::GatewayArgs),
    /// Expose a server on other transports, message for message: a stdio server over QUIC,
    /// WebSocket or a Unix socket, or a remote server as local stdio.
    Bridge(bridge::BridgeArgs),
    /// Load the gateway on loopback for a bounded time: many concurrent clients making mixed
    /// calls through it to upstreams on several transports. Reports lost, duplicated and
    /// mismatched answers, latency, resident memory over time and open descriptors after the
    /// clients leave; exit status 1 when a criterion is missed.
    Soak(soak::SoakArgs),
}

/// What `init_logging` installed that must be finished when the command ends.
#[derive(Debug, Default)]
struct Telemetry {
    #[cfg(feature = "otel")]
    exporter: Option<otel::Exporter>,
}

impl Telemetry {
    /// Flushes what is still queued for export; call it while the runtime is alive.
    fn shutdown(self) -> Result<(), String> {
        #[cfg(feature = "otel")]
        if let Some(exporter) = self.exporter {
            return exporter.shutdown();
        }
        Ok(())
    }
}

/// Installs the global subscriber: log lines on stderr (filtered by RUST_LOG, else
/// `default_level`) and, with the `otel` feature and an OTLP endpoint, span export. Must run
/// inside the command's runtime (`Runtime::enter`), where the span exporter is spawned.
fn init_logging(
    format: LogFormat,
    default_level: &str,
    otlp_endpoint: Option<&str>,
    current_thread: bool,
) -> Result<Telemetry, String> {
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    use tracing_subscriber::{EnvFilter, Layer as _};

    let env_filter = |default: &str| EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr).with_ansi(ansi);
    let fmt = match format {
        LogFormat::Text => fmt.with_filter(env_filter(default_level)).boxed(),
        LogFormat::Json => fmt.json().with_filter(env_filter(default_level)).boxed(),
    };
    #[cfg_attr(not(feature = "otel"), allow(unused_mut))]
    let mut layers = vec![fmt];
    #[cfg_attr(not(feature = "otel"), allow(unused_mut))]
    let mut telemetry = Telemetry::default();
    #[cfg(feature = "otel")]
    if let Some(base) = otlp_endpoint {
        let runtime = if current_thread { otel::Runtime::Dedicated } else { otel::Runtime::Shared };
        let (layer, exporter) = otel::layer(base, runtime)?;
        // Spans are exported at info and above (RUST_LOG widens or narrows it), even when the
        // log lines are quieter, as the bench's are.
        layers.push(layer.with_filter(env_filter("info")).boxed());
        telemetry.exporter = Some(exporter);
    }
    #[cfg(not(feature = "otel"))]
    if otlp_endpoint.is_some() {
        let _ = current_thread;
        return Err("--otlp-endpoint needs a binary built with the `otel` feature \
                    (cargo build --release -p mcpt --features otel)"
            .to_owned());
    }
    tracing_subscriber::registry()
        .with(layers)
        .try_init()
        .map_err(|e| format!("cannot install the log subscriber: {e}"))?;
    Ok(telemetry)
}

#[allow(clippy::print_stderr)]
fn fail(reason: &str) -> ExitCode {
    eprintln!("mcpt: {reason}");
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The bench prints a table; its progress bar and warnings are enough on stderr.
    let quiet = matches!(&cli.command, Command::Bench(args) if !args.is_role());
    let current_thread = matches!(&cli.command, Command::Bench(args) if args.current_thread());
    let mut builder = match &cli.command {
        Command::Bench(args) if args.current_thread() => tokio::runtime::Builder::new_current_thread(),
        Command::Bench(args) => {
            let mut b = tokio::runtime::Builder::new_multi_thread();
            b.worker_threads(args.workers());
            b
        }
        _ => tokio::runtime::Builder::new_multi_thread(),
    };
    let runtime = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => return fail(&format!("cannot start the runtime: {e}")),
    };
    let telemetry = {
        let _entered = runtime.enter();
        init_logging(cli.log_format, if quiet { "warn" } else { "info" }, cli.otlp_endpoint.as_deref(), current_thread)
    };
    let telemetry = match telemetry {
        Ok(telemetry) => telemetry,
        Err(reason) => return fail(&reason),
    };
    // Ok(true): success; Ok(false): the command ran and reported a failure (exit status 1).
    let result = match cli.command {
        Command::Serve(args) => runtime.block_on(serve::run(args)).map(|()| true),
        Command::Conform(args) => runtime.block_on(conform::run(args)),
        Command::Bench(args) => runtime.block_on(bench::run(args)).map(|outcome| match outcome {
            bench::Outcome::Done => true,
            bench::Outcome::Missed => false,
        }),
        Command::Gateway(args) => runtime.block_on(gateway::run(args)).map(|()| true),
        Command::Bridge(args) => runtime.block_on(bridge::run(args)).map(|()| true),
        Command::Soak(args) => runtime.block_on(soak::run(args)),
    };
    // Export what the command traced before the runtime goes away.
    if let Err(reason) = telemetry.shutdown() {
        tracing::warn!("{reason}");
    }
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(reason) => fail(&reason),
    }
}
