//! The op check: every step of the GPU forward pass ([`GpuSteps`]) on a device against the
//! CPU backend's own op ([`CpuSteps`]) on the same seeded random data, for every kernel and
//! every GEMM shape class of a model. Every op is run and reported even when others fail, so
//! one run on a GPU localises every fault.
//!
//! Tolerances, in f16 ulps of the results (all results are f16 values):
//! - RoPE, residual add and the last-row gather are exact: the same f32 operations, rounded
//!   once (the CUDA kernels are compiled without multiply-add contraction);
//! - matrix products, RMSNorm and attention may land one f16 ulp apart: their f32 sums run
//!   in another order (docs/spec/COMPUTATION.md §5.1 leaves it free), and `exp` differs between
//!   libraries in the last f32 bit. Measured on lavapipe (wgpu, tiny and devtest): at most 1
//!   ulp, on 0.4 % of values or fewer;
//! - SiLU·mul rounds `silu(a)` before multiplying by `b`: one ulp there becomes up to |b| ulps
//!   of the product. Measured on lavapipe: 2 ulps on 1 value of 5376 (tiny), 1 of 16384
//!   (devtest). The bound is 2.
//!
//! The same bounds apply to CUDA until measured there.

use crate::CpuSteps;
use anyhow::Result;
use half::f16;
use powhost_core::ModelWeights;
use powhost_core::gpu_forward::{AttentionRows, GpuSteps};
use powhost_core::parameter_table::Parameter;
use std::fmt;
use std::sync::Arc;

/// One op's comparison.
#[derive(Debug)]
pub struct OpResult {
    pub op: String,
    pub values: usize,
    pub identical: usize,
    pub max_ulps: u32,
    pub bound_ulps: u32,
    /// The device's error, when the step or its readback failed.
    pub error: Option<String>,
}

impl OpResult {
    pub fn passed(&self) -> bool {
        self.error.is_none() && self.max_ulps <= self.bound_ulps
    }
}

impl fmt::Display for OpResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verdict = if self.passed() { "ok  " } else { "FAIL" };
        match &self.error {
            Some(e) => write!(f, "{verdict} {:<52} error: {e}", self.op),
            None => write!(
                f,
                "{verdict} {:<52} {:>9} values, {:>9} identical, max {} ulp (bound {})",
                self.op, self.values, self.identical, self.max_ulps, self.bound_ulps
            ),
        }
    }
}

enum Step<'a> {
    Matmul {
        w: &'a Parameter,
        rows: usize,
    },
    RmsNorm {
        w: &'a Parameter,
        rows: usize,
        eps: f32,
    },
    Rope {
        rows: usize,
        width: usize,
        last_only: bool,
    },
    /// The query rows, and the length of the f32 probability scratch.
    Attention(AttentionRows, usize),
    LastRows {
        batch: usize,
        width: usize,
    },
    AddResidual,
    SiluMul,
}

struct Case<'a> {
    op: String,
    step: Step<'a>,
    inputs: Vec<Vec<f16>>,
    out_len: usize,
    bound_ulps: u32,
}

/// Seeded test data (not a consensus stream): splitmix64, shaped roughly like activations.
struct Data(u64);

impl Data {
    fn next(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    }

    /// About N(0, scale²): a sum of four uniforms.
    fn values(&mut self, len: usize, scale: f64) -> Vec<f16> {
        (0..len)
            .map(|_| {
                let u: f64 = (0..4).map(|_| self.next()).sum::<f64>() - 2.0;
                f16::from_f64(u * 1.73 * scale)
            })
            .collect()
    }
}

