//! What the soak saw, its verdicts, and the text `mcpt soak` prints.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use serde::Serialize;

use crate::soak::SoakOptions;
use crate::soak::client::Tally;
use crate::soak::monitor::{Growth, Sample, Watched, rss_growth};
use crate::stats::Summary;

/// The whole soak report (also written as JSON).
#[derive(Debug, Clone, Serialize)]
pub struct SoakReport {
    /// Concurrent clients asked for.
    pub clients: usize,
    /// Clients that initialized a session.
    pub clients_connected: usize,
    /// Seconds until every client had a session, if they all did while the load ran.
    pub all_connected_after_s: Option<f64>,
    /// Seconds the clients made calls (from the first connect to the last client leaving).
    pub load_s: f64,
    /// Upstream transports.
    pub upstreams: Vec<String>,
    /// Downstream transports.
    pub downstreams: Vec<String>,
    /// Calls answered (with a result or an error).
    pub answered: u64,
    /// Calls answered with the expected result.
    pub ok: u64,
    /// Calls answered with a JSON-RPC error, by code.
    pub errors: BTreeMap<i64, u64>,
    /// Calls never answered within the call timeout or before the connection ended.
    pub lost: u64,
    /// Responses to calls already answered.
    pub duplicated: u64,
    /// Responses that answer no call of their client, or another call than the one of their id.
    pub mismatched: u64,
    /// Answers that came after their call was counted as lost.
    pub late: u64,
    /// Frames that were neither messages of the session nor valid.
    pub unexpected: u64,
    /// Answered calls per second over the load.
    pub calls_per_s: f64,
    /// Latency of answered calls.
    pub latency: Option<Summary>,
    /// Calls and latency per client transport.
    pub by_transport: Vec<ViaReport>,
    /// Calls and latency by where they were served (an upstream, or `gateway`).
    pub by_target: Vec<ViaReport>,
    /// Resources per server process.
    pub processes: Vec<ProcessReport>,
    /// Every sample taken while the clients ran.
    pub samples: Vec<Sample>,
    /// Seconds from the last client leaving until the descriptors were back (or the wait ended).
    pub settled_after_s: f64,
    /// Why clients failed to connect or stopped early (distinct messages, at most 20).
    pub client_failures: Vec<String>,
    /// Clients that failed to connect or stopped early.
    pub client_failure_count: usize,
    /// The criteria missed; empty when the soak passed.
    pub missed: Vec<String>,
}

/// Calls and latency of the clients of one transport, or of the calls served by one target.
#[derive(Debug, Clone, Serialize)]
pub struct ViaReport {
    /// The client transport, or the upstream (or `gateway`) that served the calls.
    pub via: String,
    /// Calls answered.
    pub answered: u64,
    /// Answered calls per second over the load.
    pub calls_per_s: f64,
    /// Latency of its answered calls.
    pub latency: Option<Summary>,
}

/// Resident memory and descriptors of one server process.
#[derive(Debug, Clone, Serialize)]
pub struct ProcessReport {
    /// What it is.
    pub name: String,
    /// Its process id.
    pub pid: u32,
    /// Resident bytes before the clients came.
    pub rss_before: u64,
    /// Peak resident bytes while they ran.
    pub rss_peak: u64,
    /// Resident bytes after they left.
    pub rss_after: u64,
    /// Growth over the run after the warm-up; `None` when the run was too short to judge.
    pub rss_growth: Option<Growth>,
    /// Open descriptors before the clients came.
    pub fds_before: usize,
    /// Peak open descriptors while they ran.
    pub fds_peak: usize,
    /// Open descriptors after they left.
    pub fds_after: usize,
}

/// Everything the report is built from.
pub(crate) struct Inputs<'a> {
    pub(crate) options: &'a SoakOptions,
    pub(crate) watched: Vec<Watched>,
    pub(crate) before: Sample,
    pub(crate) after: Sample,
    pub(crate) samples: Vec<Sample>,
    pub(crate) peak_fds: Vec<usize>,
    pub(crate) per_via: Vec<(crate::soak::Downstream, Tally)>,
    pub(crate) failures: Vec<String>,
    pub(crate) load_time: Duration,
    pub(crate) all_connected_after: Option<Duration>,
    pub(crate) settled_after: Duration,
}

