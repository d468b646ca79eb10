//! The tile kernel's contract with the processor, checked without one: the 64 bytes
//! `ldtilecfg` reads, and the machine code of the kernel's tile instructions, which the
//! emulation cannot check (it models what the instructions compute, not which operand the
//! assembler puts where).
//!
//! The expected encodings are what GCC 12's documented intrinsics assemble to
//! (`gcc -O2 -mamx-tile -mamx-bf16`, binutils as the assembler): `_tile_dpbf16ps(dst, a, b)`,
//! `dst += a·b` with `a` the 16 × 16 pairs of A and `b` the 16 pair-rows of B, is
//! `VEX.128.F3.0F38.W0 5C` with ModRM.reg = dst, ModRM.r/m = a, VEX.vvvv = b (Intel SDM,
//! TDPBF16PS tmm1, tmm2, tmm3).

use super::kernel::palette_1_bytes;

#[test]
fn the_tile_configuration_is_palette_1_with_eight_tiles_of_16_rows_of_64_bytes() {
    let bytes = palette_1_bytes();
    assert_eq!(bytes[0], 1, "palette");
    assert_eq!(bytes[1], 0, "start_row");
    assert!(bytes[2..16].iter().all(|&b| b == 0), "reserved bytes");
    for t in 0..16 {
        let colsb = u16::from_le_bytes([bytes[16 + 2 * t], bytes[17 + 2 * t]]);
        let rows = bytes[48 + t];
        let want = if t < 8 { (64, 16) } else { (0, 0) };
        assert_eq!((colsb, rows), want, "tile {t}: colsb, rows");
    }
}

/// `tdpbf16ps` of (dst, a, b), as `_tile_dpbf16ps(dst, a, b)` assembles.
fn tdpbf16ps(dst: u8, a: u8, b: u8) -> [u8; 5] {
    // VEX3: no R/X/B extension, map 0F38; W0, vvvv = ¬b, L0, pp = F3; 5C; ModRM 11 dst a.
    [
        0xc4,
        0xe2,
        ((!b & 0xf) << 3) | 0b10,
        0x5c,
        0xc0 | dst << 3 | a,
    ]
}

#[test]
fn the_encoding_helper_reproduces_what_gcc_and_llvm_assemble() {
    // From `objdump -d` of the intrinsics compiled with gcc 12.2: (0, 4, 6), (3, 5, 7),
    // (1, 4, 7), (2, 5, 6).
    assert_eq!(tdpbf16ps(0, 4, 6), [0xc4, 0xe2, 0x4a, 0x5c, 0xc4]);
    assert_eq!(tdpbf16ps(3, 5, 7), [0xc4, 0xe2, 0x42, 0x5c, 0xdd]);
    assert_eq!(tdpbf16ps(1, 4, 7), [0xc4, 0xe2, 0x42, 0x5c, 0xcc]);
    assert_eq!(tdpbf16ps(2, 5, 6), [0xc4, 0xe2, 0x4a, 0x5c, 0xd5]);
    // LLVM's MC tests, Intel syntax: `tdpbf16ps tmm6, tmm5, tmm4`, `tdpbf16ps tmm3, tmm2,
    // tmm1`.
    assert_eq!(tdpbf16ps(6, 5, 4), [0xc4, 0xe2, 0x5a, 0x5c, 0xf5]);
    assert_eq!(tdpbf16ps(3, 2, 1), [0xc4, 0xe2, 0x72, 0x5c, 0xda]);
}

