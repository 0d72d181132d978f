//! A test hook of the sealer: hold back the write phase of the next seal
//! job (`Store::hold_next_seal`), so a later memtable can finish writing
//! first and the oldest-first commit order can be tested.
//!
//! Its own module so that `shared` (which owns the hook) and `sealer`
//! (which waits on it) both depend on it instead of on each other.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

/// How often a held write (test hook) looks for a shutdown.
const HOLD_POLL: Duration = Duration::from_millis(10);

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// Test hook: holds back the write phase of the next seal job, so a later
/// memtable can finish writing first.
#[derive(Default)]
pub struct WriteHold {
    state: Mutex<HoldState>,
    changed: Condvar,
}

#[derive(Default)]
struct HoldState {
    /// The next job taken is held.
    armed: bool,
    /// A taken job is held until `release`.
    holding: bool,
    /// Write phases finished since the store opened.
    writes: u64,
}

impl WriteHold {
    pub fn take_armed(&self) -> bool {
        let mut state = lock(&self.state);
        let armed = std::mem::take(&mut state.armed);
        state.holding |= armed;
        armed
    }

    /// Waits for `release`; `false` if the store shuts down first.
    pub fn wait_released(&self, shutting_down: &AtomicBool) -> bool {
        let mut state = lock(&self.state);
        while state.holding {
            if shutting_down.load(Ordering::Relaxed) {
                return false;
            }
            state = self
                .changed
                .wait_timeout(state, HOLD_POLL)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        true
    }

    pub fn wrote(&self) {
        lock(&self.state).writes += 1;
        self.changed.notify_all();
    }

    fn arm(&self) {
        lock(&self.state).armed = true;
    }

    fn release(&self) {
        let mut state = lock(&self.state);
        state.armed = false;
        state.holding = false;
        self.changed.notify_all();
    }
}

/// Returned by `Store::hold_next_seal`; the held write goes on when it is
/// dropped.
#[doc(hidden)]
pub struct SealHold {
    hold: Arc<WriteHold>,
}

impl SealHold {
    pub(crate) fn arm(hold: Arc<WriteHold>) -> SealHold {
        hold.arm();
        SealHold { hold }
    }

    /// Blocks until `count` write phases have finished since the store opened.
    pub fn wait_writes(&self, count: u64) {
        let mut state = lock(&self.hold.state);
        while state.writes < count {
            state = self
                .hold
                .changed
                .wait(state)
                .unwrap_or_else(|e| e.into_inner());
        }
    }
}

impl Drop for SealHold {
    fn drop(&mut self) {
        self.hold.release();
    }
}