fn cases(weights: &ModelWeights, batch: usize, seed: u64) -> Vec<Case<'_>> {
    let p = &weights.params;
    let (s, dim, hd) = (p.seq_len, p.dim, p.head_dim());
    let (q_width, kv_width, hidden) = (p.n_heads * hd, p.n_kv_heads * hd, p.ffn_hidden());
    let (all, last) = (batch * s, batch);
    let mut d = Data(seed);
    let mut out = Vec::new();
    let lp = weights.layer(p.n_layers - 1);
    // Every GEMM shape class: each weight role, for every position and for last positions.
    for (role, w) in [
        ("wq", lp.wq),
        ("wk", lp.wk),
        ("wv", lp.wv),
        ("wo", lp.wo),
        ("w1", lp.w1),
        ("w3", lp.w3),
        ("w2", lp.w2),
        ("output", weights.output()),
    ] {
        let (n, k) = (w.shape[0], w.shape[1]);
        for (rows, which) in [(all, "all rows"), (last, "last rows")] {
            out.push(Case {
                op: format!("matmul {role} [{rows}×{k}]·[{n}×{k}]ᵀ ({which})"),
                step: Step::Matmul { w, rows },
                inputs: vec![d.values(rows * k, 1.0)],
                out_len: rows * n,
                bound_ulps: 1,
            });
        }
    }
    let eps = p.norm_eps as f32;
    for (name, w, rows) in [
        ("attention_norm", lp.attention_norm, all),
        ("ffn_norm", lp.ffn_norm, last),
        ("final norm", weights.final_norm(), last),
    ] {
        out.push(Case {
            op: format!("rms_norm {name} [{rows}×{dim}]"),
            step: Step::RmsNorm { w, rows, eps },
            inputs: vec![d.values(rows * dim, 3.0)],
            out_len: rows * dim,
            bound_ulps: 1,
        });
    }
    for (name, rows, width, last_only) in [
        ("q", all, q_width, false),
        ("k", all, kv_width, false),
        ("q last positions", last, q_width, true),
    ] {
        out.push(Case {
            op: format!("rope {name} [{rows}×{width}]"),
            step: Step::Rope {
                rows,
                width,
                last_only,
            },
            inputs: vec![d.values(rows * width, 2.0)],
            out_len: rows * width,
            bound_ulps: 0,
        });
    }
    for (rows, last_only) in [(all, false), (last, true)] {
        let which = if last_only {
            "last positions"
        } else {
            "all positions"
        };
        out.push(Case {
            op: format!("attention {which} [{rows}×{}h]", p.n_heads),
            step: Step::Attention(AttentionRows { rows, last_only }, rows * p.n_heads * s),
            inputs: vec![
                d.values(rows * q_width, 1.0),
                d.values(all * kv_width, 1.0),
                d.values(all * kv_width, 1.0),
            ],
            out_len: rows * q_width,
            bound_ulps: 1,
        });
    }
    out.push(Case {
        op: format!("last_rows [{all}×{dim}] → [{last}×{dim}]"),
        step: Step::LastRows { batch, width: dim },
        inputs: vec![d.values(all * dim, 1.0)],
        out_len: last * dim,
        bound_ulps: 0,
    });
    out.push(Case {
        op: format!("add_residual [{all}×{dim}]"),
        step: Step::AddResidual,
        inputs: vec![d.values(all * dim, 2.0), d.values(all * dim, 1.0)],
        out_len: all * dim,
        bound_ulps: 0,
    });
    out.push(Case {
        op: format!("silu_mul [{all}×{hidden}]"),
        step: Step::SiluMul,
        inputs: vec![d.values(all * hidden, 3.0), d.values(all * hidden, 1.0)],
        out_len: all * hidden,
        bound_ulps: 2,
    });
    out
}

