//! Logistic regression: numeric features standardised on the training split, industry
//! one-hot, L2 on every weight but the intercept, fitted by Newton's method (the loss is
//! convex and the model small, so each step solves the exact quadratic model) until the
//! largest gradient component per row is below the tolerance.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::{Example, NUMERIC};

/// How the regression is fitted.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Settings {
    /// L2 strength (on the sum of the loss over rows).
    pub l2: f64,
    /// Stop when every gradient component, divided by the rows, is below this.
    pub tolerance: f64,
    /// Give up after this many Newton steps.
    pub max_iterations: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            l2: 1.0,
            tolerance: 1e-9,
            max_iterations: 100,
        }
    }
}

/// A fitted regression, in the terms of `bench/model.json`.
#[derive(Debug, Clone, PartialEq)]
pub struct Logistic {
    /// The intercept.
    pub intercept: f64,
    /// Per numeric feature: mean, std, weight.
    pub numeric: [(f64, f64, f64); 6],
    /// Industry weights.
    pub industry: BTreeMap<String, f64>,
    /// Newton steps taken.
    pub iterations: usize,
    /// The final largest gradient component per row.
    pub gradient: f64,
    /// True if the tolerance was met.
    pub converged: bool,
}

/// Why fitting failed.
#[derive(Debug, thiserror::Error, PartialEq)]
#[non_exhaustive]
pub enum FitError {
    /// No rows.
    #[error("no training rows")]
    Empty,
    /// The Newton system could not be solved (should not happen with L2 > 0).
    #[error("the Newton step's system is singular")]
    Singular,
}

/// Fits the regression on `rows`.
///
/// # Errors
/// No rows, or a singular system.
pub fn fit(rows: &[Example], settings: Settings) -> Result<Logistic, FitError> {
    if rows.is_empty() {
        return Err(FitError::Empty);
    }
    let n = rows.len() as f64;
    let mut stats = [(0.0, 1.0); 6];
    for (k, stat) in stats.iter_mut().enumerate() {
        let mean = rows.iter().map(|r| r.x[k]).sum::<f64>() / n;
        let var = rows.iter().map(|r| (r.x[k] - mean).powi(2)).sum::<f64>() / n;
        let std = if var > 0.0 { var.sqrt() } else { 1.0 };
        *stat = (mean, std);
    }
    let industries = crate::industries(rows);
    let dim = 1 + 6 + industries.len();
    // Design rows: [1, standardised numerics…, one-hot…].
    let design: Vec<(Vec<f64>, f64)> = rows
        .iter()
        .map(|r| {
            let mut v = vec![0.0; dim];
            v[0] = 1.0;
            for k in 0..6 {
                v[1 + k] = (r.x[k] - stats[k].0) / stats[k].1;
            }
            if let Ok(i) = industries.binary_search(&r.industry) {
                v[7 + i] = 1.0;
            }
            (v, if r.churn { 1.0 } else { 0.0 })
        })
        .collect();
    let mut w = vec![0.0; dim];
    let mut iterations = 0;
    let mut gradient_max = f64::INFINITY;
    while iterations < settings.max_iterations {
        let mut g = vec![0.0; dim];
        let mut h = vec![vec![0.0; dim]; dim];
        for (x, y) in &design {
            let z: f64 = x.iter().zip(&w).map(|(a, b)| a * b).sum();
            let p = 1.0 / (1.0 + (-z).exp());
            let s = (p * (1.0 - p)).max(1e-12);
            for i in 0..dim {
                if x[i] == 0.0 {
                    continue;
                }
                g[i] += (p - y) * x[i];
                for j in 0..dim {
                    h[i][j] += s * x[i] * x[j];
                }
            }
        }
        for i in 1..dim {
            g[i] += settings.l2 * w[i];
            h[i][i] += settings.l2;
        }
        gradient_max = g.iter().fold(0.0f64, |m, v| m.max(v.abs())) / n;
        if gradient_max < settings.tolerance {
            break;
        }
        let step = solve(h, g).ok_or(FitError::Singular)?;
        for (wi, si) in w.iter_mut().zip(step) {
            *wi -= si;
        }
        iterations += 1;
    }
    Ok(Logistic {
        intercept: w[0],
        numeric: std::array::from_fn(|k| (stats[k].0, stats[k].1, w[1 + k])),
        industry: industries
            .into_iter()
            .enumerate()
            .map(|(i, name)| (name, w[7 + i]))
            .collect(),
        iterations,
        gradient: gradient_max,
        converged: gradient_max < settings.tolerance,
    })
}

/// Solves `a x = b` (symmetric positive definite) by Cholesky.
// Indices read as the textbook algorithm does; iterators would hide it.
#[allow(clippy::needless_range_loop)]
fn solve(mut a: Vec<Vec<f64>>, mut b: Vec<f64>) -> Option<Vec<f64>> {
    let n = b.len();
    for j in 0..n {
        let mut d = a[j][j];
        for k in 0..j {
            d -= a[j][k] * a[j][k];
        }
        if d <= 0.0 || !d.is_finite() {
            return None;
        }
        let d = d.sqrt();
        a[j][j] = d;
        for i in j + 1..n {
            let mut s = a[i][j];
            for k in 0..j {
                s -= a[i][k] * a[j][k];
            }
            a[i][j] = s / d;
        }
    }
    for i in 0..n {
        let mut s = b[i];
        for k in 0..i {
            s -= a[i][k] * b[k];
        }
        b[i] = s / a[i][i];
    }
    for i in (0..n).rev() {
        let mut s = b[i];
        for k in i + 1..n {
            s -= a[k][i] * b[k];
        }
        b[i] = s / a[i][i];
    }
    Some(b)
}

impl Logistic {
    /// The model file (the format of `bench/model.json`), with what training says of it.
    pub fn to_json(&self, name: &str, training: impl Serialize) -> serde_json::Value {
        serde_json::json!({
            "kind": "logistic_regression",
            "name": name,
            "threshold": 0.5,
            "intercept": self.intercept,
            "features": NUMERIC.iter().zip(&self.numeric).map(|(name, (mean, std, weight))| {
                serde_json::json!({"name": name, "mean": mean, "std": std, "weight": weight})
            }).collect::<Vec<_>>(),
            "categorical": {"industry": self.industry},
            "training": training,
        })
    }
}
