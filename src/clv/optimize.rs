//! Minimizing a smooth function of a few parameters without derivatives:
//! Nelder–Mead (argmin's), restarted from its best point until a restart no longer
//! improves, which guards against the simplex collapsing early. Deterministic: the
//! same function and start always give the same point.

use argmin::core::{CostFunction, Error, Executor, State, TerminationReason, TerminationStatus};
use argmin::solver::neldermead::NelderMead;

/// Where a minimization ended.
#[derive(Debug, Clone, PartialEq)]
pub struct Minimum {
    pub point: Vec<f64>,
    pub value: f64,
    /// The simplex shrank below the tolerance (rather than running out of iterations).
    pub converged: bool,
}

/// Histories per parallel piece of a likelihood.
const CHUNK: usize = 4096;

/// `f` summed over fixed-size chunks of `items` on every core; the partial sums
/// are added in chunk order, so the total does not depend on the thread count or
/// on scheduling (the fit stays deterministic).
pub fn in_chunks<T: Sync>(items: &[T], f: impl Fn(&[T]) -> f64 + Sync) -> f64 {
    use rayon::prelude::*;
    let partials: Vec<f64> = items.par_chunks(CHUNK).map(&f).collect();
    partials.iter().sum()
}

/// Iterations of one Nelder–Mead run.
const MAX_ITERATIONS: u64 = 5_000;
/// Restarts after the first run.
const MAX_RESTARTS: usize = 8;
/// A run has converged when the standard deviation of the simplex's values is below this.
const TOLERANCE: f64 = 1e-12;

struct Cost<F>(F);

impl<F: Fn(&[f64]) -> f64> CostFunction for Cost<F> {
    type Param = Vec<f64>;
    type Output = f64;

    fn cost(&self, point: &Vec<f64>) -> Result<f64, Error> {
        Ok((self.0)(point))
    }
}

/// The minimum of `f` found from `start`; `None` when `f` is not finite there or
/// the solver fails.
pub fn minimize(f: impl Fn(&[f64]) -> f64, start: &[f64]) -> Option<Minimum> {
    let cost = Cost(f);
    let mut best = Minimum { point: start.to_vec(), value: (cost.0)(start), converged: false };
    if !best.value.is_finite() {
        return None;
    }
    for _ in 0..=MAX_RESTARTS {
        let run = run_from(&cost, &best.point)?;
        let improved = best.value - run.value;
        if run.value <= best.value {
            best = run;
        }
        if improved.abs() <= 1e-12 * best.value.abs().max(1.0) {
            break;
        }
    }
    Some(best)
}

/// One Nelder–Mead run from a simplex around `start` (steps of 0.5 in each
/// log-parameter: a factor of 1.6).
fn run_from<F: Fn(&[f64]) -> f64>(cost: &Cost<F>, start: &[f64]) -> Option<Minimum> {
    let mut simplex = vec![start.to_vec()];
    for i in 0..start.len() {
        let mut vertex = start.to_vec();
        vertex[i] += 0.5;
        simplex.push(vertex);
    }
    let solver = NelderMead::new(simplex).with_sd_tolerance(TOLERANCE).ok()?;
    let result = Executor::new(Cost(&cost.0), solver).configure(|state| state.max_iters(MAX_ITERATIONS)).run().ok()?;
    let state = result.state();
    let point = state.get_best_param()?.clone();
    let converged = matches!(state.get_termination_status(), TerminationStatus::Terminated(TerminationReason::SolverConverged));
    Some(Minimum { value: state.get_best_cost(), point, converged })
}
