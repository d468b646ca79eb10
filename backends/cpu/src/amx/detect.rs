//! Whether this process may use the AMX tiles: the processor has them (CPUID), the operating
//! system saves their state (XCR0), and Linux has granted this process the tile data
//! (`arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA)`). Any step failing leaves the f32
//! path in use, with the reason.

use std::sync::OnceLock;

/// Proof that the tiles may be used in this process: only [`Amx::detect`] makes one, so a
/// function taking it may execute tile instructions.
#[derive(Clone, Copy, Debug)]
pub struct Amx {
    _private: (),
}

impl Amx {
    /// Detects AMX once per process (the permission request is made at most once here; worker
    /// threads repeat it themselves, see [`request_tile_permission`]).
    pub fn detect() -> Result<Amx, String> {
        static DETECTED: OnceLock<Result<Amx, String>> = OnceLock::new();
        DETECTED
            .get_or_init(|| {
                probe()
                    .map(|()| Amx { _private: () })
                    .map_err(|why| format!("AMX unavailable: {why}"))
            })
            .clone()
    }
}

#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
fn probe() -> Result<(), String> {
    use std::arch::x86_64::{__cpuid, __cpuid_count};
    // CPUID exists on every x86-64 processor (safe since Rust 1.94).
    let max_leaf = __cpuid(0).eax;
    if max_leaf < 7 {
        return Err(format!(
            "CPUID stops at leaf {max_leaf}, before leaf 7 (no AMX)"
        ));
    }
    let edx = __cpuid_count(7, 0).edx;
    let (tile, bf16) = (edx & (1 << 24) != 0, edx & (1 << 22) != 0);
    if !tile || !bf16 {
        return Err(format!(
            "the processor has no {} (CPUID leaf 7: AMX-TILE {}, AMX-BF16 {})",
            if tile { "AMX-BF16" } else { "AMX-TILE" },
            yes_no(tile),
            yes_no(bf16)
        ));
    }
    let osxsave = __cpuid(1).ecx & (1 << 27) != 0;
    if !osxsave {
        return Err("the operating system has not enabled XSAVE (CPUID.1:ECX.OSXSAVE)".into());
    }
    let xcr0 = xgetbv0();
    // Bits 17 (XTILECFG) and 18 (XTILEDATA): the OS saves and restores the tile state.
    if xcr0 & (0b11 << 17) != 0b11 << 17 {
        return Err(format!(
            "the operating system does not save the tile state (XCR0 = {xcr0:#x}, bits 17 and 18 needed)"
        ));
    }
    request_tile_permission()
}

#[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
fn probe() -> Result<(), String> {
    Err("this build is not for x86-64 Linux".into())
}

fn yes_no(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
fn xgetbv0() -> u64 {
    let (eax, edx): (u32, u32);
    // SAFETY: XGETBV with ECX = 0 is allowed when CPUID.1:ECX.OSXSAVE is set (checked by the
    // caller); it reads XCR0 and touches nothing else.
    unsafe {
        std::arch::asm!("xgetbv", in("ecx") 0u32, out("eax") eax, out("edx") edx,
            options(nomem, nostack, preserves_flags));
    }
    (edx as u64) << 32 | eax as u64
}

/// Asks Linux for the tile data state for this process. Without it the first tile
/// instruction faults. Asking again is harmless, so a worker thread may ask before its first
/// tile instruction.
#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
pub fn request_tile_permission() -> Result<(), String> {
    const ARCH_GET_XCOMP_PERM: libc::c_long = 0x1022;
    const ARCH_REQ_XCOMP_PERM: libc::c_long = 0x1023;
    const XFEATURE_XTILEDATA: libc::c_long = 18;
    // SAFETY: arch_prctl with these codes only reads/sets the process's permitted XSAVE
    // features; the GET form writes one u64 through the pointer we pass.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_arch_prctl,
            ARCH_REQ_XCOMP_PERM,
            XFEATURE_XTILEDATA,
        )
    };
    if rc != 0 {
        return Err(format!(
            "Linux refused the tile state (arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA): {})",
            std::io::Error::last_os_error()
        ));
    }
    let mut permitted: u64 = 0;
    let rc = unsafe {
        libc::syscall(
            libc::SYS_arch_prctl,
            ARCH_GET_XCOMP_PERM,
            &mut permitted as *mut u64,
        )
    };
    if rc != 0 || permitted & (1 << XFEATURE_XTILEDATA) == 0 {
        return Err(format!(
            "Linux granted the tile state but does not list it as permitted (arch_prctl(ARCH_GET_XCOMP_PERM) = {rc}, mask {permitted:#x})"
        ));
    }
    Ok(())
}

#[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
pub fn request_tile_permission() -> Result<(), String> {
    Err("this build is not for x86-64 Linux".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The answer agrees with the kernel's view of the processor (`/proc/cpuinfo` flags), and
    /// a failure says why.
    #[test]
    fn detection_agrees_with_proc_cpuinfo() {
        let flags = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let listed = flags.contains(" amx_tile") && flags.contains(" amx_bf16");
        match Amx::detect() {
            Ok(_) => assert!(
                listed,
                "AMX detected but /proc/cpuinfo lists no amx_tile/amx_bf16"
            ),
            Err(why) => {
                println!("{why}");
                assert!(why.starts_with("AMX unavailable: "), "{why}");
                if !listed {
                    assert!(
                        why.contains("AMX-TILE")
                            || why.contains("AMX-BF16")
                            || why.contains("x86-64"),
                        "{why}"
                    );
                }
            }
        }
    }
}
