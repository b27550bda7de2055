//! Percentiles and the process resources a measurement used.

use std::time::Duration;

/// Percentiles of a set of round-trip samples.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Summary {
    /// Median, in microseconds.
    pub p50_us: f64,
    /// 99th percentile, in microseconds.
    pub p99_us: f64,
    /// 99.9th percentile, in microseconds.
    pub p999_us: f64,
    /// Number of samples.
    pub count: usize,
}

impl Summary {
    /// Summarizes samples (sorted in place); `None` when there are none.
    pub fn of(samples: &mut [Duration]) -> Option<Summary> {
        if samples.is_empty() {
            return None;
        }
        samples.sort_unstable();
        let at = |q: f64| {
            let i = ((samples.len() - 1) as f64 * q).round() as usize;
            samples[i.min(samples.len() - 1)].as_secs_f64() * 1e6
        };
        Some(Summary { p50_us: at(0.50), p99_us: at(0.99), p999_us: at(0.999), count: samples.len() })
    }
}

/// CPU time (user + system) of a process so far.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CpuTime(pub Duration);

/// The CPU time of process `pid`: the sum over its live threads of the nanosecond counters in
/// `/proc/<pid>/task/*/schedstat`, or the clock-tick counters of `/proc/<pid>/stat` when
/// schedstat is unavailable; `None` once it is gone. Threads that already exited are not
/// counted by the first source, so measure processes whose threads live for the whole run.
pub fn process_cpu_time(pid: u32) -> Option<CpuTime> {
    schedstat_cpu_time(pid).or_else(|| stat_cpu_time(pid))
}

/// This process's CPU time.
pub fn own_cpu_time() -> CpuTime {
    process_cpu_time(std::process::id()).unwrap_or_default()
}

fn schedstat_cpu_time(pid: u32) -> Option<CpuTime> {
    let mut total = 0u64;
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).ok()?.flatten() {
        let Ok(line) = std::fs::read_to_string(task.path().join("schedstat")) else { continue };
        total += line.split_whitespace().next()?.parse::<u64>().ok()?;
    }
    (total > 0).then(|| CpuTime(Duration::from_nanos(total)))
}

fn stat_cpu_time(pid: u32) -> Option<CpuTime> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may contain spaces.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line: 11 and 12 after the state.
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // USER_HZ is 100 on every Linux architecture this runs on.
    Some(CpuTime(Duration::from_millis(ticks * 10)))
}

/// Peak resident memory (`VmHWM`) of process `pid`, in bytes.
pub fn peak_rss(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Resets the peak resident memory of process `pid` to its current size (Linux `clear_refs`
/// value 5); `false` when the kernel refused.
pub fn reset_peak_rss(pid: u32) -> bool {
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_pick_the_nearest_rank() {
        let mut samples: Vec<Duration> = (1..=1000).rev().map(Duration::from_micros).collect();
        let s = Summary::of(&mut samples).unwrap();
        let close = |a: f64, b: f64| (a - b).abs() < 1e-6;
        assert!(close(s.p50_us, 501.0) && close(s.p99_us, 990.0) && close(s.p999_us, 999.0), "{s:?}");
        assert_eq!(s.count, 1000);
        assert!(Summary::of(&mut []).is_none());
    }

    #[test]
    fn reads_this_process() {
        let pid = std::process::id();
        assert!(peak_rss(pid).unwrap() > 0);
        let busy = std::time::Instant::now();
        while busy.elapsed() < Duration::from_millis(30) {
            std::hint::black_box(0u64);
        }
        assert!(process_cpu_time(pid).unwrap().0 > Duration::ZERO);
        assert!(stat_cpu_time(pid).is_some());
        assert!(process_cpu_time(u32::MAX).is_none());
    }
}
