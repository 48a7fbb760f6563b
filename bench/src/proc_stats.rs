//! CPU time and RSS of another process, from /proc.

use anyhow::Context;

/// User + system CPU seconds of `pid`.
pub fn cpu_seconds(pid: u32) -> anyhow::Result<f64> {
    let stat =
        std::fs::read_to_string(format!("/proc/{pid}/stat")).context("reading /proc/<pid>/stat")?;
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = stat.rsplit_once(')').context("malformed stat")?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 =
        f.get(11).context("utime")?.parse::<u64>()? + f.get(12).context("stime")?.parse::<u64>()?;
    Ok(ticks as f64 / 100.0)
}

/// Resident set size of `pid` in bytes.
pub fn rss_bytes(pid: u32) -> anyhow::Result<u64> {
    status_kb(pid, "VmRSS:").map(|kb| kb * 1024)
}

/// Peak resident set size of `pid` in bytes since it started or since [`reset_peak_rss`].
pub fn peak_rss_bytes(pid: u32) -> anyhow::Result<u64> {
    status_kb(pid, "VmHWM:").map(|kb| kb * 1024)
}

/// Resets `pid`'s peak RSS to its current RSS (`/proc/<pid>/clear_refs`, Linux 4.0+); false
/// where that is not allowed.
pub fn reset_peak_rss(pid: u32) -> bool {
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").is_ok()
}

fn status_kb(pid: u32, key: &str) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status
        .lines()
        .find(|l| l.starts_with(key))
        .with_context(|| format!("no {key}"))?;
    line.split_whitespace()
        .nth(1)
        .with_context(|| format!("{key} value"))?
        .parse()
        .with_context(|| format!("{key} value"))
}
