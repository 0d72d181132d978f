//! CPU time and memory of a process, read from `/proc/<pid>/stat` and
//! `/proc/<pid>/status` (Linux only).

use std::fs;

use anyhow::Context;

/// CPU seconds (user + system) a process has used so far.
pub fn cpu_seconds(pid: u32) -> anyhow::Result<f64> {
    let path = format!("/proc/{pid}/stat");
    let stat = fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    // The command name is in parentheses and may hold spaces: count fields
    // from the last ')'.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .context("malformed stat")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After ')': state is field 3 of stat(5), utime 14, stime 15.
    let ticks = |index: usize| -> anyhow::Result<f64> {
        let field = fields.get(index - 3).context("short stat")?;
        Ok(field.parse::<u64>().context("stat field")? as f64)
    };
    let per_second = rustix::param::clock_ticks_per_second() as f64;
    Ok((ticks(14)? + ticks(15)?) / per_second)
}

/// A `VmRSS`/`VmHWM`-style line of `/proc/<pid>/status`, in bytes.
fn status_bytes(pid: u32, key: &str) -> anyhow::Result<u64> {
    let path = format!("/proc/{pid}/status");
    let status = fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    let line = status
        .lines()
        .find_map(|line| line.strip_prefix(key))
        .with_context(|| format!("no {key} in {path}"))?;
    let kib: u64 = line
        .trim_start_matches(':')
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .with_context(|| format!("parsing {key}"))?;
    Ok(kib * 1024)
}

/// Resident set size now.
pub fn rss_bytes(pid: u32) -> anyhow::Result<u64> {
    status_bytes(pid, "VmRSS")
}

/// Peak resident set size since the process started.
pub fn peak_rss_bytes(pid: u32) -> anyhow::Result<u64> {
    status_bytes(pid, "VmHWM")
}
