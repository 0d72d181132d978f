//! The ingest phase: several concurrent OTLP connections (alternating
//! HTTP/protobuf and gRPC), each exporting batches one at a time and
//! waiting for the acknowledgement. The batches' bodies are made before the
//! clock starts unless `--live-generation` (see `payloads`).
//!
//! Connections take the next batch from a shared counter, so batches are
//! sent in order (as spans of a live system arrive in roughly the order
//! they happen) and no connection drifts ahead in data time; batch `b`
//! always holds traces `b*batch..`, so the spans sent do not depend on
//! scheduling, only which connection (and protocol) carries them does.
//! (A fixed `b % connections` share let the connections drift minutes of
//! data time apart over a long run, which made every sealed segment cover
//! several minutes of overlapping span time; a live source does not.)

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::otlp::{self, Sender};
use crate::payloads::{MakePayload, Payload, Payloads};
use crate::procfs;
use crate::server::ServerProcess;
use crate::workload::Workload;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Protocols {
    /// Alternate connections between OTLP/HTTP protobuf and OTLP/gRPC.
    Both,
    Http,
    Grpc,
}

pub struct IngestResult {
    pub spans: u64,
    pub elapsed: Duration,
    pub overloaded_retries: u64,
    pub server_cpu_seconds: f64,
    pub generator_cpu_seconds: f64,
    pub server_peak_rss: u64,
}

pub fn run(
    server: &ServerProcess,
    workload: Workload,
    connections: usize,
    batch_traces: u64,
    protocols: Protocols,
    pregenerate: bool,
) -> anyhow::Result<IngestResult> {
    let connections = connections.max(1);
    let batch_traces = batch_traces.max(1);
    let batches = workload.traces.div_ceil(batch_traces);
    let make: MakePayload = Arc::new(move |batch| {
        let spans = workload.batch(batch * batch_traces, batch_traces);
        Ok(Payload {
            body: otlp::encode(&otlp::export_request(&spans, batch)),
            spans: spans.len() as u64,
        })
    });
    let payloads = Payloads::prepare(batches, make, pregenerate)?;
    let acknowledged = Arc::new(AtomicU64::new(0));
    let next_batch = Arc::new(AtomicU64::new(0));
    let server_cpu_before = procfs::cpu_seconds(server.pid())?;
    let own_cpu_before = procfs::cpu_seconds(std::process::id())?;
    let began = Instant::now();
    let mut workers = Vec::new();
    for connection in 0..connections {
        let use_grpc = match protocols {
            Protocols::Both => connection % 2 == 1,
            Protocols::Http => false,
            Protocols::Grpc => true,
        };
        let mut sender = if use_grpc {
            Sender::grpc(&server.otlp_grpc)?
        } else {
            Sender::http(&server.otlp_http)
        };
        let acknowledged = Arc::clone(&acknowledged);
        let next_batch = Arc::clone(&next_batch);
        let payloads = payloads.clone();
        workers.push(std::thread::spawn(move || -> anyhow::Result<u64> {
            let mut overloaded = 0;
            loop {
                let batch = next_batch.fetch_add(1, Ordering::Relaxed);
                if batch >= payloads.batches() {
                    break;
                }
                let payload = payloads.get(batch)?;
                overloaded += sender
                    .export(&payload.body)
                    .with_context(|| format!("{} export", sender.protocol()))?;
                acknowledged.fetch_add(payload.spans, Ordering::Relaxed);
            }
            Ok(overloaded)
        }));
    }
    let mut overloaded_retries = 0;
    for worker in workers {
        overloaded_retries += worker
            .join()
            .map_err(|_| anyhow::anyhow!("a sender thread panicked"))??;
    }
    let elapsed = began.elapsed();
    Ok(IngestResult {
        spans: acknowledged.load(Ordering::Relaxed),
        elapsed,
        overloaded_retries,
        server_cpu_seconds: procfs::cpu_seconds(server.pid())? - server_cpu_before,
        generator_cpu_seconds: procfs::cpu_seconds(std::process::id())? - own_cpu_before,
        server_peak_rss: procfs::peak_rss_bytes(server.pid())?,
    })
}
