//! The report of one run: the machine, every row, budgets, recommendations, and its renderings.

use std::fmt::Write as _;

use crate::budget::Outcome;
use crate::cases::{Placement, Role};
use crate::run::{Row, Settings};

/// The machine a run was measured on.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Machine {
    /// CPU model name.
    pub cpu: String,
    /// Logical CPUs available.
    pub cores: usize,
    /// Kernel release.
    pub kernel: String,
    /// UTC date of the run (YYYY-MM-DD).
    pub date: String,
    /// Tokio worker threads of the measuring runtime.
    pub workers: usize,
}

impl Machine {
    /// Describes this machine.
    pub fn this(workers: usize) -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find_map(|l| {
                l.strip_prefix("model name").and_then(|r| r.split_once(':')).map(|(_, v)| v.trim().to_owned())
            })
            .unwrap_or_else(|| "unknown CPU".into());
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim().to_owned();
        let cores = std::thread::available_parallelism().map(usize::from).unwrap_or(1);
        Machine { cpu, cores, kernel, date: today(), workers }
    }
}

/// Today's UTC date from the system clock (days-to-civil conversion).
fn today() -> String {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let z = (secs / 86_400) as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

/// Everything one run produced.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Report {
    /// Where it ran.
    pub machine: Machine,
    /// How much it measured.
    pub settings: Settings,
    /// Every measured case.
    pub rows: Vec<Row>,
    /// Why the lossy-link scenario did not run, when it did not.
    pub lossy_skipped: Option<String>,
    /// One line per use case.
    pub recommendations: Vec<String>,
    /// Budget outcomes, when budgets were checked.
    pub budgets: Vec<Outcome>,
}

fn num(v: Option<f64>, digits: usize) -> String {
    v.map(|v| format!("{v:.digits$}")).unwrap_or_else(|| "–".into())
}

fn rate(v: Option<f64>) -> String {
    match v {
        Some(v) if v >= 1e6 => format!("{:.2} M", v / 1e6),
        Some(v) if v >= 1e3 => format!("{:.1} k", v / 1e3),
        Some(v) => format!("{v:.0}"),
        None => "–".into(),
    }
}

impl Report {
    /// The report as Markdown tables, one per placement, then budgets and recommendations.
    pub fn to_table(&self) -> String {
        let m = &self.machine;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "mcpt bench · {} · {} ({} CPUs) · Linux {} · {} tokio workers",
            m.date, m.cpu, m.cores, m.kernel, m.workers
        );
        let s = &self.settings;
        let _ = writeln!(
            out,
            "round trips one at a time: {} in-process, {} cross-process, {} on the lossy link; \
             throughput: {} in flight for {:.1} s",
            s.rounds_in_process,
            s.rounds_cross_process,
            s.rounds_lossy,
            s.window,
            s.throughput_for.as_secs_f64()
        );
        for placement in [Placement::InProcess, Placement::CrossProcess, Placement::Lossy] {
            let rows: Vec<&Row> = self.rows.iter().filter(|r| r.placement == placement).collect();
            if rows.is_empty() {
                continue;
            }
            let _ = writeln!(out, "\n### {}\n", placement.label());
            out.push_str(
                "| case | size | p50 µs | p99 µs | p99.9 µs | msg/s | MB/s | CPU µs/msg | peak RSS MiB | × floor |\n",
            );
            out.push_str("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|\n");
            for r in rows {
                if let Some(e) = &r.error {
                    let _ = writeln!(out, "| {} | {} | failed: {} |||||||| |", r.id, r.size.label(), e);
                    continue;
                }
                let l = r.latency;
                let ratio = match (&r.floor, r.ratio_to_floor) {
                    (Some(f), Some(x)) => format!("{x:.2} ({f})"),
                    _ => "–".into(),
                };
                let _ = writeln!(
                    out,
                    "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                    r.id,
                    r.size.label(),
                    num(l.map(|l| l.p50_us), 1),
                    num(l.map(|l| l.p99_us), 1),
                    num(l.map(|l| l.p999_us), 1),
                    rate(r.messages_per_sec),
                    num(r.mb_per_sec, 1),
                    num(r.cpu_us_per_message, 2),
                    num(r.peak_rss_mib, 1),
                    ratio
                );
            }
        }
        if let Some(why) = &self.lossy_skipped {
            let _ = writeln!(out, "\nlossy link (1% loss, 20 ms RTT): skipped: {why}");
        }
        if !self.budgets.is_empty() {
            out.push_str("\n### budgets\n\n");
            for o in &self.budgets {
                let mark = match o.met {
                    Some(true) => "met   ",
                    Some(false) => "MISSED",
                    None => "skipped",
                };
                let _ = writeln!(out, "- {mark} {}: {}", o.budget.name, o.detail);
            }
        }
        out.push_str("\n### recommendations\n\n");
        for line in &self.recommendations {
            let _ = writeln!(out, "- {line}");
        }
        out
    }
}

