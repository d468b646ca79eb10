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

/// A zeroed buffer for a large array, backed by transparent huge pages where the kernel
/// offers them on request (`madvise` mode): filling the 1.8 GB mainnet pool then costs a
/// thousand page faults instead of half a million.
pub fn large_zeroed_vec<T: Copy + Default>(len: usize) -> Vec<T> {
    let mut v = Vec::with_capacity(len);
    // Advise before the first touch: the fill below then faults in huge pages.
    #[cfg(target_os = "linux")]
    {
        let bytes = len * std::mem::size_of::<T>();
        if bytes >= 64 << 20 {
            // Only whole 2 MiB pages inside the allocation can be advised.
            let start = v.as_ptr() as usize;
            let aligned = start.next_multiple_of(2 << 20);
            let end = (start + bytes) & !((2 << 20) - 1);
            if aligned < end {
                // SAFETY: the range lies inside `v`'s allocation; MADV_HUGEPAGE only changes
                // how the kernel backs it, never its contents.
                unsafe {
                    libc::madvise(
                        aligned as *mut libc::c_void,
                        end - aligned,
                        libc::MADV_HUGEPAGE,
                    );
                }
            }
        }
    }
    v.resize(len, T::default());
    v
}
