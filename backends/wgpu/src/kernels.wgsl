// The steps of docs/spec/COMPUTATION.md §5 as WGSL compute kernels. Activations are f32 arrays
// holding f16-representable values (as on the CPU backend); `r16` is the spec's ⟂, rounding to
// f16 (nearest, ties to even) with integer operations, so it needs no SHADER_F16 and does not
// depend on how a driver converts. Weights are read from the f16 pool, packed two per u32,
// through a window of the pool starting at the parameter (tile-placed parameters, which wrap
// around the pool, are made contiguous once at load).
//
// Activations are stored as `act`: f16 where the adapter has SHADER_F16 (half the memory
// traffic), else f32. Either way every stored value has been rounded by r16 first, so the
// conversion to `act` is exact and both storages compute the same bits. Each section is
// compiled as its own module with the shared functions and the `act` alias in front (the
// host prepends `enable f16; alias act = f16;` or `alias act = f32;`).

// ---- shared ---------------------------------------------------------------------------

fn r16(x: f32) -> f32 {
    let b = bitcast<u32>(x);
    let sign = b & 0x80000000u;
    let a = b & 0x7fffffffu;
    if (a >= 0x7f800000u) {
        return x; // inf, NaN
    }
    if (a >= 0x477ff000u) {
        return bitcast<f32>(sign | 0x7f800000u); // |x| >= 65520 rounds to inf
    }
    if (a >= 0x38800000u) {
        // f16 normal range: keep 10 mantissa bits, ties to even.
        let lsb = (a >> 13u) & 1u;
        return bitcast<f32>(sign | ((a + 0xfffu + lsb) & 0xffffe000u));
    }
    // f16 subnormals: multiples of 2^-24; scaling by a power of two is exact and WGSL's
    // round() rounds halves to even.
    let q = round(abs(x) * 16777216.0);
    return bitcast<f32>(sign | bitcast<u32>(q * 5.9604644775390625e-8));
}

// Element i of f16 values packed two per u32.
fn unpack_at(i: u32, pair: u32) -> f32 {
    let v = unpack2x16float(pair);
    return select(v.x, v.y, (i & 1u) == 1u);
}

// ---- matmul: out[r, c] = ⟂(Σ_k x[r, k] · W[c, k]), W = [n, k] ---------------------------

