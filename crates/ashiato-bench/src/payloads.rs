//! Request bodies for a load phase, made before the clock starts or while
//! sending.
//!
//! Generating and encoding a span costs the load generator several
//! microseconds, about a third of this 2-core machine at the rates measured.
//! Made while sending, that CPU is taken from the server under test (both
//! ashiato and ClickHouse), so by default every body of a phase is made
//! first, on all cores, and the timed phase only sends bytes. `--live-generation`
//! keeps the old behaviour, for machines without the memory for it (a 10M
//! span run holds about 4 GB of OTLP protobuf, then about 8 GB of
//! ClickHouse JSON).

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;

/// One encoded request and the spans it carries.
#[derive(Clone)]
pub struct Payload {
    pub body: Bytes,
    pub spans: u64,
}

/// Makes the body of batch `index`.
pub type MakePayload = Arc<dyn Fn(u64) -> anyhow::Result<Payload> + Send + Sync>;

/// Where a phase's bodies come from.
#[derive(Clone)]
pub enum Payloads {
    Ready(Arc<Vec<Payload>>),
    Live { batches: u64, make: MakePayload },
}

impl Payloads {
    /// Makes every body now (in parallel) when `pregenerate`, otherwise
    /// defers each to the moment it is sent.
    pub fn prepare(batches: u64, make: MakePayload, pregenerate: bool) -> anyhow::Result<Payloads> {
        if !pregenerate {
            return Ok(Payloads::Live { batches, make });
        }
        let began = Instant::now();
        let payloads = make_all(batches, &make)?;
        let bytes: usize = payloads.iter().map(|p| p.body.len()).sum();
        eprintln!(
            "  pre-generated {batches} request bodies ({:.0} MiB) in {:.1?}",
            bytes as f64 / (1024.0 * 1024.0),
            began.elapsed()
        );
        Ok(Payloads::Ready(Arc::new(payloads)))
    }

    pub fn batches(&self) -> u64 {
        match self {
            Payloads::Ready(all) => all.len() as u64,
            Payloads::Live { batches, .. } => *batches,
        }
    }

    pub fn get(&self, index: u64) -> anyhow::Result<Payload> {
        match self {
            Payloads::Ready(all) => all
                .get(index as usize)
                .cloned()
                .ok_or_else(|| anyhow::anyhow!("no batch {index}")),
            Payloads::Live { make, .. } => make(index),
        }
    }
}

/// Each thread makes every `threads`-th batch; the results are put back in
/// batch order.
fn make_all(batches: u64, make: &MakePayload) -> anyhow::Result<Vec<Payload>> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()) as u64;
    let parts = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|first| {
                scope.spawn(move || -> anyhow::Result<Vec<Payload>> {
                    (first..batches)
                        .step_by(threads as usize)
                        .map(|b| make(b))
                        .collect()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|handle| {
                handle
                    .join()
                    .map_err(|_| anyhow::anyhow!("a generator thread panicked"))?
            })
            .collect::<anyhow::Result<Vec<_>>>()
    })?;
    let mut iters: Vec<_> = parts.into_iter().map(Vec::into_iter).collect();
    let mut ordered = Vec::with_capacity(batches as usize);
    for index in 0..batches {
        let part = &mut iters[(index % threads) as usize];
        ordered.push(
            part.next()
                .ok_or_else(|| anyhow::anyhow!("batch {index} was not made"))?,
        );
    }
    Ok(ordered)
}