fn best<'a>(rows: &'a [Row], placement: Placement, ids: &[&str]) -> Option<&'a Row> {
    rows.iter()
        .filter(|r| r.placement == placement && r.role == Role::Ours && ids.contains(&r.id.as_str()))
        .filter(|r| r.latency.is_some())
        .min_by(|a, b| a.latency.map(|l| l.p50_us).partial_cmp(&b.latency.map(|l| l.p50_us)).expect("finite"))
}

fn describe(r: &Row) -> String {
    let ratio = r.ratio_to_floor.map(|x| format!(", {x:.2}x its floor")).unwrap_or_default();
    format!("{} (p50 {:.1} µs {}{ratio})", r.id, r.latency.map(|l| l.p50_us).unwrap_or(f64::NAN), r.placement.label())
}

/// One recommendation per use case, from the rows measured.
pub fn recommend(rows: &[Row], lossy_skipped: Option<&str>) -> Vec<String> {
    let mut lines = Vec::new();
    let placement = if rows.iter().any(|r| r.placement == Placement::CrossProcess) {
        Placement::CrossProcess
    } else {
        Placement::InProcess
    };
    match best(rows, placement, &["uds", "stdio"]) {
        Some(r) => lines.push(format!(
            "same host: {} — a Unix socket for long-lived servers, stdio when the host starts the server as a child",
            describe(r)
        )),
        None => lines.push("same host: no Unix-socket or stdio case was measured".into()),
    }
    match best(rows, placement, &["wss", "quic-session", "quic-request"]) {
        Some(r) => lines.push(format!(
            "LAN: {} — the fastest encrypted transport measured; plain ws:// and http:// only inside a trusted network",
            describe(r)
        )),
        None => lines.push("LAN: no encrypted network transport was measured".into()),
    }
    let lossy: Vec<&Row> = rows.iter().filter(|r| r.placement == Placement::Lossy && r.latency.is_some()).collect();
    match lossy
        .iter()
        .min_by(|a, b| a.latency.map(|l| l.p99_us).partial_cmp(&b.latency.map(|l| l.p99_us)).expect("finite"))
    {
        Some(r) => lines.push(format!(
            "lossy or mobile network: {} (lowest p99 {:.0} µs on the 1% loss, 20 ms RTT link); QUIC also survives \
             address changes and one lost packet stalls only its own stream",
            r.id,
            r.latency.map(|l| l.p99_us).unwrap_or(f64::NAN)
        )),
        None => lines.push(format!(
            "lossy or mobile network: quic-request by design (a lost packet stalls only its own request's stream; \
             connections survive address changes); not measured in this run{}",
            lossy_skipped.map(|w| format!(": {w}")).unwrap_or_default()
        )),
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_date_is_a_date() {
        let d = today();
        assert_eq!(d.len(), 10);
        assert!(d.starts_with("20"), "{d}");
    }

    #[test]
    fn recommendations_say_what_was_not_measured() {
        let lines = recommend(&[], Some("not root"));
        assert_eq!(lines.len(), 3);
        assert!(lines[2].contains("not root"));
    }
}
