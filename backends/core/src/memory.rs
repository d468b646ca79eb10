//! Memory estimates, checked before anything large is allocated.

use anyhow::{Result, bail};

/// Bytes of memory the system can still give us (`MemAvailable`), if known.
pub fn available_bytes() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Peak resident memory of this process so far (`VmHWM`), if known.
pub fn peak_resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

pub fn gib(bytes: u64) -> f64 {
    bytes as f64 / (1u64 << 30) as f64
}

/// Refuse `what` when it needs more than the machine has available.
pub fn check_fits(required: u64, what: &str) -> Result<()> {
    if let Some(avail) = available_bytes()
        && required > avail
    {
        bail!(
            "{what} needs about {:.2} GiB of memory but only {:.2} GiB is available; choose smaller params or a machine with more memory",
            gib(required),
            gib(avail)
        );
    }
    Ok(())
}
