//! `mcpt bench`: every transport side by side with its raw floor and the peers.

use std::path::PathBuf;
use std::time::Duration;

use clap::ValueEnum;
use mcp_bench::cases::Placement;
use mcp_bench::run::Settings;
use mcp_bench::{Options, Size};

/// Arguments of `mcpt bench`.
#[derive(Debug, clap::Args)]
pub(crate) struct BenchArgs {
    /// Cases to run, comma-separated; the floor each is compared with is added. Ours: uds, ws,
    /// wss, quic-session, quic-request, http, stdio, uds-pipelined, quic-session-32k,
    /// quic-request-32k; peers: rmcp-uds, rmcp-http, rmcp-stdio; floors: raw-uds, raw-tcp,
    /// raw-ws, raw-quic, raw-http, raw-pipe. Default: all.
    #[arg(long, value_delimiter = ',', value_name = "LIST")]
    transports: Option<Vec<String>>,
    /// Where servers run, comma-separated. Default: all three (the lossy link only as root).
    #[arg(long, value_delimiter = ',', value_enum, value_name = "LIST")]
    placement: Vec<PlacementArg>,
    /// Check the budgets in this file (ratios between cases); exit status 1 when one is missed.
    #[arg(long, value_name = "BUDGETS")]
    check: Option<PathBuf>,
    /// Write a chart of p50 round trips (SVG).
    #[arg(long, value_name = "FILE")]
    plot: Option<PathBuf>,
    /// Write every number as JSON.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Timed round trips per in-process case (plus a tenth as warm-up).
    #[arg(long, default_value_t = Settings::default().rounds_in_process)]
    rounds: usize,
    /// Timed round trips per cross-process case.
    #[arg(long, default_value_t = Settings::default().rounds_cross_process)]
    rounds_cross: usize,
    /// Timed round trips per case on the lossy link.
    #[arg(long, default_value_t = Settings::default().rounds_lossy)]
    rounds_lossy: usize,
    /// Milliseconds of the throughput phase of each case.
    #[arg(long, value_name = "MS", default_value_t = Settings::default().throughput_for.as_millis() as u64)]
    throughput_ms: u64,
    /// Tokio worker threads of the measuring runtime.
    #[arg(long, default_value_t = 2)]
    workers: usize,
    /// Internal: serve a floor or peer role in this process (used by the bench itself).
    #[arg(long, hide = true)]
    serve_role: Option<String>,
    /// Internal: where a role listens.
    #[arg(long, hide = true)]
    listen: Option<String>,
    /// Internal: the payload size of a role.
    #[arg(long, hide = true, default_value = "1KB")]
    size: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum PlacementArg {
    /// Client and server in this process.
    InProcess,
    /// The server in its own process.
    CrossProcess,
    /// The server in its own process behind a 1% loss, 20 ms RTT link (root only).
    Lossy,
}

impl BenchArgs {
    /// Whether this process should run on a current-thread runtime: the raw pipe floor does
    /// (one connection, one thread: the cheapest echo a process can run).
    pub(crate) fn current_thread(&self) -> bool {
        self.serve_role.as_deref() == Some("raw-pipe")
    }

    /// Whether this process serves a floor or peer role for a bench run.
    pub(crate) fn is_role(&self) -> bool {
        self.serve_role.is_some()
    }

    /// Worker threads the runtime should have.
    pub(crate) fn workers(&self) -> usize {
        if self.serve_role.is_some() { 2 } else { self.workers.max(1) }
    }
}

/// What the command ended with.
pub(crate) enum Outcome {
    /// Everything measured and every budget met.
    Done,
    /// A case failed or a budget was missed (already reported).
    Missed,
}

#[allow(clippy::print_stdout, clippy::print_stderr)]
pub(crate) async fn run(args: BenchArgs) -> Result<Outcome, String> {
    if let Some(role) = &args.serve_role {
        let size = Size::parse(&args.size).ok_or_else(|| format!("unknown size {:?}", args.size))?;
        mcp_bench::cases::serve_role(role, args.listen.as_deref(), size).await.map_err(|e| e.to_string())?;
        return Ok(Outcome::Done);
    }
    let budgets = match &args.check {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
            Some(mcp_bench::budget::Budgets::parse(&path.display().to_string(), &text).map_err(|e| e.to_string())?)
        }
        None => None,
    };
    let placements = if args.placement.is_empty() {
        vec![Placement::InProcess, Placement::CrossProcess, Placement::Lossy]
    } else {
        args.placement
            .iter()
            .map(|p| match p {
                PlacementArg::InProcess => Placement::InProcess,
                PlacementArg::CrossProcess => Placement::CrossProcess,
                PlacementArg::Lossy => Placement::Lossy,
            })
            .collect()
    };
    let program = std::env::current_exe().map_err(|e| format!("cannot find this program's path: {e}"))?;
    let options = Options {
        transports: args.transports.clone(),
        placements,
        settings: Settings {
            rounds_in_process: args.rounds.max(1),
            rounds_cross_process: args.rounds_cross.max(1),
            rounds_lossy: args.rounds_lossy.max(1),
            throughput_for: Duration::from_millis(args.throughput_ms),
            ..Settings::default()
        },
        launcher: Some(mcp_bench::process::Launcher { program }),
        budgets,
        progress: true,
        workers: args.workers,
    };
    // Measure from a task on the worker pool, as a server would run, never on the thread
    // blocked on the runtime.
    let report = tokio::spawn(mcp_bench::run(options))
        .await
        .map_err(|e| format!("the measuring task failed: {e}"))?
        .map_err(|e| e.to_string())?;
    println!("{}", report.to_table());
    if let Some(path) = &args.json {
        let json = serde_json::to_vec_pretty(&report).map_err(|e| e.to_string())?;
        std::fs::write(path, json).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    if let Some(path) = &args.plot {
        mcp_bench::plot::write_svg(&report, &path.display().to_string()).map_err(|e| e.to_string())?;
    }
    let failed: Vec<&str> = report.rows.iter().filter(|r| r.error.is_some()).map(|r| r.id.as_str()).collect();
    let missed = report.budgets.iter().filter(|o| o.met == Some(false)).count();
    if !failed.is_empty() {
        eprintln!("mcpt bench: {} case(s) could not be measured: {}", failed.len(), failed.join(", "));
    }
    if missed > 0 {
        eprintln!("mcpt bench: {missed} budget(s) missed");
    }
    Ok(if failed.is_empty() && missed == 0 { Outcome::Done } else { Outcome::Missed })
}
