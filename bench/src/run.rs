//! Measuring cases: round trips one at a time, then bursts, with the CPU and memory they cost.

use std::time::{Duration, Instant};

use tracing::Instrument;

use crate::cases::{self, Case, Env, Placement, Role, Target};
use crate::stats::{self, Summary};
use crate::{BenchError, Exchange};

/// How much to measure.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Settings {
    /// Timed round trips per in-process case (after a tenth as many warm-up ones).
    pub rounds_in_process: usize,
    /// Timed round trips per cross-process case.
    pub rounds_cross_process: usize,
    /// Timed round trips per case on the lossy link.
    pub rounds_lossy: usize,
    /// Requests in flight together in the throughput phase.
    pub window: usize,
    /// One-way messages in the pipelined cases.
    pub pipelined_messages: usize,
    /// Length of the throughput phase.
    #[serde(with = "secs")]
    pub throughput_for: Duration,
}

mod secs {
    pub(super) fn serialize<S: serde::Serializer>(d: &std::time::Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            rounds_in_process: 5_000,
            rounds_cross_process: 2_000,
            rounds_lossy: 100,
            window: 16,
            pipelined_messages: 200_000,
            throughput_for: Duration::from_millis(300),
        }
    }
}

impl Settings {
    fn rounds(&self, placement: Placement) -> usize {
        match placement {
            Placement::InProcess => self.rounds_in_process,
            Placement::CrossProcess => self.rounds_cross_process,
            Placement::Lossy => self.rounds_lossy,
        }
    }
}

/// One measured case.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Row {
    /// Case id.
    pub id: String,
    /// What it is.
    pub label: String,
    /// Floor, ours or peer.
    pub role: Role,
    /// Where the server ran.
    pub placement: Placement,
    /// Payload size class.
    pub size: crate::Size,
    /// The case it is compared with.
    pub floor: Option<String>,
    /// Round-trip latency, one request in flight.
    pub latency: Option<Summary>,
    /// Round trips per second with `window` requests in flight (pipelined rows: one-way
    /// messages per second).
    pub messages_per_sec: Option<f64>,
    /// Payload megabytes (request plus response) per second in the throughput phase.
    pub mb_per_sec: Option<f64>,
    /// CPU time per round trip in the throughput phase, client and server together.
    pub cpu_us_per_message: Option<f64>,
    /// Peak resident memory of the server process (cross-process cases only: in-process
    /// servers share this process with every other case).
    pub peak_rss_mib: Option<f64>,
    /// How many times worse than its floor: p50 over the floor's p50 (for pipelined rows, the
    /// floor's rate over this one's).
    pub ratio_to_floor: Option<f64>,
    /// Why it could not be measured.
    pub error: Option<String>,
}

impl Row {
    fn empty(case: &Case, placement: Placement) -> Row {
        Row {
            id: case.id.into(),
            label: case.label.into(),
            role: case.role,
            placement,
            size: case.size,
            floor: case.floor.map(Into::into),
            latency: None,
            messages_per_sec: None,
            mb_per_sec: None,
            cpu_us_per_message: None,
            peak_rss_mib: None,
            ratio_to_floor: None,
            error: None,
        }
    }
}

/// Blocks each group's round trips and throughput phases are cut into, so that the cases of a
/// group take turns and share whatever state the machine is in (which core the scheduler
/// puts a woken thread on changes cross-process latency several-fold).
const BLOCKS: usize = 10;

/// Measures a group of cases compared with each other (a floor and the cases held to it),
/// interleaved block by block. Failures are recorded in the rows, never panics.
pub async fn measure_group(group: &[&Case], placement: Placement, env: &Env, settings: &Settings) -> Vec<Row> {
    let mut rows: Vec<Row> = group.iter().map(|c| Row::empty(c, placement)).collect();
    if group.iter().any(|c| matches!(c.target, Target::PipelinedRaw | Target::PipelinedOurs)) {
        for (row, case) in rows.iter_mut().zip(group) {
            if let Err(e) = pipelined(row, case, settings).await {
                row.error = Some(e.to_string());
            }
        }
        return rows;
    }
    let mut live: Vec<Option<Live>> = Vec::with_capacity(group.len());
    for (row, case) in rows.iter_mut().zip(group) {
        let span = tracing::info_span!("bench_setup", case = case.id, placement = placement.label());
        match cases::setup(case, placement, env).instrument(span).await {
            Ok(setup) => {
                if let Some(pid) = setup.server_pid {
                    stats::reset_peak_rss(pid);
                }
                let rounds = settings.rounds(placement);
                live.push(Some(Live {
                    setup,
                    samples: Vec::with_capacity(rounds),
                    count: 0,
                    busy: 0.0,
                    cpu: Duration::ZERO,
                }));
            }
            Err(e) => {
                tracing::warn!(case = case.id, error = %e, "setup failed");
                row.error = Some(e.to_string());
                live.push(None);
            }
        }
    }
    let rounds = settings.rounds(placement);
    let per_block = rounds.div_ceil(BLOCKS);
    let phase = settings.throughput_for / BLOCKS as u32;
    // Warm-up, then the timed blocks in turn.
    for (slot, row) in live.iter_mut().zip(rows.iter_mut()) {
        if let Some(l) = slot
            && let Err(e) = l.warm_up(rounds / 10).await
        {
            row.error = Some(e.to_string());
            *slot = None;
        }
    }
    for _ in 0..BLOCKS {
        for (slot, row) in live.iter_mut().zip(rows.iter_mut()) {
            let Some(l) = slot else { continue };
            let result = async {
                l.round_trips(per_block.min(rounds - l.samples.len())).await?;
                l.throughput(phase, settings.window).await
            };
            if let Err(e) = result.await {
                tracing::warn!(case = row.id, error = %e, "case failed");
                row.error = Some(e.to_string());
                *slot = None;
            }
        }
    }
    let bytes = |case: &Case| Exchange::new(case.size).bytes_per_round_trip() as f64;
    for ((slot, row), case) in live.into_iter().zip(rows.iter_mut()).zip(group) {
        let Some(mut l) = slot else { continue };
        row.latency = Summary::of(&mut l.samples);
        let rate = l.count as f64 / l.busy;
        row.messages_per_sec = Some(rate);
        row.mb_per_sec = Some(rate * bytes(case) / 1e6);
        row.cpu_us_per_message = Some(l.cpu.as_secs_f64() * 1e6 / l.count as f64);
        row.peak_rss_mib = l.setup.server_pid.and_then(stats::peak_rss).map(|b| b as f64 / (1024.0 * 1024.0));
    }
    rows
}