/// Builds the report and its verdicts.
pub(crate) fn build(inputs: Inputs<'_>) -> SoakReport {
    let Inputs { options, watched, before, after, samples, peak_fds, per_via, failures, .. } = inputs;
    let mut tally = Tally::default();
    let mut by_transport = Vec::new();
    for (via, mut t) in per_via {
        let answered = t.latencies.len() as u64;
        by_transport.push(ViaReport {
            via: via.name().to_owned(),
            answered,
            calls_per_s: answered as f64 / inputs.load_time.as_secs_f64().max(1e-9),
            latency: Summary::of(&mut t.latencies),
        });
        tally.merge(t);
    }
    let by_target = std::mem::take(&mut tally.by_target)
        .into_iter()
        .map(|(target, mut latencies)| ViaReport {
            via: target,
            answered: latencies.len() as u64,
            calls_per_s: latencies.len() as f64 / inputs.load_time.as_secs_f64().max(1e-9),
            latency: Summary::of(&mut latencies),
        })
        .collect();
    let processes: Vec<ProcessReport> = watched
        .iter()
        .enumerate()
        .map(|(i, w)| {
            let series: Vec<(f64, u64)> = samples.iter().map(|s| (s.at_s, s.rss[i])).filter(|(_, r)| *r > 0).collect();
            ProcessReport {
                name: w.name.clone(),
                pid: w.pid,
                rss_before: before.rss[i],
                rss_peak: series.iter().map(|(_, r)| *r).max().unwrap_or(0),
                rss_after: after.rss[i],
                rss_growth: rss_growth(&series),
                fds_before: before.fds[i],
                fds_peak: peak_fds[i],
                fds_after: after.fds[i],
            }
        })
        .collect();
    let answered = tally.latencies.len() as u64;
    let latency = Summary::of(&mut tally.latencies);
    let client_failure_count = failures.len();
    let mut report = SoakReport {
        clients: options.clients,
        clients_connected: options.clients - failures.iter().filter(|f| is_connect_failure(f)).count(),
        all_connected_after_s: inputs.all_connected_after.map(|d| d.as_secs_f64()),
        load_s: inputs.load_time.as_secs_f64(),
        upstreams: options.upstreams.iter().map(|u| u.name().to_owned()).collect(),
        downstreams: options.downstreams.iter().map(|d| d.name().to_owned()).collect(),
        answered,
        ok: tally.ok,
        errors: tally.errors,
        lost: tally.lost,
        duplicated: tally.duplicated,
        mismatched: tally.mismatched,
        late: tally.late,
        unexpected: tally.unexpected,
        calls_per_s: answered as f64 / inputs.load_time.as_secs_f64().max(1e-9),
        latency,
        by_transport,
        by_target,
        processes,
        samples,
        settled_after_s: inputs.settled_after.as_secs_f64(),
        client_failures: failures.into_iter().take(20).collect(),
        client_failure_count,
        missed: Vec::new(),
    };
    report.missed = missed(&report);
    report
}

/// Whether a client failure message is about connecting or initializing.
fn is_connect_failure(message: &str) -> bool {
    message.contains(": connecting over ") || message.contains(": initialize")
}

/// The criteria `report` misses.
fn missed(r: &SoakReport) -> Vec<String> {
    let mut missed = Vec::new();
    for (what, n) in [
        ("lost", r.lost),
        ("duplicated", r.duplicated),
        ("mismatched", r.mismatched),
        ("late", r.late),
        ("unexpected", r.unexpected),
        ("answered with an error", r.errors.values().sum()),
    ] {
        if n > 0 {
            missed.push(format!("{n} calls {what} (must be 0)"));
        }
    }
    if r.client_failure_count > 0 {
        missed.push(format!("{} clients failed to connect or stopped early", r.client_failure_count));
    }
    if r.ok == 0 {
        missed.push("no call succeeded".to_owned());
    }
    for p in &r.processes {
        if let Some(g) = p.rss_growth.filter(|g| !g.flat) {
            missed.push(format!(
                "{}: resident memory grew from {:.1} to {:.1} MiB after the warm-up ({:+.1} MiB/min)",
                p.name,
                mib(g.start),
                mib(g.end),
                g.slope_mib_per_min
            ));
        }
        if p.fds_after > p.fds_before {
            missed.push(format!(
                "{}: {} open descriptors after the clients left, {} before they came",
                p.name, p.fds_after, p.fds_before
            ));
        }
    }
    missed
}

/// Bytes in MiB.
fn mib(bytes: u64) -> f64 {
    bytes as f64 / f64::from(1u32 << 20)
}

impl SoakReport {
    /// Whether every criterion was met.
    pub fn passed(&self) -> bool {
        self.missed.is_empty()
    }

