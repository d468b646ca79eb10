//! Model parameters (docs/spec/COMPUTATION.md §2): the JSON shape, named presets, partial
//! objects, validation.

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

/// The model hyper-parameters, with the reference's JSON names.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ModelParams {
    pub dim: usize,
    pub n_layers: usize,
    pub n_heads: usize,
    pub n_kv_heads: usize,
    pub vocab_size: usize,
    pub ffn_dim_multiplier: f64,
    pub multiple_of: usize,
    pub norm_eps: f64,
    /// Arrives as a JSON integer or float; kept as f64.
    pub rope_theta: f64,
    pub use_scaled_rope: bool,
    pub seq_len: usize,
}

/// A `params` object as a request gives it: any subset of the fields, nothing else.
/// Missing fields (or `null`) take the `reference-default` values.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartialParams {
    pub dim: Option<usize>,
    pub n_layers: Option<usize>,
    pub n_heads: Option<usize>,
    pub n_kv_heads: Option<usize>,
    pub vocab_size: Option<usize>,
    pub ffn_dim_multiplier: Option<f64>,
    pub multiple_of: Option<usize>,
    pub norm_eps: Option<f64>,
    pub rope_theta: Option<f64>,
    pub use_scaled_rope: Option<bool>,
    pub seq_len: Option<usize>,
}

#[allow(clippy::too_many_arguments)]
const fn preset(
    dim: usize,
    n_layers: usize,
    n_heads: usize,
    n_kv_heads: usize,
    vocab_size: usize,
    ffn_dim_multiplier: f64,
    multiple_of: usize,
    rope_theta: f64,
    use_scaled_rope: bool,
    seq_len: usize,
) -> ModelParams {
    ModelParams {
        dim,
        n_layers,
        n_heads,
        n_kv_heads,
        vocab_size,
        ffn_dim_multiplier,
        multiple_of,
        norm_eps: 1e-5,
        rope_theta,
        use_scaled_rope,
        seq_len,
    }
}

/// The named presets: the network's (docs/spec/COMPUTATION.md §2.3) and our own test/bench sizes.
pub const PRESETS: &[(&str, &str, ModelParams)] = &[
    (
        "mainnet",
        "the live network (17.76 B parameters, seq_len 256)",
        preset(1792, 64, 64, 64, 8196, 10.0, 8192, 10000.0, false, 256),
    ),
    (
        "testnet",
        "the test network",
        preset(1024, 32, 32, 32, 8196, 10.0, 2048, 10000.0, false, 128),
    ),
    (
        "reference-default",
        "what a request without `params` gets",
        preset(2048, 16, 16, 16, 8192, 1.3, 1024, 500000.0, false, 16),
    ),
    (
        "devtest",
        "a network test preset: 16 layers, scaled RoPE",
        preset(512, 16, 16, 16, 8192, 1.3, 1024, 500000.0, true, 4),
    ),
    (
        "llama8b-example",
        "the example request of the serverless README",
        preset(4096, 32, 32, 8, 128256, 1.3, 1024, 500000.0, false, 1024),
    ),
    (
        "tiny",
        "test size (GQA, pool slices only)",
        preset(64, 2, 4, 2, 128, 1.3, 32, 500000.0, false, 8),
    ),
    (
        "small",
        "test size (pool tile branch, scaled RoPE)",
        preset(128, 2, 8, 8, 8196, 1.3, 64, 10000.0, true, 16),
    ),
    (
        "cpu-bench",
        "CPU benchmark size (dim 512, 8 layers, seq_len 64)",
        preset(512, 8, 8, 8, 8192, 1.3, 256, 10000.0, false, 64),
    ),
];

impl ModelParams {
    /// A named preset, or an error listing the names.
    pub fn preset(name: &str) -> Result<Self> {
        PRESETS
            .iter()
            .find(|(n, _, _)| *n == name)
            .map(|(_, _, p)| p.clone())
            .with_context(|| {
                let names: Vec<&str> = PRESETS.iter().map(|(n, _, _)| *n).collect();
                format!(
                    "unknown preset `{name}`; choose one of: {}",
                    names.join(", ")
                )
            })
    }

