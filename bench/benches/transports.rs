//! Transport costs, in-process: each of our transports (uds, ws, quic-session, quic-request,
//! http) with the session layer as client and the reference server behind its listener, both
//! ends on one 2-worker tokio runtime, the client measuring from a task on that pool (as
//! `mcpt bench` does). Servers and clients are set up once per group and size, outside the
//! timed loop.
//!
//! - `round_trip/<transport>`: one `tools/call` in flight at a time, at `1KB` (an `echo` of
//!   about 1 KB each way), `32KB` and `1MB` (a small `payload` request answered by about
//!   32 KB / 1 MB). Throughput is the request plus response bytes of one round trip.
//! - `in_flight/<transport>`: 1, 16 and 256 concurrent 1 KB `tools/call`s on one session,
//!   timed until the last response; throughput in requests.
//! - `pipelined`: one-way 306-byte `notifications/progress` messages on one Unix socket: the
//!   raw `UnixStream` floor (64 KiB writes, line reader) against our UDS transport with
//!   batching on (`Sender::feed`) and off (`Sender::send`, one write per message), received and
//!   parsed by `Receiver::recv`. Each iteration connects a fresh pair (untimed) and times
//!   `PIPELINED` messages.
//!
//! `cargo bench -p mcp-bench --bench transports` (a few minutes on 2 cores);
//! `cargo bench -p mcp-bench --bench transports -- --test` runs every benchmark once.
#![allow(missing_docs, reason = "criterion's macros generate undocumented functions")]

use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use mcp_bench::cases::{self, Env, Placement};
use mcp_bench::driver::Driver;
use mcp_bench::ours::DevCert;
use mcp_bench::{BenchError, Exchange, Size, pipelined};
use mcp_transport_core::Codec;
use tokio::runtime::Runtime;

/// Our transports, by case id.
const TRANSPORTS: [&str; 5] = ["uds", "ws", "quic-session", "quic-request", "http"];

const SIZES: [Size; 3] = [Size::K1, Size::K32, Size::M1];

const IN_FLIGHT: [usize; 3] = [1, 16, 256];

/// One-way messages per pipelined iteration.
const PIPELINED: usize = 10_000;

/// Hang guard on one round trip or burst: a transport that stops answering fails the bench
/// instead of stalling it.
const HANG_GUARD: Duration = Duration::from_secs(60);

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("tokio runtime")
}

fn env() -> Env {
    Env {
        dir: tempfile::tempdir().expect("temporary directory for sockets"),
        cert: DevCert::generate().expect("self-signed certificate"),
        launcher: None,
        remote: None,
    }
}

/// Sets `id` up in-process at `size`; a case that cannot be set up is reported and skipped.
#[allow(clippy::print_stderr, reason = "a bench reports the cases it skips")]
fn driver(rt: &Runtime, env: &Env, id: &str, size: Size) -> Option<Box<dyn Driver>> {
    let mut case = *cases::find(id).unwrap_or_else(|| panic!("no case {id:?}"));
    case.size = size;
    match rt.block_on(cases::setup(&case, Placement::InProcess, env)) {
        Ok(setup) => Some(setup.driver),
        Err(e) => {
            eprintln!("skipping {id} at {}: {e}", size.label());
            None
        }
    }
}

/// Drops a driver inside the runtime: closing a session client spawns its shutdown.
fn retire(rt: &Runtime, slot: Option<Box<dyn Driver>>) {
    rt.block_on(async move { drop(slot) });
}

/// What one timed iteration does.
#[derive(Clone, Copy)]
enum Op {
    RoundTrip,
    Burst(usize),
}

/// Runs `op` `iters` times from a task on the runtime's workers and returns the time taken.
/// The driver moves into the task and back, so it is set up once and reused.
fn timed(rt: &Runtime, slot: &mut Option<Box<dyn Driver>>, what: &str, op: Op, iters: u64) -> Duration {
    let mut driver = slot.take().expect("the driver is put back after every sample");
    let task = rt.spawn(async move {
        let start = Instant::now();
        for i in 0..iters {
            let step = match op {
                Op::RoundTrip => driver.round_trip(),
                Op::Burst(k) => driver.burst(k),
            };
            match tokio::time::timeout(HANG_GUARD, step).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Err(format!("iteration {i}: {e}")),
                Err(_) => return Err(format!("iteration {i}: no answer within {HANG_GUARD:?}")),
            }
        }
        Ok((start.elapsed(), driver))
    });
    match rt.block_on(task) {
        Ok(Ok((elapsed, driver))) => {
            *slot = Some(driver);
            elapsed
        }
        Ok(Err(e)) => panic!("{what}: {e}"),
        Err(e) => panic!("{what}: the measuring task failed: {e}"),
    }
}

fn round_trip(c: &mut Criterion) {
    let rt = runtime();
    let env = env();
    for id in TRANSPORTS {
        let mut g = c.benchmark_group(format!("round_trip/{id}"));
        for size in SIZES {
            let Some(driver) = driver(&rt, &env, id, size) else { continue };
            let mut slot = Some(driver);
            g.throughput(Throughput::Bytes(Exchange::new(size).bytes_per_round_trip() as u64));
            let what = format!("round_trip/{id}/{}", size.label());
            g.bench_function(BenchmarkId::from_parameter(size.label()), |b| {
                b.iter_custom(|iters| timed(&rt, &mut slot, &what, Op::RoundTrip, iters))
            });
            retire(&rt, slot);
        }
        g.finish();
    }
}

fn in_flight(c: &mut Criterion) {
    let rt = runtime();
    let env = env();
    for id in TRANSPORTS {
        let Some(driver) = driver(&rt, &env, id, Size::K1) else { continue };
        let mut slot = Some(driver);
        let mut g = c.benchmark_group(format!("in_flight/{id}"));
        for k in IN_FLIGHT {
            g.throughput(Throughput::Elements(k as u64));
            let what = format!("in_flight/{id}/{k}");
            g.bench_function(BenchmarkId::from_parameter(k), |b| {
                b.iter_custom(|iters| timed(&rt, &mut slot, &what, Op::Burst(k), iters))
            });
        }
        g.finish();
        retire(&rt, slot);
    }
}

/// Sums the time of `iters` runs of a pipelined measurement that reports messages per second
/// for `PIPELINED` messages (its own timer starts once both ends are connected).
fn pipelined_time<F, Fut>(rt: &Runtime, what: &str, iters: u64, run: F) -> Duration
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<f64, BenchError>> + Send + 'static,
{
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        match rt.block_on(rt.spawn(run())) {
            Ok(Ok(per_sec)) => total += Duration::from_secs_f64(PIPELINED as f64 / per_sec),
            Ok(Err(e)) => panic!("{what}: {e}"),
            Err(e) => panic!("{what}: the measuring task failed: {e}"),
        }
    }
    total
}

fn pipelined(c: &mut Criterion) {
    let rt = runtime();
    let mut g = c.benchmark_group("pipelined");
    g.throughput(Throughput::Elements(PIPELINED as u64));
    g.bench_function("raw-uds", |b| {
        b.iter_custom(|iters| pipelined_time(&rt, "pipelined/raw-uds", iters, || pipelined::raw_uds_lines(PIPELINED)))
    });
    for (name, inline) in [("uds-batching-on", false), ("uds-batching-off", true)] {
        let what = format!("pipelined/{name}");
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                pipelined_time(&rt, &what, iters, || pipelined::transport_uds(PIPELINED, Codec::lines(), inline))
            })
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = round_trip, in_flight, pipelined
}
criterion_main!(benches);
