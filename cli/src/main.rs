//! `mcpt`: the command line of mcp-transports.
#![forbid(unsafe_code)]

mod bench;
mod bridge;
mod conform;
mod conform_http;
mod endpoint;
mod gateway;
mod serve;

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
}

fn init_logging(format: LogFormat, default_level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
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
    init_logging(cli.log_format, if quiet { "warn" } else { "info" });
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
    let result = match cli.command {
        Command::Serve(args) => runtime.block_on(serve::run(args)),
        Command::Conform(args) => match runtime.block_on(conform::run(args)) {
            Ok(true) => Ok(()),
            Ok(false) => return ExitCode::from(1),
            Err(e) => Err(e),
        },
        Command::Bench(args) => match runtime.block_on(bench::run(args)) {
            Ok(bench::Outcome::Done) => Ok(()),
            Ok(bench::Outcome::Missed) => return ExitCode::from(1),
            Err(e) => Err(e),
        },
        Command::Gateway(args) => runtime.block_on(gateway::run(args)),
        Command::Bridge(args) => runtime.block_on(bridge::run(args)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(reason) => fail(&reason),
    }
}
