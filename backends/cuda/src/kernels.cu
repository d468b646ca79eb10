// The steps of docs/spec/COMPUTATION.md §5 that are not matrix products, as CUDA kernels
// compiled by NVRTC. f16 values are stored as raw 16-bit patterns and converted with the PTX
// instructions (cvt.rn rounds to nearest, ties to even: the spec's ⟂), so no CUDA header is
// needed. Matrix products are cuBLAS GEMMs (f16 in, f32 accumulation, f16 out) on the host
// side.

// No headers: NVRTC's built-ins only (no u64 or vector types assumed).
typedef unsigned short h16;
typedef unsigned long long u64;
struct cos_sin { float c, s; };

__device__ __forceinline__ float h2f(h16 h) {
    float f;
    asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h));
    return f;
}

__device__ __forceinline__ h16 f2h(float f) {
    h16 h;
    asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(f));
    return h;
}

// ⟂ as a float: round to f16 and widen.
__device__ __forceinline__ float r16(float f) { return h2f(f2h(f)); }

// out = ⟂(⟂(x · rsqrt(mean(x²) + eps)) · w); one block of 256 threads per row. The sum of
// squares is taken in f64 and rounded once, as the CPU backend does (the best-rounded f32 mean).
extern "C" __global__ void rms_norm(const h16* x, h16* out, const h16* w, unsigned rows,
                                    unsigned dim, float eps) {
    __shared__ double partial[256];
    unsigned row = blockIdx.x;
    if (row >= rows) return;
    const h16* xr = x + (u64)row * dim;
    double sum = 0.0;
    for (unsigned i = threadIdx.x; i < dim; i += blockDim.x) {
        double v = (double)h2f(xr[i]);
        sum += v * v;
    }
    partial[threadIdx.x] = sum;
    __syncthreads();
    for (unsigned s = blockDim.x / 2; s > 0; s >>= 1) {
        if (threadIdx.x < s) partial[threadIdx.x] += partial[threadIdx.x + s];
        __syncthreads();
    }
    float mean = (float)partial[0] / (float)dim;
    float r = 1.0f / sqrtf(mean + eps);
    h16* o = out + (u64)row * dim;
    for (unsigned i = threadIdx.x; i < dim; i += blockDim.x) {
        o[i] = f2h(r16(h2f(xr[i]) * r) * h2f(w[i]));
    }
}

// RoPE on pairs (2j, 2j+1) of every head; table[pos * half_dim + j] = (cos, sin).
// last_only: the rows are each nonce's last position (the last layer's queries).
extern "C" __global__ void rope(h16* x, const cos_sin* table, unsigned rows, unsigned width,
                                unsigned half_dim, unsigned seq_len, unsigned last_only) {
    u64 g = (u64)blockIdx.x * blockDim.x + threadIdx.x;
    unsigned pairs = width / 2;
    if (g >= (u64)rows * pairs) return;
    unsigned row = g / pairs, p = g % pairs;
    unsigned pos = last_only ? seq_len - 1 : row % seq_len;
    cos_sin cs = table[pos * half_dim + p % half_dim];
    u64 i = (u64)row * width + 2 * p;
    float x0 = h2f(x[i]), x1 = h2f(x[i + 1]);
    x[i] = f2h(x0 * cs.c - x1 * cs.s);
    x[i + 1] = f2h(x1 * cs.c + x0 * cs.s);
}

// Causal attention with grouped heads; one thread per (row, head). probs is f32 scratch,
// seq_len per thread. last_only: one query row per nonce, its last position.
extern "C" __global__ void attention(const h16* q, const h16* k, const h16* v, h16* out,
                                     float* probs, unsigned rows, unsigned seq_len,
                                     unsigned n_heads, unsigned n_kv_heads, unsigned hd,
                                     float score_divisor, unsigned last_only) {
    u64 task = (u64)blockIdx.x * blockDim.x + threadIdx.x;
    if (task >= (u64)rows * n_heads) return;
    unsigned row = task / n_heads, h = task % n_heads;
    unsigned b = last_only ? row : row / seq_len;
    unsigned pos = last_only ? seq_len - 1 : row % seq_len;
    unsigned g = h / (n_heads / n_kv_heads);
    u64 q_width = (u64)n_heads * hd, kv_width = (u64)n_kv_heads * hd;
    const h16* qh = q + row * q_width + h * hd;
    float* p = probs + task * seq_len;
    float max_score = -3.0e38f;
    for (unsigned t = 0; t <= pos; t++) {
        const h16* kt = k + ((u64)b * seq_len + t) * kv_width + g * hd;
        float dot = 0.0f;
        for (unsigned d = 0; d < hd; d++) dot += h2f(qh[d]) * h2f(kt[d]);
        float s = r16(r16(dot) / score_divisor);
        p[t] = s;
        max_score = fmaxf(max_score, s);
    }
    float sum = 0.0f;
    for (unsigned t = 0; t <= pos; t++) {
        float e = expf(p[t] - max_score);
        p[t] = e;
        sum += e;
    }
    float inv = 1.0f / sum;
    for (unsigned t = 0; t <= pos; t++) p[t] = r16(p[t] * inv);
    h16* oh = out + row * q_width + h * hd;
    for (unsigned d = 0; d < hd; d++) {
        float o = 0.0f;
        for (unsigned t = 0; t <= pos; t++)
            o += p[t] * h2f(v[((u64)b * seq_len + t) * kv_width + g * hd + d]);
        oh[d] = f2h(o);
    }
}

// h = ⟂(h + d)
extern "C" __global__ void add_residual(h16* h, const h16* d, u64 n) {
    u64 i = (u64)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) h[i] = f2h(h2f(h[i]) + h2f(d[i]));
}

// a = ⟂(⟂(silu(a)) · b)
extern "C" __global__ void silu_mul(h16* a, const h16* b, u64 n) {
    u64 i = (u64)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) {
        float x = h2f(a[i]);
        float s = r16(x / (1.0f + expf(-x)));
        a[i] = f2h(s * h2f(b[i]));
    }
}

// out[b, :] = in[(b + 1)·seq_len − 1, :]: each nonce's last position.
extern "C" __global__ void last_rows(h16* out, const h16* in, unsigned batch, unsigned width,
                                     unsigned seq_len) {
    u64 i = (u64)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (u64)batch * width) return;
    u64 b = i / width, c = i % width;
    out[i] = in[((b + 1) * seq_len - 1) * width + c];
}

// A tile-placed parameter, made contiguous once at load: out[i] = pool[((i + shift) mod numel)
// mod pool_size]. (Only small models have such parameters; mainnet's are all slices.)
extern "C" __global__ void gather_tile(h16* out, const h16* pool, u64 numel, u64 shift,
                                       u64 pool_size) {
    u64 i = (u64)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < numel) out[i] = pool[((i + shift) % numel) % pool_size];
}