    pub fn reference_default() -> Self {
        Self::preset("reference-default").expect("built-in preset")
    }

    /// Parse a (possibly partial) JSON `params` object, fill it from `reference-default`
    /// and validate it.
    pub fn from_json(json: &str) -> Result<Self> {
        let partial: PartialParams =
            serde_json::from_str(json).map_err(|e| anyhow::anyhow!("invalid params JSON: {e}"))?;
        let params = Self::from_partial(&partial);
        params.validate()?;
        Ok(params)
    }

    pub fn from_partial(p: &PartialParams) -> Self {
        let d = Self::reference_default();
        Self {
            dim: p.dim.unwrap_or(d.dim),
            n_layers: p.n_layers.unwrap_or(d.n_layers),
            n_heads: p.n_heads.unwrap_or(d.n_heads),
            n_kv_heads: p.n_kv_heads.unwrap_or(d.n_kv_heads),
            vocab_size: p.vocab_size.unwrap_or(d.vocab_size),
            ffn_dim_multiplier: p.ffn_dim_multiplier.unwrap_or(d.ffn_dim_multiplier),
            multiple_of: p.multiple_of.unwrap_or(d.multiple_of),
            norm_eps: p.norm_eps.unwrap_or(d.norm_eps),
            rope_theta: p.rope_theta.unwrap_or(d.rope_theta),
            use_scaled_rope: p.use_scaled_rope.unwrap_or(d.use_scaled_rope),
            seq_len: p.seq_len.unwrap_or(d.seq_len),
        }
    }

    pub fn head_dim(&self) -> usize {
        self.dim / self.n_heads
    }

    /// The FFN width: `int(2*(4*dim)/3)`, times the multiplier (truncated), rounded up to a
    /// multiple of `multiple_of` — float arithmetic exactly as the reference does it.
    pub fn ffn_hidden(&self) -> usize {
        let hidden = ((2 * 4 * self.dim) as f64 / 3.0) as usize;
        let hidden = (self.ffn_dim_multiplier * hidden as f64) as usize;
        hidden.div_ceil(self.multiple_of) * self.multiple_of
    }

    /// Floating-point operations of one nonce's forward pass (multiply-adds count 2), with
    /// the last layer computing only what the last position needs: the figure behind
    /// GFLOP/s in benchmarks.
    pub fn forward_flops(&self) -> u64 {
        let (s, d, hd) = (self.seq_len as u64, self.dim as u64, self.head_dim() as u64);
        let (q, kv, hidden) = (
            self.n_heads as u64 * hd,
            self.n_kv_heads as u64 * hd,
            self.ffn_hidden() as u64,
        );
        let kv_proj = 2 * d * kv * 2;
        let rest = 2 * d * q * 2 + 3 * 2 * d * hidden; // wq, wo, w1, w2, w3
        // scores and probs·v: position p attends to p+1 keys.
        let attention_all = 2 * 2 * q * s * (s + 1) / 2;
        let attention_last = 2 * 2 * q * s;
        let layers = self.n_layers as u64;
        (layers - 1) * (s * (kv_proj + rest) + attention_all)
            + (s * kv_proj + rest + attention_last)
            + 2 * d * self.vocab_size as u64
    }

