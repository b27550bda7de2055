//! Measurements of mcp-transports next to raw floors and peer implementations, taken side by
//! side in one run: what `mcpt bench` prints.
//!
//! Every case makes `tools/call` round trips of the same bytes: ours through the session
//! layer against the reference server, rmcp against an rmcp server with the same tools, and
//! the raw floors (no MCP logic) sending the captured request and answering with the captured
//! response. Each is measured two ways, each against floors measured the same way:
//!
//! - **in-process**: client and server tasks on one tokio runtime, the cost of the code path;
//! - **cross-process**: the server in its own process, as deployed (`mcpt serve`, or a hidden
//!   `mcpt bench --serve-role` for floors and peers), which adds the cost of waking a thread
//!   on another core;
//! - and, when run as root, on a **lossy link** (1% loss and 10 ms delay each way, `tc netem`
//!   in a network namespace).
//!
//! For each case: p50 / p99 / p99.9 of round trips made one at a time, then round trips per
//! second with 16 in flight, payload MB/s, CPU time per round trip (client and server
//! processes together) and the peak resident memory of the server's process. Budgets
//! ([`budget`]) are ratios between cases of one run, so they hold on any machine.
#![forbid(unsafe_code)]

pub mod budget;
pub mod cases;
pub mod driver;
mod error;
pub mod floors;
pub mod lossy;
pub mod ours;
mod payload;
pub mod peers;
pub mod pipelined;
pub mod plot;
pub mod process;
pub mod report;
pub mod run;
pub mod soak;
pub mod stats;

use std::sync::atomic::{AtomicUsize, Ordering};

pub use error::BenchError;
pub use payload::{Exchange, Size};

use crate::cases::{CASES, Case, Env, Placement};
use crate::report::{Machine, Report};
use crate::run::Settings;

/// A number unique within this process, for socket names.
pub(crate) fn unique() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// What to run.
#[derive(Debug, Clone)]
pub struct Options {
    /// Case ids to run (their floors are added); every case when `None`.
    pub transports: Option<Vec<String>>,
    /// Placements to measure.
    pub placements: Vec<Placement>,
    /// How much to measure.
    pub settings: Settings,
    /// How to start server processes (needed for cross-process and lossy cases).
    pub launcher: Option<process::Launcher>,
    /// Budgets to check.
    pub budgets: Option<budget::Budgets>,
    /// Show a progress bar on a terminal.
    pub progress: bool,
    /// Worker threads of the runtime measuring (for the report).
    pub workers: usize,
}

/// The cases and placements `options` selects, in run order.
pub fn plan(options: &Options) -> Result<Vec<(&'static Case, Placement)>, BenchError> {
    let wanted: Option<Vec<&'static str>> = match &options.transports {
        None => None,
        Some(ids) => {
            let mut wanted = Vec::new();
            for id in ids {
                let case = cases::find(id).ok_or_else(|| BenchError::Setup {
                    case: id.clone(),
                    reason: format!(
                        "unknown case; known: {}",
                        CASES.iter().map(|c| c.id).collect::<Vec<_>>().join(", ")
                    ),
                })?;
                wanted.push(case.id);
                wanted.extend(case.floor);
            }
            Some(wanted)
        }
    };
    let mut plan = Vec::new();
    for &placement in &options.placements {
        for case in CASES {
            if wanted.as_ref().is_some_and(|w| !w.contains(&case.id)) {
                continue;
            }
            let runs_here = match placement {
                Placement::InProcess => case.in_process,
                Placement::CrossProcess => case.cross_process,
                Placement::Lossy => case.on_lossy_link(),
            };
            if runs_here {
                plan.push((case, placement));
            }
        }
    }
    Ok(plan)
}