/// A case set up and being measured.
struct Live {
    setup: cases::Setup,
    samples: Vec<Duration>,
    /// Round trips made in throughput phases.
    count: usize,
    /// Seconds spent in throughput phases.
    busy: f64,
    /// CPU time (client and server processes) spent in throughput phases.
    cpu: Duration,
}

impl Live {
    async fn warm_up(&mut self, n: usize) -> Result<(), BenchError> {
        for _ in 0..n {
            self.setup.driver.round_trip().await?;
        }
        Ok(())
    }

    async fn round_trips(&mut self, n: usize) -> Result<(), BenchError> {
        for _ in 0..n {
            let start = Instant::now();
            self.setup.driver.round_trip().await?;
            self.samples.push(start.elapsed());
        }
        Ok(())
    }

    fn cpu_now(&self) -> Duration {
        let server = self.setup.server_pid.and_then(stats::process_cpu_time).unwrap_or_default();
        stats::own_cpu_time().0 + server.0
    }

    async fn throughput(&mut self, phase: Duration, window: usize) -> Result<(), BenchError> {
        let cpu_before = self.cpu_now();
        let start = Instant::now();
        loop {
            self.setup.driver.burst(window).await?;
            self.count += window;
            if start.elapsed() >= phase {
                break;
            }
        }
        self.busy += start.elapsed().as_secs_f64();
        self.cpu += self.cpu_now().saturating_sub(cpu_before);
        Ok(())
    }
}

async fn pipelined(row: &mut Row, case: &Case, settings: &Settings) -> Result<(), BenchError> {
    let n = settings.pipelined_messages;
    let cpu_before = stats::own_cpu_time().0;
    let rate = match case.target {
        Target::PipelinedRaw => crate::pipelined::raw_uds_lines(n).await,
        _ => crate::pipelined::transport_uds(n, mcp_transport_core::Codec::lines(), false).await,
    }?;
    let cpu_used = stats::own_cpu_time().0.saturating_sub(cpu_before);
    row.messages_per_sec = Some(rate);
    row.mb_per_sec = Some(rate * crate::pipelined::message_len() as f64 / 1e6);
    row.cpu_us_per_message = Some(cpu_used.as_secs_f64() * 1e6 / n as f64);
    Ok(())
}

/// Fills in each row's ratio to its floor (same placement).
pub fn link_floors(rows: &mut [Row]) {
    let lookup: Vec<(String, Placement, Option<f64>, Option<f64>)> =
        rows.iter().map(|r| (r.id.clone(), r.placement, r.latency.map(|l| l.p50_us), r.messages_per_sec)).collect();
    for row in rows.iter_mut() {
        let Some(floor) = &row.floor else { continue };
        let Some((_, _, floor_p50, floor_rate)) = lookup.iter().find(|(id, p, ..)| id == floor && *p == row.placement)
        else {
            continue;
        };
        row.ratio_to_floor = match (row.latency, floor_p50, row.messages_per_sec, floor_rate) {
            (Some(l), Some(f), ..) => Some(l.p50_us / f),
            (None, None, Some(r), Some(f)) if r > 0.0 => Some(f / r),
            _ => None,
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn measures_an_in_process_floor_and_our_unix_socket() {
        let env = Env {
            dir: tempfile::tempdir().unwrap(),
            cert: crate::ours::DevCert::generate().unwrap(),
            launcher: None,
            remote: None,
        };
        let settings =
            Settings { rounds_in_process: 50, throughput_for: Duration::from_millis(20), ..Settings::default() };
        let settings = Settings { pipelined_messages: 1000, ..settings };
        let group = |ids: &[&str]| ids.iter().map(|id| cases::find(id).unwrap()).collect::<Vec<_>>();
        let mut rows = measure_group(&group(&["raw-uds", "uds"]), Placement::InProcess, &env, &settings).await;
        rows.extend(
            measure_group(&group(&["raw-uds-pipelined", "uds-pipelined"]), Placement::InProcess, &env, &settings).await,
        );
        link_floors(&mut rows);
        for row in &rows {
            assert!(row.error.is_none(), "{row:?}");
            if !row.id.ends_with("pipelined") {
                assert_eq!(row.latency.unwrap().count, 50);
            }
            assert!(row.messages_per_sec.unwrap() > 0.0 && row.cpu_us_per_message.unwrap() >= 0.0);
        }
        assert!(rows[1].ratio_to_floor.unwrap() > 0.0);
        assert!(rows[0].ratio_to_floor.is_none());
        assert!(rows[3].ratio_to_floor.unwrap() > 0.0, "pipelined rows compare rates");
        // Cross-process without a launcher is reported, not a panic.
        let rows = measure_group(&group(&["uds"]), Placement::CrossProcess, &env, &settings).await;
        assert!(rows[0].error.as_ref().unwrap().contains("launcher"));
    }
}