fn run<S: GpuSteps>(s: &mut S, case: &Case) -> Result<Vec<f32>> {
    let inputs = &case.inputs;
    let len = case.out_len;
    match case.step {
        Step::Matmul { w, rows } => {
            let x = s.upload("x", &inputs[0])?;
            let mut out = s.activations("out", len)?;
            s.matmul(&x, rows, w, &mut out)?;
            s.read(&out, len)
        }
        Step::RmsNorm { w, rows, eps } => {
            let x = s.upload("x", &inputs[0])?;
            let mut out = s.activations("out", len)?;
            s.rms_norm(&x, rows, w, eps, &mut out)?;
            s.read(&out, len)
        }
        Step::Rope {
            rows,
            width,
            last_only,
        } => {
            let mut x = s.upload("x", &inputs[0])?;
            s.rope(&mut x, rows, width, last_only)?;
            s.read(&x, len)
        }
        Step::Attention(rows, probs_len) => {
            let q = s.upload("q", &inputs[0])?;
            let k = s.upload("k", &inputs[1])?;
            let v = s.upload("v", &inputs[2])?;
            let mut out = s.activations("out", len)?;
            let mut probs = s.scratch_f32("probs", probs_len)?;
            s.attention(&q, &k, &v, &mut out, &mut probs, rows)?;
            s.read(&out, len)
        }
        Step::LastRows { batch, width } => {
            let x = s.upload("x", &inputs[0])?;
            let mut out = s.activations("out", len)?;
            s.last_rows(&x, &mut out, batch, width)?;
            s.read(&out, len)
        }
        Step::AddResidual => {
            let mut h = s.upload("h", &inputs[0])?;
            let d = s.upload("d", &inputs[1])?;
            s.add_residual(&mut h, &d, len)?;
            s.read(&h, len)
        }
        Step::SiluMul => {
            let mut a = s.upload("a", &inputs[0])?;
            let b = s.upload("b", &inputs[1])?;
            s.silu_mul(&mut a, &b, len)?;
            s.read(&a, len)
        }
    }
}

/// f16 values in an order where neighbours differ by one: ulps apart = difference.
fn ordered(v: f32) -> i32 {
    let bits = f16::from_f32(v).to_bits() as i32;
    if bits & 0x8000 != 0 {
        -(bits & 0x7FFF)
    } else {
        bits
    }
}

/// Run every op of `weights`' model for `batch` nonces on `device`, against the CPU's.
pub fn check_ops<S: GpuSteps>(
    device: &mut S,
    weights: &Arc<ModelWeights>,
    batch: usize,
    seed: u64,
) -> Vec<OpResult> {
    let mut cpu = CpuSteps::new(weights.clone());
    cases(weights, batch, seed)
        .iter()
        .map(|case| {
            let want = run(&mut cpu, case).expect("the CPU reference runs every op");
            let mut result = OpResult {
                op: case.op.clone(),
                values: want.len(),
                identical: 0,
                max_ulps: 0,
                bound_ulps: case.bound_ulps,
                error: None,
            };
            match run(device, case) {
                Err(e) => result.error = Some(format!("{e:#}")),
                Ok(got) if got.len() != want.len() => {
                    result.error = Some(format!(
                        "{} values back, {} expected",
                        got.len(),
                        want.len()
                    ))
                }
                Ok(got) => {
                    for (g, w) in got.iter().zip(&want) {
                        if g.to_bits() == w.to_bits() {
                            result.identical += 1;
                        } else if g.is_nan() || w.is_nan() {
                            result.max_ulps = u32::MAX;
                        } else {
                            let ulps = (ordered(*g) - ordered(*w)).unsigned_abs();
                            result.identical += (ulps == 0) as usize;
                            result.max_ulps = result.max_ulps.max(ulps);
                        }
                    }
                }
            }
            result
        })
        .collect()
}

/// Print every result under a heading, then fail listing the ops that failed.
pub fn report(heading: &str, results: &[OpResult]) -> Result<()> {
    eprintln!("op check: {heading}");
    for r in results {
        eprintln!("  {r}");
    }
    let failed: Vec<&str> = results
        .iter()
        .filter(|r| !r.passed())
        .map(|r| r.op.as_str())
        .collect();
    anyhow::ensure!(
        failed.is_empty(),
        "{heading}: {} of {} ops failed: {}",
        failed.len(),
        results.len(),
        failed.join("; ")
    );
    Ok(())
}
