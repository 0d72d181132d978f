//! Alert-storm detection: when more than `threshold` new issues or
//! regressions arrive within `window`, the next ones are held and summed up
//! in one digest per window instead of one message each.
//!
//! The first `threshold` events of a window are sent one by one (nothing is
//! delayed while it is quiet); from the one after, events are held (in the
//! outbox, so a restart keeps them) until `window` after the oldest held
//! event, then one digest goes out. While the rate stays above the
//! threshold, every following window gets its own digest.

use std::collections::VecDeque;
use std::time::Duration;

/// What to do with one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Send,
    Hold,
}

/// The sliding window of recent event times (unix nanos).
#[derive(Debug)]
pub struct Storm {
    threshold: usize,
    window_ns: u64,
    recent: VecDeque<u64>,
}

impl Storm {
    pub fn new(threshold: usize, window: Duration) -> Storm {
        Storm {
            threshold,
            window_ns: u64::try_from(window.as_nanos()).unwrap_or(u64::MAX),
            recent: VecDeque::new(),
        }
    }

    /// Decides for an event at `now`; `holding` says events are already
    /// held for a digest (then this one joins them).
    pub fn observe(&mut self, now: u64, holding: bool) -> Decision {
        let since = now.saturating_sub(self.window_ns);
        while self.recent.front().is_some_and(|time| *time < since) {
            self.recent.pop_front();
        }
        // the count never needs to exceed the threshold by more than one
        if self.recent.len() <= self.threshold {
            self.recent.push_back(now);
        } else {
            self.recent.pop_front();
            self.recent.push_back(now);
        }
        if holding || self.recent.len() > self.threshold {
            Decision::Hold
        } else {
            Decision::Send
        }
    }

    /// Whether the digest of events held since `oldest_held` is due.
    pub fn digest_due(&self, now: u64, oldest_held: Option<u64>) -> bool {
        oldest_held.is_some_and(|oldest| now >= oldest.saturating_add(self.window_ns))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: u64 = 1_000_000_000;

    /// Replays event times (seconds) with a threshold of 3 per 10 s,
    /// holding like the notifier does (held until the digest at oldest
    /// held + 10 s), and returns the decisions and digest times.
    fn replay(times: &[u64]) -> (String, Vec<u64>) {
        let mut storm = Storm::new(3, Duration::from_secs(10));
        let mut oldest_held: Option<u64> = None;
        let mut decisions = String::new();
        let mut digests = Vec::new();
        for &time in times {
            let now = time * SECOND;
            if storm.digest_due(now, oldest_held) {
                digests.push(oldest_held.unwrap_or(0) / SECOND + 10);
                oldest_held = None;
            }
            match storm.observe(now, oldest_held.is_some()) {
                Decision::Send => decisions.push('s'),
                Decision::Hold => {
                    decisions.push('h');
                    oldest_held.get_or_insert(now);
                }
            }
        }
        (decisions, digests)
    }

    #[test]
    fn test_storms_are_held_for_one_digest_per_window() {
        let cases: [(&str, &[u64], &str, &[u64]); 4] = [
            ("quiet", &[0, 5, 11, 20, 31], "sssss", &[]),
            ("three at once are fine", &[0, 0, 0], "sss", &[]),
            (
                "the fourth in a window is held",
                &[0, 1, 2, 3, 4, 5],
                "ssshhh",
                &[],
            ),
            (
                "a long storm: a digest each window, quiet again after",
                &[0, 0, 0, 0, 1, 5, 10, 11, 12, 13, 40, 41],
                "ssshhhhhhhss",
                &[10, 20],
            ),
        ];
        for (name, times, decisions, digests) in cases {
            assert_eq!(
                replay(times),
                (decisions.to_owned(), digests.to_vec()),
                "{name}"
            );
        }
    }

    #[test]
    fn test_held_events_from_before_a_restart_keep_holding() {
        let mut storm = Storm::new(10, Duration::from_secs(300));
        assert_eq!(storm.observe(SECOND, true), Decision::Hold);
        assert!(!storm.digest_due(100 * SECOND, Some(SECOND)));
        assert!(storm.digest_due(301 * SECOND, Some(SECOND)));
        assert!(!storm.digest_due(301 * SECOND, None));
    }
}
