//! Per-source rate limit of failed authentications: after `limit` 401/403
//! answers to one IP address within a window, that address gets 429 with
//! `Retry-After` until the window ends, whatever it sends. Tokens are too
//! long to guess, so this is less about guessing than about a misconfigured
//! or hostile client flooding the logs and the hash work.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Length of one counting window.
pub const WINDOW: Duration = Duration::from_secs(60);
/// Addresses tracked at most; older windows are dropped beyond it.
const MAX_TRACKED: usize = 10_000;

#[derive(Debug)]
struct Window {
    started: Instant,
    failures: u32,
}

/// Failure counts per source address.
#[derive(Debug)]
pub struct FailureLimiter {
    limit: u32,
    windows: Mutex<HashMap<IpAddr, Window>>,
}

impl FailureLimiter {
    pub fn new(limit: u32) -> FailureLimiter {
        FailureLimiter {
            limit,
            windows: Mutex::new(HashMap::new()),
        }
    }

    /// When `peer` is blocked, how long until it may try again.
    pub fn blocked(&self, peer: IpAddr) -> Option<Duration> {
        let windows = self
            .windows
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        let window = windows.get(&peer)?;
        let elapsed = window.started.elapsed();
        (window.failures >= self.limit && elapsed < WINDOW).then(|| WINDOW - elapsed)
    }

    /// Counts one failed attempt by `peer`.
    pub fn record_failure(&self, peer: IpAddr) {
        let mut windows = self
            .windows
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        if windows.len() >= MAX_TRACKED {
            windows.retain(|_, window| window.started.elapsed() < WINDOW);
        }
        let window = windows.entry(peer).or_insert_with(|| Window {
            started: Instant::now(),
            failures: 0,
        });
        if window.started.elapsed() >= WINDOW {
            *window = Window {
                started: Instant::now(),
                failures: 0,
            };
        }
        window.failures = window.failures.saturating_add(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_blocks_after_the_limit_per_address() {
        let limiter = FailureLimiter::new(3);
        let attacker: IpAddr = "10.0.0.1".parse().unwrap();
        let bystander: IpAddr = "10.0.0.2".parse().unwrap();
        for _ in 0..2 {
            limiter.record_failure(attacker);
            assert!(limiter.blocked(attacker).is_none());
        }
        limiter.record_failure(attacker);
        let retry = limiter.blocked(attacker).unwrap();
        assert!(retry <= WINDOW && retry > Duration::ZERO);
        assert!(limiter.blocked(bystander).is_none());
    }
}