/// The plan cut into groups measured together: one per placement and transport family, in
/// plan order.
pub fn groups(plan: &[(&'static Case, Placement)]) -> Vec<(Placement, Vec<&'static Case>)> {
    let mut groups: Vec<(Placement, Vec<&'static Case>)> = Vec::new();
    for &(case, placement) in plan {
        match groups.iter_mut().find(|(p, g)| *p == placement && g[0].family() == case.family()) {
            Some((_, group)) => group.push(case),
            None => groups.push((placement, vec![case])),
        }
    }
    groups
}

/// Runs the selected cases and builds the report.
pub async fn run(options: Options) -> Result<Report, BenchError> {
    let plan = plan(&options)?;
    let mut lossy_skipped = None;
    let link = if plan.iter().any(|(_, p)| *p == Placement::Lossy) {
        match lossy::LossyLink::create() {
            Ok(link) => Some(link),
            Err(why) => {
                lossy_skipped = Some(why);
                None
            }
        }
    } else {
        if !options.placements.contains(&Placement::Lossy) {
            lossy_skipped = Some("not selected".into());
        }
        None
    };
    let env = Env {
        dir: tempfile::tempdir().map_err(|e| BenchError::Setup { case: "bench".into(), reason: e.to_string() })?,
        cert: ours::DevCert::generate()?,
        launcher: options.launcher.clone(),
        remote: link.as_ref().map(|l| (l.prefix(), lossy::REMOTE.to_owned())),
    };
    let plan: Vec<_> = plan.into_iter().filter(|(_, p)| *p != Placement::Lossy || link.is_some()).collect();
    let bar = if options.progress {
        indicatif::ProgressBar::with_draw_target(Some(plan.len() as u64), indicatif::ProgressDrawTarget::stderr())
    } else {
        indicatif::ProgressBar::hidden()
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} {elapsed} {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let mut rows = Vec::with_capacity(plan.len());
    for (placement, group) in groups(&plan) {
        let names: Vec<&str> = group.iter().map(|c| c.id).collect();
        bar.set_message(format!("{} ({})", names.join(", "), placement.label()));
        rows.extend(run::measure_group(&group, placement, &env, &options.settings).await);
        bar.inc(group.len() as u64);
    }
    bar.finish_and_clear();
    drop(link);
    run::link_floors(&mut rows);
    let recommendations = report::recommend(&rows, lossy_skipped.as_deref());
    let budgets = options.budgets.as_ref().map(|b| b.check(&rows)).unwrap_or_default();
    Ok(Report {
        machine: Machine::this(options.workers),
        settings: options.settings,
        rows,
        lossy_skipped,
        recommendations,
        budgets,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(transports: Option<Vec<String>>, placements: Vec<Placement>) -> Options {
        Options {
            transports,
            placements,
            settings: Settings::default(),
            launcher: None,
            budgets: None,
            progress: false,
            workers: 2,
        }
    }

    #[test]
    fn a_selection_brings_its_floors() {
        let p = plan(&options(
            Some(vec!["ws".into(), "stdio".into()]),
            vec![Placement::InProcess, Placement::CrossProcess],
        ))
        .unwrap();
        let names: Vec<String> = p.iter().map(|(c, pl)| format!("{}@{}", c.id, pl.label())).collect();
        assert_eq!(
            names,
            [
                "raw-ws@in-process",
                "ws@in-process",
                "raw-ws@cross-process",
                "raw-pipe@cross-process",
                "ws@cross-process",
                "stdio@cross-process"
            ]
        );
        assert!(plan(&options(Some(vec!["nope".into()]), vec![Placement::InProcess])).is_err());
        let everything =
            plan(&options(None, vec![Placement::InProcess, Placement::CrossProcess, Placement::Lossy])).unwrap();
        assert!(everything.iter().any(|(c, p)| c.id == "quic-request" && *p == Placement::Lossy));
        assert!(!everything.iter().any(|(c, p)| c.id == "wss" && *p == Placement::Lossy));
        let g = groups(&p);
        assert_eq!(g.len(), 3, "ws in-process, ws cross-process, pipe cross-process");
        assert_eq!(g[2].1.iter().map(|c| c.id).collect::<Vec<_>>(), ["raw-pipe", "stdio"]);
    }
}