    /// Check the constraints of docs/spec/COMPUTATION.md §2.1 and that every size is sane; the
    /// message says what to change.
    pub fn validate(&self) -> Result<()> {
        for (name, v) in [
            ("dim", self.dim),
            ("n_layers", self.n_layers),
            ("n_heads", self.n_heads),
            ("n_kv_heads", self.n_kv_heads),
            ("vocab_size", self.vocab_size),
            ("multiple_of", self.multiple_of),
            ("seq_len", self.seq_len),
        ] {
            if v == 0 {
                bail!("params.{name} must be at least 1 (got 0)");
            }
            // Far beyond any model that fits in memory; keeps all size arithmetic in range.
            if v > 1 << 32 {
                bail!("params.{name} = {v} is too large (at most 2^32)");
            }
        }
        if !self.dim.is_multiple_of(self.n_heads) {
            bail!(
                "params.dim ({}) must be divisible by params.n_heads ({})",
                self.dim,
                self.n_heads
            );
        }
        if !self.n_heads.is_multiple_of(self.n_kv_heads) {
            bail!(
                "params.n_heads ({}) must be divisible by params.n_kv_heads ({})",
                self.n_heads,
                self.n_kv_heads
            );
        }
        if !self.head_dim().is_multiple_of(2) {
            bail!(
                "the head dimension dim/n_heads = {}/{} = {} must be even (RoPE rotates pairs)",
                self.dim,
                self.n_heads,
                self.head_dim()
            );
        }
        if !(self.ffn_dim_multiplier.is_finite() && self.ffn_dim_multiplier > 0.0) {
            bail!(
                "params.ffn_dim_multiplier must be a positive finite number (got {})",
                self.ffn_dim_multiplier
            );
        }
        if !(self.norm_eps.is_finite() && self.norm_eps >= 0.0) {
            bail!(
                "params.norm_eps must be a finite number ≥ 0 (got {})",
                self.norm_eps
            );
        }
        if !(self.rope_theta.is_finite() && self.rope_theta > 0.0) {
            bail!(
                "params.rope_theta must be a positive finite number (got {})",
                self.rope_theta
            );
        }
        if self.ffn_dim_multiplier * (8 * self.dim) as f64 / 3.0 > (1u64 << 40) as f64 {
            bail!(
                "params.ffn_dim_multiplier = {} makes the FFN too wide",
                self.ffn_dim_multiplier
            );
        }
        if self.ffn_hidden() == 0 {
            bail!(
                "the FFN width int({} * int(8*{}/3)) is 0: raise params.ffn_dim_multiplier or params.dim",
                self.ffn_dim_multiplier,
                self.dim
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_are_valid_and_mainnet_has_known_width() {
        for (name, _, p) in PRESETS {
            p.validate().unwrap_or_else(|e| panic!("{name}: {e}"));
        }
        assert_eq!(ModelParams::preset("mainnet").unwrap().ffn_hidden(), 49152);
        assert_eq!(ModelParams::preset("devtest").unwrap().ffn_hidden(), 2048);
    }

    #[test]
    fn partial_params_fill_from_reference_default() {
        let p = ModelParams::from_json(
            r#"{"dim": 64, "n_heads": 4, "n_kv_heads": 2, "rope_theta": 10000}"#,
        )
        .unwrap();
        assert_eq!(p.dim, 64);
        assert_eq!(p.rope_theta, 10000.0);
        assert_eq!(p.n_layers, 16);
        assert_eq!(p.seq_len, 16);
    }

    #[test]
    fn bad_params_get_clear_errors() {
        let cases = [
            (r#"{"dimm": 64}"#, "unknown field `dimm`"),
            (r#"{"dim": 65}"#, "divisible by params.n_heads"),
            (r#"{"n_kv_heads": 3}"#, "divisible by params.n_kv_heads"),
            (r#"{"dim": 48, "n_heads": 16}"#, "must be even"),
            (r#"{"seq_len": 0}"#, "at least 1"),
            (r#"{"dim": -1}"#, "invalid params JSON"),
            (r#"{"dim": 64.5}"#, "invalid params JSON"),
            (r#"{"rope_theta": "big"}"#, "invalid params JSON"),
            (r#"{"ffn_dim_multiplier": 0.0001}"#, "FFN width"),
            (r#"{"ffn_dim_multiplier": -1}"#, "positive finite"),
            (r#"[1]"#, "invalid params JSON"),
            (r#"{"vocab_size": 99999999999999}"#, "too large"),
        ];
        for (json, want) in cases {
            let err = ModelParams::from_json(json).unwrap_err().to_string();
            assert!(err.contains(want), "{json}: got `{err}`, want `{want}`");
        }
    }

    #[test]
    fn unknown_preset_lists_names() {
        let err = ModelParams::preset("huge").unwrap_err().to_string();
        assert!(
            err.contains("mainnet") && err.contains("cpu-bench"),
            "{err}"
        );
    }
}
