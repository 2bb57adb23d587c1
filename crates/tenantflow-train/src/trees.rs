//! Gradient-boosted decision trees for the churn label (logistic loss).
//!
//! Each round fits a tree of depth at most `depth` to the loss's gradients and
//! hessians (second-order gain, leaf value `-G / (H + λ)`), shrunk by the learning rate.
//! Numeric features split at thresholds between quantile bins (up to 64 per feature,
//! computed once on the training split); the industry splits into a set of industries
//! and the rest, found by ordering the industries by `G / H` (the classic exact method
//! for one categorical feature and a convex loss). An industry the model never saw goes
//! with the rest.

use serde::Serialize;
use tenantflow_operators::score::{Feature, TreeNode as Node};

use crate::{Example, NUMERIC};

/// How the ensemble is grown.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Settings {
    /// Trees.
    pub rounds: usize,
    /// Deepest split level.
    pub depth: usize,
    /// Shrinkage of each tree.
    pub learning_rate: f64,
    /// L2 on leaf values.
    pub lambda: f64,
    /// Least hessian a child may have.
    pub min_child_hessian: f64,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            rounds: 100,
            depth: 3,
            learning_rate: 0.3,
            lambda: 1.0,
            min_child_hessian: 1e-3,
        }
    }
}

/// A fitted ensemble.
#[derive(Debug, Clone, PartialEq)]
pub struct Ensemble {
    /// The log-odds before any tree.
    pub base: f64,
    /// The trees, each a list of nodes with the root first.
    pub trees: Vec<Vec<Node>>,
}

struct Binned {
    /// Per numeric feature: the thresholds between bins.
    edges: Vec<Vec<f64>>,
    /// Per row: bin of each numeric feature, then its industry's index.
    bins: Vec<[u16; 7]>,
    industries: Vec<String>,
}

const MAX_BINS: usize = 64;

fn bin(rows: &[Example]) -> Binned {
    let mut edges = Vec::with_capacity(6);
    for k in 0..6 {
        let mut values: Vec<f64> = rows.iter().map(|r| r.x[k]).collect();
        values.sort_by(f64::total_cmp);
        values.dedup();
        let mut e = Vec::new();
        if values.len() <= MAX_BINS {
            for w in values.windows(2) {
                e.push((w[0] + w[1]) / 2.0);
            }
        } else {
            for b in 1..MAX_BINS {
                let i = b * values.len() / MAX_BINS;
                e.push((values[i - 1] + values[i]) / 2.0);
            }
            e.dedup();
        }
        edges.push(e);
    }
    let industries = crate::industries(rows);
    let bins = rows
        .iter()
        .map(|r| {
            let mut b = [0u16; 7];
            for k in 0..6 {
                b[k] = edges[k].partition_point(|&t| t <= r.x[k]) as u16;
            }
            b[6] = industries.binary_search(&r.industry).unwrap_or(0) as u16;
            b
        })
        .collect();
    Binned {
        edges,
        bins,
        industries,
    }
}

/// The best split of the rows `idx`: (gain, split); `None` if no split gains.
enum Split {
    Numeric { feature: usize, bin: u16 },
    Industry { left: Vec<u16> },
}

/// Fits the ensemble.
pub fn fit(rows: &[Example], settings: Settings) -> Ensemble {
    let binned = bin(rows);
    let y: Vec<f64> = rows.iter().map(|r| f64::from(u8::from(r.churn))).collect();
    let p0 = (y.iter().sum::<f64>() / y.len().max(1) as f64).clamp(1e-6, 1.0 - 1e-6);
    let base = (p0 / (1.0 - p0)).ln();
    let mut f = vec![base; rows.len()];
    let mut trees = Vec::with_capacity(settings.rounds);
    for _ in 0..settings.rounds {
        let mut g = vec![0.0; rows.len()];
        let mut h = vec![0.0; rows.len()];
        for i in 0..rows.len() {
            let p = 1.0 / (1.0 + (-f[i]).exp());
            g[i] = p - y[i];
            h[i] = (p * (1.0 - p)).max(1e-12);
        }
        let mut nodes = Vec::new();
        let all: Vec<usize> = (0..rows.len()).collect();
        grow(&binned, &g, &h, all, 0, settings, &mut nodes, &mut f);
        trees.push(nodes);
    }
    Ensemble { base, trees }
}

