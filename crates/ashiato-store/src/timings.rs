//! Durations the store measures about itself (a WAL group commit's write
//! and fdatasync, a seal's write phase) as fixed-bucket histograms of
//! atomics: recording is a handful of relaxed additions, so the writer and
//! sealer threads never wait on whoever reads the figures (the server's
//! `/metrics`). The store knows nothing of any exposition format; readers
//! get plain bucket counts.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds (seconds) of the buckets, from half a millisecond (an
/// fdatasync on a fast disk) to a minute (a large seal on a slow one); a
/// last, unbounded bucket follows.
pub const BUCKET_BOUNDS_SECONDS: [f64; 16] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0,
];

/// A histogram of durations over [`BUCKET_BOUNDS_SECONDS`].
#[derive(Debug, Default)]
pub struct DurationHistogram {
    /// Per bucket (not cumulative); the last is above every bound.
    buckets: [AtomicU64; BUCKET_BOUNDS_SECONDS.len() + 1],
    sum_nanos: AtomicU64,
}

impl DurationHistogram {
    /// Counts one observation.
    pub fn record(&self, duration: Duration) {
        let seconds = duration.as_secs_f64();
        let index = BUCKET_BOUNDS_SECONDS
            .iter()
            .position(|bound| seconds <= *bound)
            .unwrap_or(BUCKET_BOUNDS_SECONDS.len());
        self.buckets[index].fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX);
        self.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    /// The counts so far. Taken bucket by bucket without a lock, so an
    /// observation recorded meanwhile may be in the buckets and not yet in
    /// the sum; scrapers tolerate that.
    pub fn snapshot(&self) -> HistogramSnapshot {
        HistogramSnapshot {
            buckets: self
                .buckets
                .iter()
                .map(|bucket| bucket.load(Ordering::Relaxed))
                .collect(),
            sum_seconds: self.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9,
        }
    }
}

/// A histogram's counts at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramSnapshot {
    /// Observations per bucket of [`BUCKET_BOUNDS_SECONDS`] (not
    /// cumulative), then those above the last bound.
    pub buckets: Vec<u64>,
    pub sum_seconds: f64,
}

impl HistogramSnapshot {
    pub fn count(&self) -> u64 {
        self.buckets.iter().sum()
    }
}

/// The store's own timings (see [`crate::Store::timings`]).
#[derive(Debug, Default)]
pub struct StoreTimings {
    /// One WAL group commit: the write of every waiting record and its fdatasync.
    pub wal_sync: DurationHistogram,
    /// One seal's write phase: a memtable to fsynced Parquet segment files.
    pub seal: DurationHistogram,
}

/// [`StoreTimings`] at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct StoreTimingsSnapshot {
    pub wal_sync: HistogramSnapshot,
    pub seal: HistogramSnapshot,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_observations_land_in_the_first_bucket_that_holds_them() {
        let histogram = DurationHistogram::default();
        let cases = [
            (Duration::from_micros(100), 0),
            (Duration::from_micros(500), 0),
            (Duration::from_micros(501), 1),
            (Duration::from_millis(7), 4),
            (Duration::from_secs(60), 15),
            (Duration::from_secs(3600), 16),
        ];
        for (duration, _) in cases {
            histogram.record(duration);
        }
        let snapshot = histogram.snapshot();
        for (duration, index) in cases {
            assert!(
                snapshot.buckets[index] >= 1,
                "{duration:?} not in bucket {index}"
            );
        }
        assert_eq!(snapshot.count(), cases.len() as u64);
        assert!((snapshot.sum_seconds - 3660.0086).abs() < 1e-3);
    }
}