/// The `.text` section of this test binary (ELF64, little-endian): the machine code only, so
/// that no constant of these tests is mistaken for an instruction.
fn own_text_section() -> Vec<u8> {
    let elf = std::fs::read(std::env::current_exe().unwrap()).unwrap();
    assert_eq!(
        &elf[..6],
        b"\x7fELF\x02\x01",
        "not a little-endian ELF64 binary"
    );
    let u16_at = |at: usize| u16::from_le_bytes(elf[at..at + 2].try_into().unwrap()) as usize;
    let u32_at = |at: usize| u32::from_le_bytes(elf[at..at + 4].try_into().unwrap()) as usize;
    let u64_at = |at: usize| u64::from_le_bytes(elf[at..at + 8].try_into().unwrap()) as usize;
    let (shoff, shentsize, shnum, shstrndx) =
        (u64_at(0x28), u16_at(0x3a), u16_at(0x3c), u16_at(0x3e));
    let section = |i: usize| shoff + i * shentsize;
    let names = u64_at(section(shstrndx) + 24);
    (0..shnum)
        .map(section)
        .find(|&sh| elf[names + u32_at(sh)..].starts_with(b".text\0"))
        .map(|sh| elf[u64_at(sh + 24)..u64_at(sh + 24) + u64_at(sh + 32)].to_vec())
        .expect("no .text section")
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Instructions at the start of `at` of the form `c4 ?2 <byte2> <opcode>` (VEX3, map 0F38,
/// no GPR in ModRM.reg): counts `tileloadd` (F2, 4B), `tilestored` (F3, 4B), `ldtilecfg`
/// (NP, 49 /0 with a memory operand).
fn count_vex_0f38(code: &[u8], byte2: u8, opcode: u8, modrm: impl Fn(u8) -> bool) -> usize {
    code.windows(5)
        .filter(|w| {
            w[0] == 0xc4 && w[1] & 0x1f == 0x02 && w[2] == byte2 && w[3] == opcode && modrm(w[4])
        })
        .count()
}

/// The kernel in this test binary runs `dst += A·B` with the operands the emulation models:
/// per slice `main += A_hi·B_hi` (tiles 0, 1 += 4, 5 · 6), `corr += A_hi·B_lo` (2, 3 += 4, 5
/// · 7), then with A_lo in tiles 4 and 5 `corr += A_lo·B_hi` and `corr += A_lo·B_lo`; the
/// peak loop's four products; tile loads and stores with a SIB operand; one `ldtilecfg`.
#[test]
fn the_kernel_is_the_machine_code_of_the_intrinsics_with_the_same_operands() {
    let exe = own_text_section();
    let run = |ops: &[(u8, u8, u8)]| -> Vec<u8> {
        ops.iter()
            .flat_map(|&(d, a, b)| tdpbf16ps(d, a, b))
            .collect()
    };
    let hi_products = run(&[(0, 4, 6), (1, 5, 6), (2, 4, 7), (3, 5, 7)]);
    let lo_products = run(&[(2, 4, 6), (3, 5, 6), (2, 4, 7), (3, 5, 7)]);
    let peak = run(&[(0, 4, 6), (1, 4, 7), (2, 5, 6), (3, 5, 7)]);
    assert!(
        contains(&exe, &hi_products),
        "main += A_hi·B_hi, corr += A_hi·B_lo"
    );
    assert!(contains(&exe, &lo_products), "corr += A_lo·B_hi, A_lo·B_lo");
    assert!(contains(&exe, &peak), "the peak loop");
    // `tilezero tmm4..7` before the peak loop (VEX.128.F2.0F38.W0 49, ModRM 11 tmm 000).
    let zeros: Vec<u8> = (4..8)
        .flat_map(|t| [0xc4, 0xe2, 0x7b, 0x49, 0xc0 | t << 3])
        .collect();
    assert!(contains(&exe, &zeros), "tilezero tmm4..7");
    // SIB memory operands (ModRM.r/m = 100, mod ≠ 11), as tileloadd/tilestored require.
    let sib = |m: u8| m & 0b111 == 0b100 && m >> 6 != 0b11;
    assert!(count_vex_0f38(&exe, 0x7b, 0x4b, sib) >= 10, "tileloadd");
    assert!(count_vex_0f38(&exe, 0x7a, 0x4b, sib) >= 4, "tilestored");
    let config = |m: u8| m >> 6 != 0b11 && (m >> 3) & 0b111 == 0;
    assert!(count_vex_0f38(&exe, 0x78, 0x49, config) >= 1, "ldtilecfg");
}
