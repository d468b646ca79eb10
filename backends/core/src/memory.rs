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
    process_status_bytes("VmHWM:")
}

/// Resident memory of this process now (`VmRSS`), if known.
pub fn resident_bytes() -> Option<u64> {
    process_status_bytes("VmRSS:")
}

/// A `… kB` field of `/proc/self/status`, in bytes.
fn process_status_bytes(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
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

/// An empty buffer with room for `capacity` values, backed by transparent huge pages where
/// the kernel offers them on request (`madvise` mode): filling the 1.8 GB mainnet pool then
/// costs a thousand page faults instead of half a million. Nothing is written up front, so
/// the pages are faulted in by whoever fills them.
pub fn large_vec<T>(capacity: usize) -> Vec<T> {
    let v = Vec::with_capacity(capacity);
    let bytes = capacity * std::mem::size_of::<T>();
    if bytes >= 64 << 20 {
        // Advise before the first touch, so that the fill faults in huge pages. Only whole
        // 2 MiB pages inside the allocation can be advised.
        let start = v.as_ptr() as usize;
        advise(start, start + bytes, 2 << 20, Advice::HugePages);
    }
    v
}

/// What [`advise`] asks of the kernel.
#[derive(Clone, Copy)]
enum Advice {
    /// Back the range with transparent huge pages (`MADV_HUGEPAGE`).
    HugePages,
    /// Back every page of the range now (`MADV_POPULATE_WRITE`).
    Populate,
}

/// `madvise` over the whole `page`-sized pages inside `[start, end)`; nothing elsewhere than
/// Linux. Neither advice changes what the memory holds, so a refusal (an old kernel, a
/// non-THP system) only costs time and is ignored.
fn advise(start: usize, end: usize, page: usize, advice: Advice) {
    let (from, to) = (start.next_multiple_of(page), end & !(page - 1));
    if from >= to {
        return;
    }
    #[cfg(target_os = "linux")]
    {
        let advice = match advice {
            Advice::HugePages => libc::MADV_HUGEPAGE,
            Advice::Populate => libc::MADV_POPULATE_WRITE,
        };
        // SAFETY: callers pass a range inside one of their allocations; the advice only
        // changes how the kernel backs it (see above).
        unsafe {
            libc::madvise(from as *mut libc::c_void, to - from, advice);
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = advice;
}

/// Faults in the pages of a large buffer's spare capacity ahead of the writes that fill it.
/// A fresh page costs the kernel a zeroing (and, in a VM, often the host's own fault); a
/// worker that pays it while another is writing elsewhere takes it off the writer's path.
pub struct PageWarmer {
    base: usize,
    capacity_bytes: usize,
    elem_bytes: usize,
}

impl PageWarmer {
    /// For `v`'s allocation, which must not be reallocated while the warmer is used (a
    /// stale range would only cost time: populating never changes memory contents).
    pub fn new<T>(v: &Vec<T>) -> Self {
        Self {
            base: v.as_ptr() as usize,
            capacity_bytes: v.capacity() * std::mem::size_of::<T>(),
            elem_bytes: std::mem::size_of::<T>(),
        }
    }

    /// Fault in the whole pages under elements `[start, end)` (clipped to the capacity).
    pub fn warm(&self, start: usize, end: usize) {
        let end_bytes = (end * self.elem_bytes).min(self.capacity_bytes);
        advise(
            self.base + start * self.elem_bytes,
            self.base + end_bytes,
            4096,
            Advice::Populate,
        );
    }
}
