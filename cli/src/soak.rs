//! `mcpt soak`: many concurrent clients through the gateway to upstreams on several
//! transports, on loopback, for a bounded time.

use std::path::PathBuf;
use std::time::Duration;

use mcp_bench::process::Launcher;
use mcp_bench::soak::{Downstream, SoakOptions, Upstream};

/// Arguments of `mcpt soak`.
#[derive(Debug, clap::Args)]
pub(crate) struct SoakArgs {
    /// Concurrent clients, each with its own session (at most 10,000).
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    clients: u64,
    /// How long the clients make calls, e.g. 60s, 500ms, 2m (at most 1 hour).
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    duration: Duration,
    /// Upstream transports, one `mcpt serve` each (stdio: a child of the gateway).
    #[arg(long, value_delimiter = ',', default_value = "unix,ws,quic,http,stdio", value_parser = parse_upstream)]
    upstreams: Vec<Upstream>,
    /// Transports the clients reach the gateway over, in turn.
    #[arg(long = "via", value_delimiter = ',', default_value = "unix,ws,http", value_parser = parse_downstream)]
    downstreams: Vec<Downstream>,
    /// How long one call may take before it counts as lost.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    call_timeout: Duration,
    /// Interval between samples of resident memory and descriptors.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    sample_every: Duration,
    /// Write the report, with every sample, as JSON.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
}

/// A duration such as `60s`, `500ms`, `2m` or a number of seconds, at most one hour.
fn parse_duration(s: &str) -> Result<Duration, String> {
    let (number, unit) = s.find(|c: char| !c.is_ascii_digit()).map_or((s, ""), |i| s.split_at(i));
    let n: u64 = number.parse().map_err(|_| format!("{s:?} is not a duration such as 60s, 500ms or 2m"))?;
    let d = match unit {
        "" | "s" => Duration::from_secs(n),
        "ms" => Duration::from_millis(n),
        "m" => Duration::from_secs(n.saturating_mul(60)),
        other => return Err(format!("{s:?}: unknown unit {other:?} (use ms, s or m)")),
    };
    if d.is_zero() || d > Duration::from_secs(3600) {
        return Err(format!("{s:?}: must be more than 0 and at most 1 hour"));
    }
    Ok(d)
}

fn parse_upstream(s: &str) -> Result<Upstream, String> {
    Upstream::parse(s).ok_or_else(|| format!("unknown upstream transport {s:?} (unix, ws, quic, http, stdio)"))
}

fn parse_downstream(s: &str) -> Result<Downstream, String> {
    Downstream::parse(s).ok_or_else(|| format!("unknown client transport {s:?} (unix, ws, http)"))
}

/// Runs the soak; `Ok(false)` when a criterion was missed.
#[allow(clippy::print_stdout)]
pub(crate) async fn run(args: SoakArgs) -> Result<bool, String> {
    let program = std::env::current_exe().map_err(|e| format!("cannot find this program: {e}"))?;
    let options = SoakOptions {
        launcher: Launcher { program },
        clients: args.clients as usize,
        duration: args.duration,
        upstreams: dedup(args.upstreams),
        downstreams: dedup(args.downstreams),
        call_timeout: args.call_timeout,
        sample_every: args.sample_every,
        settle: Duration::from_secs(20),
    };
    let report = mcp_bench::soak::run(options).await.map_err(|e| e.to_string())?;
    println!("{}", report.to_text());
    if let Some(path) = &args.json {
        let json = serde_json::to_vec_pretty(&report).map_err(|e| e.to_string())?;
        std::fs::write(path, json).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(report.passed())
}

/// `items` without repeats, in first-seen order.
fn dedup<T: PartialEq>(items: Vec<T>) -> Vec<T> {
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        if !out.contains(&item) {
            out.push(item);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_units_and_refuse_nonsense() {
        assert_eq!(parse_duration("60s"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        for bad in ["", "0s", "5h", "s", "2 m", "61m", "99999999999999999999m"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }
}
