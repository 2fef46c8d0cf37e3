//! Gauss's hypergeometric function ₂F₁(a, b; c; z), which the BG/NBD model's
//! conditional expectation needs, by its power series.

/// ₂F₁(a, b; c; z) for 0 ≤ z < 1 and c > 0: Σₖ (a)ₖ(b)ₖ / ((c)ₖ k!) zᵏ.
///
/// Convergence: consecutive terms have the ratio ρₖ = (a+k)(b+k) z / ((c+k)(k+1)),
/// which tends to z < 1 and, past k > a + b + c, moves monotonically towards it.
/// From there on every later ratio is at most ρ = max(|ρₖ|, z), so the remainder
/// after term k is at most |tₖ|·ρ/(1−ρ). Summing stops when that bound falls below
/// 1e-15 of the sum (or the sum is exactly 0): the result is within a few ulps of the
/// series' value. `None` when it has not stopped after 1,000,000 terms (z within
/// about 1e-5 of 1) or the arguments are outside the domain.
pub fn hyp2f1(a: f64, b: f64, c: f64, z: f64) -> Option<f64> {
    if !(0.0..1.0).contains(&z) || c <= 0.0 || ![a, b, c].iter().all(|v| v.is_finite()) {
        return None;
    }
    let (mut term, mut sum) = (1.0f64, 1.0f64);
    for k in 0..1_000_000u32 {
        let k = f64::from(k);
        let ratio = (a + k) * (b + k) * z / ((c + k) * (k + 1.0));
        term *= ratio;
        sum += term;
        if term == 0.0 {
            return Some(sum);
        }
        if k > a.abs() + b.abs() + c {
            let rho = ratio.abs().max(z);
            if rho < 1.0 && term.abs() * rho / (1.0 - rho) <= 1e-15 * sum.abs() {
                return Some(sum);
            }
        }
    }
    None
}