    /// The report as Markdown text.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "### soak: {} clients over {} → gateway → upstreams on {}, {:.1} s",
            self.clients,
            self.downstreams.join(", "),
            self.upstreams.join(", "),
            self.load_s
        );
        let _ = writeln!(out);
        let connected = match self.all_connected_after_s {
            Some(s) => format!("all {} had a session after {s:.1} s", self.clients_connected),
            None => format!("{} of {} had a session", self.clients_connected, self.clients),
        };
        let _ = writeln!(out, "- clients: {connected}");
        let errors: u64 = self.errors.values().sum();
        let _ = writeln!(
            out,
            "- calls answered: {} ({:.0}/s); ok {}, errors {}{}",
            self.answered,
            self.calls_per_s,
            self.ok,
            errors,
            if errors > 0 { format!(" {:?}", self.errors) } else { String::new() }
        );
        let _ = writeln!(
            out,
            "- lost {}, duplicated {}, mismatched {}, late {}, unexpected frames {}",
            self.lost, self.duplicated, self.mismatched, self.late, self.unexpected
        );
        if let Some(l) = &self.latency {
            let _ = writeln!(
                out,
                "- latency: p50 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms",
                l.p50_us / 1e3,
                l.p99_us / 1e3,
                l.p999_us / 1e3
            );
        }
        let rows = self.by_transport.iter().map(|v| ("over", v)).chain(self.by_target.iter().map(|v| ("served by", v)));
        for (how, v) in rows {
            if let Some(l) = &v.latency {
                let _ = writeln!(
                    out,
                    "  - {how} {}: {} calls ({:.0}/s), p50 {:.2} ms, p99 {:.2} ms",
                    v.via,
                    v.answered,
                    v.calls_per_s,
                    l.p50_us / 1e3,
                    l.p99_us / 1e3
                );
            }
        }
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "| process | RSS before MiB | RSS after warm-up MiB | RSS end MiB | peak MiB | slope MiB/min | flat | fds before | fds peak | fds after |"
        );
        let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|---|---:|---:|---:|");
        for p in &self.processes {
            let (start, end, slope, flat) = match p.rss_growth {
                Some(g) => (
                    format!("{:.1}", mib(g.start)),
                    format!("{:.1}", mib(g.end)),
                    format!("{:+.2}", g.slope_mib_per_min),
                    if g.flat { "yes" } else { "NO" },
                ),
                None => ("–".into(), "–".into(), "–".into(), "too short to judge"),
            };
            let _ = writeln!(
                out,
                "| {} | {:.1} | {start} | {end} | {:.1} | {slope} | {flat} | {} | {} | {} |",
                p.name,
                mib(p.rss_before),
                mib(p.rss_peak),
                p.fds_before,
                p.fds_peak,
                p.fds_after
            );
        }
        let _ = writeln!(out);
        let _ = writeln!(out, "descriptors checked {:.1} s after the last client left", self.settled_after_s);
        for f in &self.client_failures {
            let _ = writeln!(out, "- client failure: {f}");
        }
        if self.passed() {
            let _ = writeln!(out, "\nPASSED");
        } else {
            let _ = writeln!(out, "\nFAILED:");
            for m in &self.missed {
                let _ = writeln!(out, "- {m}");
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> SoakReport {
        SoakReport {
            clients: 2,
            clients_connected: 2,
            all_connected_after_s: Some(0.1),
            load_s: 1.0,
            upstreams: vec!["unix".into()],
            downstreams: vec!["ws".into()],
            answered: 10,
            ok: 10,
            errors: BTreeMap::new(),
            lost: 0,
            duplicated: 0,
            mismatched: 0,
            late: 0,
            unexpected: 0,
            calls_per_s: 10.0,
            latency: None,
            by_transport: Vec::new(),
            by_target: Vec::new(),
            processes: vec![ProcessReport {
                name: "gateway".into(),
                pid: 1,
                rss_before: 1 << 20,
                rss_peak: 2 << 20,
                rss_after: 2 << 20,
                rss_growth: None,
                fds_before: 10,
                fds_peak: 14,
                fds_after: 10,
            }],
            samples: Vec::new(),
            settled_after_s: 0.0,
            client_failures: Vec::new(),
            client_failure_count: 0,
            missed: Vec::new(),
        }
    }

    #[test]
    fn a_clean_run_passes_and_each_fault_is_named() {
        let clean = report();
        assert!(missed(&clean).is_empty(), "{:?}", missed(&clean));
        let mut lost = report();
        lost.lost = 1;
        assert_eq!(missed(&lost), ["1 calls lost (must be 0)"]);
        let mut dup = report();
        dup.duplicated = 2;
        dup.errors.insert(-32030, 3);
        assert_eq!(missed(&dup), ["2 calls duplicated (must be 0)", "3 calls answered with an error (must be 0)"]);
        let mut leak = report();
        leak.processes[0].fds_after = 11;
        assert!(
            missed(&leak)[0].contains("11 open descriptors after the clients left, 10 before"),
            "{:?}",
            missed(&leak)
        );
        let mut grew = report();
        grew.processes[0].rss_growth =
            Some(Growth { start: 10 << 20, end: 100 << 20, flat: false, slope_mib_per_min: 90.0 });
        assert!(missed(&grew)[0].contains("grew from 10.0 to 100.0 MiB"), "{:?}", missed(&grew));
        assert!(report().to_text().contains("PASSED"));
        let mut failed = report();
        failed.missed = missed(&lost);
        assert!(failed.to_text().contains("FAILED:\n- 1 calls lost"));
    }
}
