//! A resent request is acknowledged again, not stored again.
//!
//! OTLP exporters, the OpenTelemetry Collector's retry queue and log
//! shippers resend a batch whenever its acknowledgement does not reach
//! them (an export timeout, a dropped connection, a load balancer's
//! reset), although ashiato stored it. Trace views drop duplicate span ids,
//! but a second copy would show every log record twice and inflate the
//! service, operation and RED counts. So every acknowledged request body is
//! remembered by a digest of its decompressed bytes for a while, and a body
//! seen again within that time is answered as before without being
//! appended. A resend carries the same bytes (ids and timestamps included),
//! so equal bytes are the same data; a different body is never dropped.
//!
//! The memory is bounded ([`CAPACITY`] digests, [`MAX_AGE`]) and lives in
//! the process only: a resend that arrives after a restart is stored again
//! (the trace view still shows each span once). Digests are keyed with a
//! per-process random seed, so no client can aim a body at another one's
//! digest.

use std::collections::{HashSet, VecDeque};
use std::hash::BuildHasher;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use twox_hash::XxHash3_128;

/// How many acknowledged bodies are remembered: about 80 s of requests at
/// 200 requests a second (100k spans/s in batches of 500), longer than an
/// exporter's first retries wait, in about 1 MiB.
pub const CAPACITY: usize = 16 * 1024;

/// How long a body is remembered at most: past an exporter's whole retry
/// window (the Collector gives up after 5 minutes by default).
pub const MAX_AGE: Duration = Duration::from_secs(10 * 60);

/// What a body holds; the same bytes as spans and as logs are different
/// requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    Spans,
    Logs,
}

/// The keyed digest of a request's decompressed body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BodyDigest(u128);

impl BodyDigest {
    /// The digest of `plain` (the decompressed body) as `kind`; computed
    /// where the body is decoded, on the blocking pool for a large one.
    pub fn of(kind: BodyKind, plain: &[u8]) -> BodyDigest {
        static SEED: OnceLock<u64> = OnceLock::new();
        // std's RandomState is seeded from the OS once per process
        let seed = *SEED.get_or_init(|| {
            std::collections::hash_map::RandomState::new().hash_one("ashiato resend")
        });
        let seed = match kind {
            BodyKind::Spans => seed,
            BodyKind::Logs => !seed,
        };
        BodyDigest(XxHash3_128::oneshot_with_seed(seed, plain))
    }
}

/// The digests of recently acknowledged bodies, shared by every listener.
pub struct RecentBodies {
    capacity: usize,
    max_age: Duration,
    inner: Mutex<Remembered>,
}

#[derive(Default)]
struct Remembered {
    digests: HashSet<BodyDigest>,
    /// Oldest first, for eviction by count and by age.
    order: VecDeque<(BodyDigest, Instant)>,
}

impl RecentBodies {
    pub fn new() -> RecentBodies {
        RecentBodies::with_limits(CAPACITY, MAX_AGE)
    }

    pub fn with_limits(capacity: usize, max_age: Duration) -> RecentBodies {
        RecentBodies {
            capacity,
            max_age,
            inner: Mutex::new(Remembered::default()),
        }
    }

    /// Whether a body with this digest was acknowledged within the window.
    pub fn seen(&self, digest: BodyDigest) -> bool {
        let mut inner = self.lock();
        self.forget_old(&mut inner, Instant::now());
        inner.digests.contains(&digest)
    }

    /// Remembers an acknowledged body.
    pub fn remember(&self, digest: BodyDigest) {
        let now = Instant::now();
        let mut inner = self.lock();
        self.forget_old(&mut inner, now);
        if inner.digests.insert(digest) {
            inner.order.push_back((digest, now));
        }
        while inner.order.len() > self.capacity {
            if let Some((oldest, _)) = inner.order.pop_front() {
                inner.digests.remove(&oldest);
            }
        }
    }

    fn forget_old(&self, inner: &mut Remembered, now: Instant) {
        while let Some(&(digest, at)) = inner.order.front() {
            if now.saturating_duration_since(at) <= self.max_age {
                break;
            }
            inner.order.pop_front();
            inner.digests.remove(&digest);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Remembered> {
        // the sets stay consistent whatever a panicking holder left undone
        // (an insert without its order entry is evicted by age or count)
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Default for RecentBodies {
    fn default() -> RecentBodies {
        RecentBodies::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_a_body_is_seen_once_remembered_and_kinds_differ() {
        let recent = RecentBodies::new();
        let spans = BodyDigest::of(BodyKind::Spans, b"batch");
        assert!(!recent.seen(spans));
        recent.remember(spans);
        assert!(recent.seen(spans));
        assert!(!recent.seen(BodyDigest::of(BodyKind::Logs, b"batch")));
        assert!(!recent.seen(BodyDigest::of(BodyKind::Spans, b"batch2")));
    }

    #[test]
    fn test_the_oldest_digest_goes_first_past_the_capacity() {
        let recent = RecentBodies::with_limits(2, MAX_AGE);
        let digests: Vec<BodyDigest> = [b"a", b"b", b"c"]
            .iter()
            .map(|body| BodyDigest::of(BodyKind::Spans, *body))
            .collect();
        for digest in &digests {
            recent.remember(*digest);
        }
        assert!(!recent.seen(digests[0]));
        assert!(recent.seen(digests[1]));
        assert!(recent.seen(digests[2]));
    }

    #[test]
    fn test_digests_are_forgotten_after_the_window() {
        let recent = RecentBodies::with_limits(CAPACITY, Duration::ZERO);
        let digest = BodyDigest::of(BodyKind::Logs, b"records");
        recent.remember(digest);
        std::thread::sleep(Duration::from_millis(2));
        assert!(!recent.seen(digest));
    }

    #[test]
    fn test_equal_bodies_have_equal_digests() {
        assert_eq!(
            BodyDigest::of(BodyKind::Spans, b"same"),
            BodyDigest::of(BodyKind::Spans, b"same")
        );
    }
}
