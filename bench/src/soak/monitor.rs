//! Resident memory and open file descriptors of the processes under load, sampled from
//! `/proc` while the soak runs.

use std::time::Duration;

use serde::Serialize;

/// The resident memory (`VmRSS`) of process `pid`, in bytes; `None` once it is gone.
pub fn rss(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// The number of open file descriptors of process `pid`; `None` once it is gone.
pub fn open_fds(pid: u32) -> Option<usize> {
    Some(std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count())
}

/// The direct children of process `pid` (from every thread's `children` list).
pub fn children(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return out };
    for task in tasks.flatten() {
        let path = task.path().join("children");
        if let Ok(text) = std::fs::read_to_string(path) {
            out.extend(text.split_whitespace().filter_map(|p| p.parse::<u32>().ok()));
        }
    }
    out.sort_unstable();
    out.dedup();
    out
}

/// A process watched during the soak.
#[derive(Debug, Clone, Serialize)]
pub struct Watched {
    /// What it is, e.g. `gateway` or `upstream uds`.
    pub name: String,
    /// Its process id.
    pub pid: u32,
}

/// One sample of every watched process.
#[derive(Debug, Clone, Serialize)]
pub struct Sample {
    /// Time since the clients started, in seconds.
    pub at_s: f64,
    /// Calls answered so far by all clients.
    pub calls: u64,
    /// Resident memory per watched process (same order as the watched list), in bytes;
    /// 0 when the process is gone.
    pub rss: Vec<u64>,
    /// Open file descriptors per watched process; 0 when the process is gone.
    pub fds: Vec<usize>,
}

/// Samples every watched process now.
pub fn sample(watched: &[Watched], at: Duration, calls: u64) -> Sample {
    Sample {
        at_s: at.as_secs_f64(),
        calls,
        rss: watched.iter().map(|w| rss(w.pid).unwrap_or(0)).collect(),
        fds: watched.iter().map(|w| open_fds(w.pid).unwrap_or(0)).collect(),
    }
}

/// Whether memory stayed flat: the growth between the first sample after the warm-up (the
/// first quarter of the run) and the peak of the last quarter, against a tolerance of 10 % or
/// 16 MiB, whichever is larger. `None` when the run has too few samples to judge (under 8
/// after the warm-up).
pub fn rss_growth(series: &[(f64, u64)]) -> Option<Growth> {
    let end = series.last()?.0;
    let after: Vec<(f64, u64)> = series.iter().copied().filter(|(t, _)| *t >= end / 4.0).collect();
    if after.len() < 8 {
        return None;
    }
    let start = after[0].1;
    let last_quarter = after.iter().filter(|(t, _)| *t >= end * 0.75).map(|(_, r)| *r).max()?;
    let tolerance = (start / 10).max(16 << 20);
    Some(Growth { start, end: last_quarter, flat: last_quarter <= start + tolerance, slope_mib_per_min: slope(&after) })
}

/// Memory growth over a run.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Growth {
    /// Resident bytes after the warm-up.
    pub start: u64,
    /// Peak resident bytes in the last quarter of the run.
    pub end: u64,
    /// Whether the growth is within the tolerance.
    pub flat: bool,
    /// Least-squares slope over the samples after the warm-up, in MiB per minute.
    pub slope_mib_per_min: f64,
}

/// The least-squares slope of resident memory over time, in MiB per minute.
fn slope(points: &[(f64, u64)]) -> f64 {
    let n = points.len() as f64;
    let mean_t = points.iter().map(|(t, _)| t).sum::<f64>() / n;
    let mean_r = points.iter().map(|(_, r)| *r as f64).sum::<f64>() / n;
    let cov: f64 = points.iter().map(|(t, r)| (t - mean_t) * (*r as f64 - mean_r)).sum();
    let var: f64 = points.iter().map(|(t, _)| (t - mean_t).powi(2)).sum();
    if var == 0.0 { 0.0 } else { cov / var * 60.0 / f64::from(1u32 << 20) }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Starts `sh -c SCRIPT` and waits until it has become `sleep`.
    fn sleeping(script: &str) -> std::process::Child {
        let child = std::process::Command::new("sh").args(["-c", script]).spawn().unwrap();
        let comm = format!("/proc/{}/comm", child.id());
        while std::fs::read_to_string(&comm).unwrap().trim() != "sleep" {
            std::thread::sleep(Duration::from_millis(5));
        }
        child
    }

    #[test]
    fn reads_child_processes() {
        assert!(rss(std::process::id()).is_some_and(|r| r > 0));
        let mut plain = sleeping("exec sleep 5");
        let mut two_more = sleeping("exec 7</dev/null 8</dev/null; exec sleep 5");
        assert!(children(std::process::id()).contains(&plain.id()));
        let n = open_fds(plain.id()).unwrap();
        assert_eq!(open_fds(two_more.id()), Some(n + 2));
        assert!(rss(plain.id()).is_some_and(|r| r > 0));
        for child in [&mut plain, &mut two_more] {
            child.kill().unwrap();
            child.wait().unwrap();
            assert_eq!(rss(child.id()), None, "gone once reaped");
            assert_eq!(open_fds(child.id()), None);
        }
    }

    #[test]
    fn growth_tells_a_plateau_from_a_leak() {
        const MIB: u64 = 1 << 20;
        // Warm-up growth in the first quarter, then flat with noise.
        let plateau: Vec<(f64, u64)> = (0..60)
            .map(|s| {
                (
                    f64::from(s),
                    if s < 10 { 40 * MIB + u64::from(s as u32) * MIB } else { 50 * MIB + (s % 3) as u64 * MIB },
                )
            })
            .collect();
        let g = rss_growth(&plateau).unwrap();
        assert!(g.flat, "{g:?}");
        assert!(g.slope_mib_per_min.abs() < 2.0, "{g:?}");
        // 2 MiB more every second.
        let leak: Vec<(f64, u64)> = (0..60).map(|s| (f64::from(s), 50 * MIB + u64::from(s as u32) * 2 * MIB)).collect();
        let g = rss_growth(&leak).unwrap();
        assert!(!g.flat, "{g:?}");
        assert!((g.slope_mib_per_min - 120.0).abs() < 1.0, "{g:?}");
        assert_eq!(rss_growth(&leak[..5]), None, "too short to judge");
    }
}