#[allow(clippy::too_many_arguments)]
fn grow(
    binned: &Binned,
    g: &[f64],
    h: &[f64],
    idx: Vec<usize>,
    depth: usize,
    s: Settings,
    nodes: &mut Vec<Node>,
    f: &mut [f64],
) -> usize {
    let at = nodes.len();
    let (gs, hs) = idx
        .iter()
        .fold((0.0, 0.0), |(a, b), &i| (a + g[i], b + h[i]));
    let leaf = |nodes: &mut Vec<Node>, f: &mut [f64]| {
        let value = -s.learning_rate * gs / (hs + s.lambda);
        for &i in &idx {
            f[i] += value;
        }
        nodes.push(Node::Leaf { leaf: value });
        at
    };
    if depth >= s.depth || idx.len() < 2 {
        return leaf(nodes, f);
    }
    let Some(split) = best_split(binned, g, h, &idx, gs, hs, s) else {
        return leaf(nodes, f);
    };
    let goes_left = |i: usize| match &split {
        Split::Numeric { feature, bin } => binned.bins[i][*feature] < *bin,
        Split::Industry { left } => left.contains(&binned.bins[i][6]),
    };
    let (l, r): (Vec<usize>, Vec<usize>) = idx.iter().partition(|&&i| goes_left(i));
    nodes.push(Node::Leaf { leaf: 0.0 }); // replaced below
    let left = grow(binned, g, h, l, depth + 1, s, nodes, f);
    let right = grow(binned, g, h, r, depth + 1, s, nodes, f);
    nodes[at] = match split {
        Split::Numeric { feature, bin } => Node::Numeric {
            feature: Feature::ALL[feature],
            threshold: binned.edges[feature][bin as usize - 1],
            left,
            right,
        },
        Split::Industry { left: set } => Node::Industry {
            industries: set
                .iter()
                .map(|&c| binned.industries[c as usize].clone())
                .collect(),
            left,
            right,
        },
    };
    at
}

fn best_split(
    binned: &Binned,
    g: &[f64],
    h: &[f64],
    idx: &[usize],
    gs: f64,
    hs: f64,
    s: Settings,
) -> Option<Split> {
    let score = |g: f64, h: f64| g * g / (h + s.lambda);
    let parent = score(gs, hs);
    let mut best: Option<(f64, Split)> = None;
    let mut consider = |gain: f64, split: Split| {
        if gain > 1e-9 && best.as_ref().is_none_or(|(b, _)| gain > *b) {
            best = Some((gain, split));
        }
    };
    for feature in 0..7 {
        let bins = if feature < 6 {
            binned.edges[feature].len() + 1
        } else {
            binned.industries.len()
        };
        let mut hist = vec![(0.0, 0.0); bins];
        for &i in idx {
            let b = binned.bins[i][feature] as usize;
            hist[b].0 += g[i];
            hist[b].1 += h[i];
        }
        // Bins in split order: numeric as they are, industries by G / H.
        let mut order: Vec<usize> = (0..bins).filter(|&b| hist[b].1 > 0.0).collect();
        if feature == 6 {
            order.sort_by(|&a, &b| (hist[a].0 / hist[a].1).total_cmp(&(hist[b].0 / hist[b].1)));
        }
        let (mut gl, mut hl) = (0.0, 0.0);
        for (k, &b) in order.iter().enumerate().take(order.len().saturating_sub(1)) {
            gl += hist[b].0;
            hl += hist[b].1;
            let (gr, hr) = (gs - gl, hs - hl);
            if hl < s.min_child_hessian || hr < s.min_child_hessian {
                continue;
            }
            let gain = score(gl, hl) + score(gr, hr) - parent;
            let split = if feature < 6 {
                // Left: every bin up to this one; the split is at the next bin present.
                Split::Numeric {
                    feature,
                    bin: order[k + 1] as u16,
                }
            } else {
                let mut left: Vec<u16> = order[..=k].iter().map(|&c| c as u16).collect();
                left.sort_unstable();
                Split::Industry { left }
            };
            consider(gain, split);
        }
    }
    best.map(|(_, split)| split)
}

impl Ensemble {
    /// The model file.
    pub fn to_json(&self, name: &str, training: impl Serialize) -> serde_json::Value {
        serde_json::json!({
            "kind": "gradient_boosted_trees",
            "name": name,
            "threshold": 0.5,
            "features": NUMERIC,
            "categorical": ["industry"],
            "base_score": self.base,
            "trees": self.trees,
            "training": training,
        })
    }
}
