//! Session + Unix-socket round trips and pipelined throughput next to raw tokio floors,
//! measured side by side in one run.
//!
//! `cargo run --release -p mcp-bench --example foundation [-- WORKERS RUNS]`
#![allow(clippy::print_stdout)]

use mcp_bench::{Summary, raw_uds_length_rtt, raw_uds_lines_pipelined, session_uds_rtt, transport_uds_pipelined};
use mcp_transport_core::Codec;

fn main() {
    let mut args = std::env::args().skip(1);
    let workers: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(2);
    let runs: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(3);
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(workers).enable_all().build().expect("runtime");
    let (warmup, n, piped) = (2_000, 20_000, 200_000);
    println!("{workers} worker(s), {runs} runs, {n} round trips after {warmup} warm-up; medians of runs");
    let mut raw = Vec::new();
    let mut ours = Vec::new();
    let mut raw_pipe = Vec::new();
    let mut our_pipe = Vec::new();
    let mut our_pipe_len = Vec::new();
    let mut our_pipe_send = Vec::new();
    for _ in 0..runs {
        // Every measurement runs as a task on the worker pool, as in a server, never on the
        // thread that blocks on the runtime.
        let (r, o, rp, op, opl, ops) = rt.block_on(async {
            tokio::spawn(async move {
                (
                    Summary::of(&mut raw_uds_length_rtt(warmup, n).await),
                    Summary::of(&mut session_uds_rtt(warmup, n).await),
                    raw_uds_lines_pipelined(piped).await,
                    transport_uds_pipelined(piped, Codec::lines(), false).await,
                    transport_uds_pipelined(piped, Codec::length_prefixed_json(), false).await,
                    transport_uds_pipelined(piped, Codec::lines(), true).await,
                )
            })
            .await
            .expect("measurement task")
        });
        raw.push(r);
        ours.push(o);
        raw_pipe.push(rp);
        our_pipe.push(op);
        our_pipe_len.push(opl);
        our_pipe_send.push(ops);
    }
    let med = |v: &mut Vec<f64>| {
        v.sort_by(|a, b| a.total_cmp(b));
        v[v.len() / 2]
    };
    let us = |v: &[Summary], f: fn(&Summary) -> std::time::Duration| {
        let mut xs: Vec<f64> = v.iter().map(|s| f(s).as_secs_f64() * 1e6).collect();
        xs.sort_by(|a, b| a.total_cmp(b));
        xs[xs.len() / 2]
    };
    let (rp50, rp99) = (us(&raw, |s| s.p50), us(&raw, |s| s.p99));
    let (op50, op99) = (us(&ours, |s| s.p50), us(&ours, |s| s.p99));
    println!("| path | p50 µs | p99 µs | p50 ratio |");
    println!("|---|---|---|---|");
    println!("| raw tokio UnixStream, length prefix, same bytes | {rp50:.1} | {rp99:.1} | 1.00 |");
    println!(
        "| session + UDS transport, tools/call echo (~1 KB each way) | {op50:.1} | {op99:.1} | {:.2} |",
        op50 / rp50
    );
    println!();
    println!("| pipelined one way, 284-byte messages | messages/s |");
    println!("|---|---|");
    println!("| raw tokio UnixStream, newline-delimited, 64 KiB writes | {:.2} M |", med(&mut raw_pipe) / 1e6);
    println!("| UDS transport Sender::feed → Receiver::recv, lines | {:.2} M |", med(&mut our_pipe) / 1e6);
    println!(
        "| UDS transport Sender::feed → Receiver::recv, length-prefixed JSON | {:.2} M |",
        med(&mut our_pipe_len) / 1e6
    );
    println!(
        "| UDS transport Sender::send (inline write each) → Receiver::recv, lines | {:.2} M |",
        med(&mut our_pipe_send) / 1e6
    );
}
