//! How closely two lists of distances agree (the budget of docs/spec/COMPUTATION.md §9), for
//! tests and reports.

use serde::Serialize;

/// The network's default `r_target`, and 2.0 where every nonce passes.
pub const R_TARGET_DEFAULT: f64 = 1.4013564660458173;
pub const AGREEMENT_R_TARGETS: [f64; 2] = [2.0, R_TARGET_DEFAULT];
/// docs/spec/COMPUTATION.md §9: median and max |Δd| against the reference.
pub const BUDGET_MEDIAN: f64 = 5e-7;
pub const BUDGET_MAX: f64 = 5e-6;

#[derive(Clone, Debug, Serialize)]
pub struct Agreement {
    pub count: usize,
    pub median_abs_diff: f64,
    pub max_abs_diff: f64,
    pub bit_identical: usize,
    /// `(r_target, nonces whose valid/invalid verdict differs)`.
    pub verdict_flips: Vec<(f64, usize)>,
}

impl Agreement {
    pub fn between(a: &[f64], b: &[f64], r_targets: &[f64]) -> Self {
        assert_eq!(
            a.len(),
            b.len(),
            "comparing distance lists of different lengths"
        );
        let mut diffs: Vec<f64> = a.iter().zip(b).map(|(x, y)| (x - y).abs()).collect();
        diffs.sort_by(f64::total_cmp);
        let median_abs_diff = match diffs.len() {
            0 => 0.0,
            n if n % 2 == 1 => diffs[n / 2],
            n => (diffs[n / 2 - 1] + diffs[n / 2]) / 2.0,
        };
        Self {
            count: a.len(),
            median_abs_diff,
            max_abs_diff: diffs.last().copied().unwrap_or(0.0),
            bit_identical: a
                .iter()
                .zip(b)
                .filter(|(x, y)| x.to_bits() == y.to_bits())
                .count(),
            verdict_flips: r_targets
                .iter()
                .map(|&r| {
                    (
                        r,
                        a.iter()
                            .zip(b)
                            .filter(|(x, y)| (**x < r) != (**y < r))
                            .count(),
                    )
                })
                .collect(),
        }
    }

    pub fn within(&self, budget_median: f64, budget_max: f64) -> bool {
        self.median_abs_diff <= budget_median
            && self.max_abs_diff <= budget_max
            && self.verdict_flips.iter().all(|(_, n)| *n == 0)
    }
}

impl std::fmt::Display for Agreement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} nonces: median |Δd| {:.3e}, max |Δd| {:.3e}, {} bit-identical",
            self.count, self.median_abs_diff, self.max_abs_diff, self.bit_identical
        )?;
        for (r, n) in &self.verdict_flips {
            write!(f, ", {n} verdict flips at r_target {r}")?;
        }
        Ok(())
    }
}
