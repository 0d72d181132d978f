//! Giving freed heap memory back to the operating system.
//!
//! glibc's malloc keeps memory that the program freed (in the main heap and
//! in one arena per thread that allocated) and returns only the top of each
//! heap on its own. After a burst (a memtable sealed and dropped, the start-up
//! scans) most of it sits in the middle of the heaps, so a process that is
//! idle again keeps tens of MiB it does not use. `malloc_trim(0)` walks every
//! arena and releases the free pages (`MADV_DONTNEED`), which is what
//! [`release_free_memory`] does.
//!
//! This is the only crate of the workspace that allows `unsafe` (the
//! workspace forbids it): two FFI calls (`malloc_trim`, `sysconf`), without
//! arguments that could be wrong. On other platforms or C libraries the functions do nothing.

/// Returns the allocator's free memory to the operating system. Costs a
/// walk of the allocator's free lists (well under a millisecond on an idle
/// heap); memory handed back is page-faulted in again when it is reused, so
/// call it after bursts, not on every allocation.
pub fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    trim();
}

/// Like [`release_free_memory`], but only while the process's resident
/// memory is above `limit` bytes (or cannot be read). Memory handed back is
/// page-faulted in again when it is reused, which under sustained load costs
/// more CPU than it saves; this keeps the release for when it bounds the peak.
pub fn release_free_memory_above(limit: u64) {
    if resident_bytes().is_none_or(|resident| resident > limit) {
        release_free_memory();
    }
}

/// The process's resident set size, from `/proc/self/statm`; `None` where
/// that file does not exist or reads oddly.
pub fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages.saturating_mul(page_bytes()))
}

/// `statm` counts pages, which are not 4 KiB everywhere (64 KiB on some
/// arm64 distributions).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn page_bytes() -> u64 {
    // SAFETY: sysconf reads a constant of the running system; no pointers.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u64::try_from(size)
        .ok()
        .filter(|&size| size > 0)
        .unwrap_or(4096)
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn page_bytes() -> u64 {
    4096
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn trim() {
    // SAFETY: malloc_trim takes a plain integer (0 = keep no padding at the
    // top of the heap), touches only the allocator's own state under its own
    // locks, and is safe to call from any thread at any time.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_release_after_freeing_a_burst_keeps_memory_usable() {
        let burst: Vec<Vec<u8>> = (0..1000).map(|i| vec![i as u8; 4096]).collect();
        let kept = burst[999].clone();
        drop(burst);
        release_free_memory();
        release_free_memory();
        let again: Vec<Vec<u8>> = (0..1000).map(|i| vec![i as u8; 4096]).collect();
        assert_eq!(again[999], kept);
    }

    #[test]
    fn test_resident_bytes_are_read_on_linux() {
        if cfg!(target_os = "linux") {
            let resident = resident_bytes().unwrap();
            assert!(resident > 0);
            release_free_memory_above(u64::MAX);
            release_free_memory_above(0);
        }
    }
}
