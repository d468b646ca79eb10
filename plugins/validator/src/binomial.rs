//! The binomial upper tail `P[X ≥ k]` for `X ~ Binomial(n, p)`: what scipy's
//! `binomtest(k, n, p, alternative="greater").pvalue` gives, which the network's validators
//! compare against `fraud_threshold` (docs/spec/COMPUTATION.md §7).
//!
//! Each probability mass is computed with Loader's saddle-point form (the one R's `dbinom`
//! uses), accurate to a few ulps even where `ln C(n, k)` is huge and a log-gamma difference
//! would lose digits; the tail is then summed from its largest term outwards by the ratio of
//! neighbouring masses. Below the mean the tail is `1 − P[X < k]`, which is then at least ½,
//! so the subtraction costs no relative accuracy.

use std::f64::consts::PI;

/// `P[X ≥ k]`, `X ~ Binomial(n, p)`. 1 for `k = 0` (an empty or all-valid batch).
pub fn upper_tail(k: u64, n: u64, p: f64) -> f64 {
    assert!((0.0..=1.0).contains(&p), "p must be a probability");
    if k == 0 {
        return 1.0;
    }
    if k > n || p == 0.0 {
        return 0.0;
    }
    if p == 1.0 {
        return 1.0;
    }
    let q = 1.0 - p;
    let (nf, kf) = (n as f64, k as f64);
    // Both sums stop once a term no longer changes the total.
    if kf > nf * p {
        // Terms fall from k upwards.
        let mut term = mass(k, n, p, q);
        let mut sum = term;
        let mut j = k;
        while j < n && term > sum * 1e-18 {
            term *= (nf - j as f64) / (j as f64 + 1.0) * (p / q);
            sum += term;
            j += 1;
        }
        sum
    } else {
        // Terms fall from k − 1 downwards.
        let mut term = mass(k - 1, n, p, q);
        let mut sum = term;
        let mut j = k - 1;
        while j > 0 && term > sum * 1e-18 {
            term *= j as f64 / (nf - j as f64 + 1.0) * (q / p);
            sum += term;
            j -= 1;
        }
        1.0 - sum
    }
}

/// `P[X = x]` by Loader's method ("Fast and accurate computation of binomial probabilities",
/// 2000): `exp(−stirlerr and bd0 terms) · sqrt(n / (2π x (n − x)))`.
fn mass(x: u64, n: u64, p: f64, q: f64) -> f64 {
    let (xf, nf) = (x as f64, n as f64);
    if x == 0 {
        let lc = if p < 0.1 {
            -bd0(nf, nf * q) - nf * p
        } else {
            nf * q.ln()
        };
        return lc.exp();
    }
    if x == n {
        let lc = if q < 0.1 {
            -bd0(nf, nf * p) - nf * q
        } else {
            nf * p.ln()
        };
        return lc.exp();
    }
    let lc =
        stirlerr(nf) - stirlerr(xf) - stirlerr(nf - xf) - bd0(xf, nf * p) - bd0(nf - xf, nf * q);
    let lf = (2.0 * PI).ln() + xf.ln() + (-xf / nf).ln_1p();
    (lc - 0.5 * lf).exp()
}

/// `ln(n!) − [(n + ½) ln n − n + ln √(2π)]`: the error of Stirling's formula, for integer n ≥ 1.
fn stirlerr(n: f64) -> f64 {
    const S0: f64 = 1.0 / 12.0;
    const S1: f64 = 1.0 / 360.0;
    const S2: f64 = 1.0 / 1260.0;
    const S3: f64 = 1.0 / 1680.0;
    const S4: f64 = 1.0 / 1188.0;
    if n <= 15.0 {
        // n! is exact in f64 here; the cancellation below costs ~1e-14 absolute.
        let factorial: f64 = (1..=n as u64).map(|i| i as f64).product();
        return factorial.ln() - (n + 0.5) * n.ln() + n - 0.5 * (2.0 * PI).ln();
    }
    let nn = n * n;
    if n > 500.0 {
        (S0 - S1 / nn) / n
    } else if n > 80.0 {
        (S0 - (S1 - S2 / nn) / nn) / n
    } else if n > 35.0 {
        (S0 - (S1 - (S2 - S3 / nn) / nn) / nn) / n
    } else {
        (S0 - (S1 - (S2 - (S3 - S4 / nn) / nn) / nn) / nn) / n
    }
}

/// `x ln(x / m) + m − x`, without the cancellation of that form when x ≈ m.
fn bd0(x: f64, m: f64) -> f64 {
    if (x - m).abs() < 0.1 * (x + m) {
        let mut v = (x - m) / (x + m);
        let mut s = (x - m) * v;
        let mut ej = 2.0 * x * v;
        v *= v;
        for j in 1..1000 {
            ej *= v;
            let next = s + ej / (2 * j + 1) as f64;
            if next == s {
                return next;
            }
            s = next;
        }
        return s;
    }
    x * (x / m).ln() + m - x
}

#[cfg(test)]
mod tests {
    use super::*;

    /// scipy 1.x `binomtest(k, n, p, alternative="greater").pvalue` (tests/binomtest.json,
    /// made by tests/binomtest.py): agreement to 1e-9 relative, n up to 10^6.
    #[test]
    fn agrees_with_scipy() {
        let table: Vec<(u64, u64, f64, f64)> =
            serde_json::from_str(include_str!("../tests/binomtest.json")).unwrap();
        assert!(table.len() > 50);
        let mut worst = 0.0f64;
        for (k, n, p, want) in table {
            let got = upper_tail(k, n, p);
            let rel = if want == 0.0 {
                got
            } else {
                ((got - want) / want).abs()
            };
            assert!(
                rel <= 1e-9,
                "k={k} n={n} p={p}: {got:e} vs scipy {want:e} (rel {rel:e})"
            );
            worst = worst.max(rel);
        }
        eprintln!("worst relative difference from scipy: {worst:e}");
    }

    #[test]
    fn edges() {
        assert_eq!(upper_tail(0, 0, 5e-4), 1.0);
        assert_eq!(upper_tail(0, 200, 5e-4), 1.0);
        assert_eq!(upper_tail(1, 0, 5e-4), 0.0);
        assert_eq!(upper_tail(201, 200, 5e-4), 0.0);
        assert_eq!(upper_tail(3, 10, 0.0), 0.0);
        assert_eq!(upper_tail(3, 10, 1.0), 1.0);
        // P[X ≥ 1] = 1 − q^n.
        let want = 1.0 - (1.0f64 - 5e-4).powi(200);
        assert!(((upper_tail(1, 200, 5e-4) - want) / want).abs() < 1e-12);
        // P[X ≥ n] = p^n.
        assert!(((upper_tail(10, 10, 0.3) - 0.3f64.powi(10)) / 0.3f64.powi(10)).abs() < 1e-12);
    }

    /// The network's threshold: fraud from 5 invalid nonces of 200 (docs/spec/PROTOCOLS.md §A7).
    #[test]
    fn network_threshold() {
        assert!(upper_tail(4, 200, 5e-4) >= 1e-7);
        assert!(upper_tail(5, 200, 5e-4) < 1e-7);
    }
}