// Large matrices are split into column blocks whose weights fit one binding: this dispatch
// computes columns col0 .. col0 + n of an output whose rows are n_total wide.
struct MatmulArgs {
    rows: u32,
    n: u32,
    k: u32,
    n_total: u32,
    col0: u32,
    // The weights' first element in the bound window.
    w_start: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<storage, read> mm_pool: array<u32>;
@group(0) @binding(1) var<storage, read> mm_x: array<act>;
@group(0) @binding(2) var<storage, read_write> mm_out: array<act>;
@group(0) @binding(3) var<uniform> mm: MatmulArgs;

fn mm_weight(i: u32) -> f32 {
    let idx = mm.w_start + i;
    return unpack_at(idx, mm_pool[idx >> 1u]);
}

// Each invocation computes a 4×4 block of out, in registers.
@compute @workgroup_size(8, 8)
fn matmul(@builtin(global_invocation_id) gid: vec3<u32>) {
    let c0 = gid.x * 4u;
    let r0 = gid.y * 4u;
    if (c0 >= mm.n || r0 >= mm.rows) {
        return;
    }
    var acc: array<vec4<f32>, 4>;
    var xrow: array<u32, 4>;
    var wrow: array<u32, 4>;
    for (var i = 0u; i < 4u; i++) {
        xrow[i] = min(r0 + i, mm.rows - 1u) * mm.k;
        wrow[i] = min(c0 + i, mm.n - 1u) * mm.k;
    }
    for (var kk = 0u; kk < mm.k; kk++) {
        let wv = vec4<f32>(
            mm_weight(wrow[0] + kk),
            mm_weight(wrow[1] + kk),
            mm_weight(wrow[2] + kk),
            mm_weight(wrow[3] + kk)
        );
        for (var i = 0u; i < 4u; i++) {
            acc[i] += f32(mm_x[xrow[i] + kk]) * wv;
        }
    }
    for (var i = 0u; i < 4u; i++) {
        let r = r0 + i;
        for (var j = 0u; j < 4u; j++) {
            let c = c0 + j;
            if (r < mm.rows && c < mm.n) {
                mm_out[r * mm.n_total + mm.col0 + c] = act(r16(acc[i][j]));
            }
        }
    }
}

// ---- RMSNorm: out = ⟂(⟂(x · rsqrt(mean(x²) + eps)) · w) --------------------------------

struct NormArgs {
    rows: u32,
    dim: u32,
    eps: f32,
    // The weights' first element in the bound window.
    w_start: u32,
}

@group(0) @binding(0) var<storage, read> nm_pool: array<u32>;
@group(0) @binding(1) var<storage, read> nm_x: array<act>;
@group(0) @binding(2) var<storage, read_write> nm_out: array<act>;
@group(0) @binding(3) var<uniform> nm: NormArgs;

fn nm_weight(i: u32) -> f32 {
    let idx = nm.w_start + i;
    return unpack_at(idx, nm_pool[idx >> 1u]);
}

@compute @workgroup_size(64)
fn rms_norm(@builtin(global_invocation_id) gid: vec3<u32>) {
    let row = gid.x;
    if (row >= nm.rows) {
        return;
    }
    let base = row * nm.dim;
    // The reference's f32 mean is best matched by a compensated sum (the CPU backend sums
    // in f64 and rounds once).
    var sum = 0.0;
    var carry = 0.0;
    for (var i = 0u; i < nm.dim; i++) {
        let v = f32(nm_x[base + i]);
        let y = v * v - carry;
        let t = sum + y;
        carry = (t - sum) - y;
        sum = t;
    }
    let mean = sum / f32(nm.dim);
    let r = 1.0 / sqrt(mean + nm.eps);
    for (var i = 0u; i < nm.dim; i++) {
        nm_out[base + i] = act(r16(r16(f32(nm_x[base + i]) * r) * nm_weight(i)));
    }
}

// ---- RoPE on rows of q or k, pairs (2j, 2j+1) of every head ----------------------------

struct RopeArgs {
    rows: u32,
    width: u32,
    half_dim: u32,
    seq_len: u32,
    // 1: the rows are each nonce's last position only (the last layer's queries).
    last_only: u32,
}

@group(0) @binding(0) var<storage, read_write> rp_x: array<act>;
@group(0) @binding(1) var<storage, read> rp_table: array<vec2<f32>>;
@group(0) @binding(2) var<uniform> rp: RopeArgs;

@compute @workgroup_size(256)
fn rope(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let pairs = rp.width / 2u;
    let g = gid.x + gid.y * nwg.x * 256u;
    if (g >= rp.rows * pairs) {
        return;
    }
    let row = g / pairs;
    let p = g % pairs;
    let pos = select(row % rp.seq_len, rp.seq_len - 1u, rp.last_only == 1u);
    let cs = rp_table[pos * rp.half_dim + p % rp.half_dim];
    let i = row * rp.width + 2u * p;
    let x0 = f32(rp_x[i]);
    let x1 = f32(rp_x[i + 1u]);
    rp_x[i] = act(r16(x0 * cs.x - x1 * cs.y));
    rp_x[i + 1u] = act(r16(x1 * cs.x + x0 * cs.y));
}

// ---- attention, causal, grouped heads: one invocation per (row, head) ------------------

struct AttnArgs {
    rows: u32,
    seq_len: u32,
    n_heads: u32,
    n_kv_heads: u32,
    head_dim: u32,
    score_divisor: f32,
    // 1: one query row per nonce, its last position (the last layer).
    last_only: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<storage, read> at_q: array<act>;
@group(0) @binding(1) var<storage, read> at_k: array<act>;
@group(0) @binding(2) var<storage, read> at_v: array<act>;
@group(0) @binding(3) var<storage, read_write> at_out: array<act>;
@group(0) @binding(4) var<storage, read_write> at_probs: array<f32>;
@group(0) @binding(5) var<uniform> at: AttnArgs;

@compute @workgroup_size(64)
fn attention(@builtin(global_invocation_id) gid: vec3<u32>) {
    let task = gid.x;
    if (task >= at.rows * at.n_heads) {
        return;
    }
    let row = task / at.n_heads;
    let h = task % at.n_heads;
    let hd = at.head_dim;
    var b = row / at.seq_len;
    var pos = row % at.seq_len;
    if (at.last_only == 1u) {
        b = row;
        pos = at.seq_len - 1u;
    }
    let g = h / (at.n_heads / at.n_kv_heads);
    let q_width = at.n_heads * hd;
    let kv_width = at.n_kv_heads * hd;
    let q0 = row * q_width + h * hd;
    let p0 = task * at.seq_len;
    // scores = ⟂(⟂(q·k) / sqrt(hd)); keys after `pos` are masked (skipped).
    var max_score = -3.0e38;
    for (var t = 0u; t <= pos; t++) {
        let k0 = (b * at.seq_len + t) * kv_width + g * hd;
        var dot = 0.0;
        for (var d = 0u; d < hd; d++) {
            dot += f32(at_q[q0 + d]) * f32(at_k[k0 + d]);
        }
        let s = r16(r16(dot) / at.score_divisor);
        at_probs[p0 + t] = s;
        max_score = max(max_score, s);
    }
    // softmax in f32, times the reciprocal of the sum, then ⟂.
    var sum = 0.0;
    for (var t = 0u; t <= pos; t++) {
        let e = exp(at_probs[p0 + t] - max_score);
        at_probs[p0 + t] = e;
        sum += e;
    }
    let inv = 1.0 / sum;
    for (var t = 0u; t <= pos; t++) {
        at_probs[p0 + t] = r16(at_probs[p0 + t] * inv);
    }
    // o = ⟂(probs · v)
    for (var d = 0u; d < hd; d++) {
        var o = 0.0;
        for (var t = 0u; t <= pos; t++) {
            o += at_probs[p0 + t] * f32(at_v[(b * at.seq_len + t) * kv_width + g * hd + d]);
        }
        at_out[q0 + d] = act(r16(o));
    }
}

// ---- elementwise: residual add, SiLU·mul, last-row gather -------------------------------

struct EltArgs {
    len: u32,
    // gather: row width and seq_len
    width: u32,
    seq_len: u32,
    _pad: u32,
}

@group(0) @binding(0) var<storage, read_write> el_a: array<act>;
@group(0) @binding(1) var<storage, read> el_b: array<act>;
@group(0) @binding(2) var<uniform> el: EltArgs;

fn el_index(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.x + gid.y * nwg.x * 256u;
}

// a = ⟂(a + b)
@compute @workgroup_size(256)
fn add_residual(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = el_index(gid, nwg);
    if (i < el.len) {
        el_a[i] = act(r16(f32(el_a[i]) + f32(el_b[i])));
    }
}

// a = ⟂(⟂(silu(a)) · b), silu(a) = a / (1 + exp(-a))
@compute @workgroup_size(256)
fn silu_mul(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = el_index(gid, nwg);
    if (i < el.len) {
        let x = f32(el_a[i]);
        let s = r16(x / (1.0 + exp(-x)));
        el_a[i] = act(r16(s * f32(el_b[i])));
    }
}

// a[b, :] = b_in[(b + 1)·seq_len − 1, :]: each nonce's last position. `len` = batch·width.
@compute @workgroup_size(256)
fn last_rows(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = el_index(gid, nwg);
    if (i < el.len) {
        let b = i / el.width;
        let c = i % el.width;
        el_a[i] = el_b[((b + 1u) * el.seq_len - 1u) * el.width + c];
    }
}

// ---- rounding test: out = ⟂(in), f32 in and out, to check r16 against a reference -----

@group(0) @binding(0) var<storage, read_write> rt_out: array<f32>;
@group(0) @binding(1) var<storage, read> rt_in: array<f32>;
@group(0) @binding(2) var<uniform> rt_len: vec4<u32>;

@compute @workgroup_size(256)
fn round_f16(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if (i < rt_len.x) {
        rt_out[i] = r16(rt_in[i]);
    }
}
