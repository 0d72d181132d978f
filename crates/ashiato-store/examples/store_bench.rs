//! Rough store benchmark: durable ingest rate (group commit under
//! concurrent appenders), on-disk bytes per span after sealing, and trace
//! lookup latency over the sealed segments.
//!
//! `cargo run --release -p ashiato-store --example store_bench -- [SPANS] [APPENDERS] [BATCH]`
//! (defaults: 1000000 spans, 8 appenders, 500 spans per batch). Data goes
//! to a temporary directory that is removed at the end.

use std::error::Error;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ashiato_store::{AppendError, Store, StoreConfig};

mod support {
    pub mod synthetic;
}

fn argument(index: usize, default: usize) -> Result<usize, Box<dyn Error>> {
    match std::env::args().nth(index) {
        Some(text) => Ok(text.parse()?),
        None => Ok(default),
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let total = argument(1, 1_000_000)?;
    let appenders = argument(2, 8)?.max(1);
    let batch_size = argument(3, 500)?.max(1);
    let dir = tempfile::tempdir()?;
    let store = Store::open(StoreConfig::new(dir.path()))?;
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_nanos() as u64;

    println!("generating {total} spans");
    let spans = Arc::new(support::synthetic::spans(total, now, 42));
    let batches: Vec<std::ops::Range<usize>> = (0..total)
        .step_by(batch_size)
        .map(|start| start..(start + batch_size).min(total))
        .collect();
    let batches = Arc::new(batches);

    println!("appending with {appenders} concurrent appenders, {batch_size} spans per batch");
    let began = Instant::now();
    let mut tasks = Vec::new();
    for worker in 0..appenders {
        let store = store.clone();
        let spans = spans.clone();
        let batches = batches.clone();
        tasks.push(tokio::spawn(async move {
            let mut overloaded = 0u64;
            for range in batches.iter().skip(worker).step_by(appenders) {
                loop {
                    match store.append_spans(spans[range.clone()].to_vec()).await {
                        Ok(()) => break,
                        Err(AppendError::Overloaded { .. }) => {
                            overloaded += 1;
                            tokio::time::sleep(Duration::from_millis(10)).await;
                        }
                        Err(other) => return Err(other),
                    }
                }
            }
            Ok(overloaded)
        }));
    }
    let mut overloaded = 0;
    for task in tasks {
        overloaded += task.await??;
    }
    let elapsed = began.elapsed();
    println!(
        "ingest: {:.0} spans/s durable ({elapsed:?}, {overloaded} overloaded retries)",
        total as f64 / elapsed.as_secs_f64()
    );

    let began = Instant::now();
    store.seal_now()?;
    println!("final seal: {:?}", began.elapsed());
    let stats = store.storage_stats();
    println!(
        "segments: {}, bytes/span on disk: {:.1}",
        stats.span_segments,
        stats.span_segment_bytes as f64 / stats.sealed_spans.max(1) as f64
    );

    let mut timings = Vec::new();
    for index in (0..total).step_by((total / 1000).max(1)) {
        let began = Instant::now();
        let found = store.get_trace(spans[index].trace_id)?;
        timings.push(began.elapsed());
        if found.is_empty() {
            return Err("a stored trace was not found".into());
        }
    }
    timings.sort();
    println!(
        "trace lookup over {} lookups: p50 {:?}, p99 {:?}",
        timings.len(),
        timings[timings.len() / 2],
        timings[timings.len() * 99 / 100]
    );
    store.close().await?;
    Ok(())
}
