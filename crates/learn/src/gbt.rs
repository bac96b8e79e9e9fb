//! A small gradient-boosted regression-tree ensemble (squared loss,
//! histogram splits), in plain Rust. Used by the runtime predictor.
//!
//! Deterministic: no sampling, ties in split search keep the lowest
//! (feature, bin). Trees are stored flat so they can be written as
//! safetensors arrays (see [`Gbt::to_arrays`]).

use serde::{Deserialize, Serialize};

/// Training settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GbtConfig {
    /// Number of boosting rounds (trees).
    pub trees: usize,
    /// Maximum depth of each tree (1 = stumps).
    pub depth: usize,
    /// Shrinkage applied to every leaf.
    pub learning_rate: f32,
    /// Minimum samples in a leaf.
    pub min_leaf: usize,
    /// Histogram bins per feature (quantile cut points).
    pub bins: usize,
    /// L2 regularisation on leaf values.
    pub l2: f32,
}

impl Default for GbtConfig {
    fn default() -> Self {
        GbtConfig {
            trees: 200,
            depth: 5,
            learning_rate: 0.08,
            min_leaf: 8,
            bins: 64,
            l2: 1.0,
        }
    }
}

/// A leaf has `feature == LEAF`.
pub const LEAF: u32 = u32::MAX;

/// One node of a flat tree. Internal: go right when `x[feature] > threshold`.
#[derive(Copy, Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Node {
    /// Feature index, or [`LEAF`].
    pub feature: u32,
    /// Split threshold.
    pub threshold: f32,
    /// Left child index (within the ensemble's node array).
    pub left: u32,
    /// Right child index.
    pub right: u32,
    /// Leaf value (already scaled by the learning rate).
    pub value: f32,
}

/// A trained ensemble: `predict(x) = base + Σ tree(x)`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Gbt {
    /// Number of features expected.
    pub n_features: usize,
    /// Initial prediction (mean target).
    pub base: f32,
    /// All nodes of all trees.
    pub nodes: Vec<Node>,
    /// Root index of each tree.
    pub roots: Vec<u32>,
}

impl Gbt {
    /// Fit on `x` (row-major, `n × n_features`) against `y`.
    /// Returns the model and the training loss (MSE) after each tree.
    pub fn fit(x: &[f32], n_features: usize, y: &[f32], cfg: &GbtConfig) -> (Gbt, Vec<f32>) {
        let n = y.len();
        assert_eq!(x.len(), n * n_features, "feature matrix shape");
        let base = if n == 0 {
            0.0
        } else {
            (y.iter().map(|v| *v as f64).sum::<f64>() / n as f64) as f32
        };
        let mut model = Gbt {
            n_features,
            base,
            nodes: Vec::new(),
            roots: Vec::new(),
        };
        if n == 0 {
            return (model, Vec::new());
        }
        // Quantile cut points per feature and binned data.
        let cuts: Vec<Vec<f32>> = (0..n_features)
            .map(|f| quantile_cuts(x, n_features, f, cfg.bins))
            .collect();
        let mut bins = vec![0u8; n * n_features];
        for i in 0..n {
            for f in 0..n_features {
                let v = x[i * n_features + f];
                bins[i * n_features + f] = cuts[f].partition_point(|c| v > *c) as u8;
            }
        }
        let mut pred = vec![base; n];
        let mut curve = Vec::with_capacity(cfg.trees);
        let mut grad = vec![0f32; n];
        for _ in 0..cfg.trees {
            for i in 0..n {
                grad[i] = pred[i] - y[i];
            }
            let mut idx: Vec<u32> = (0..n as u32).collect();
            let root = model.nodes.len() as u32;
            model.roots.push(root);
            let mut b = Builder {
                bins: &bins,
                cuts: &cuts,
                nf: n_features,
                grad: &grad,
                cfg,
                nodes: &mut model.nodes,
            };
            b.grow(&mut idx, 0);
            for i in 0..n {
                pred[i] += model.tree_value(root, &x[i * n_features..(i + 1) * n_features]);
            }
            let mse = pred
                .iter()
                .zip(y)
                .map(|(p, t)| ((p - t) as f64).powi(2))
                .sum::<f64>()
                / n as f64;
            curve.push(mse as f32);
        }
        (model, curve)
    }

    fn tree_value(&self, root: u32, x: &[f32]) -> f32 {
        let mut i = root as usize;
        loop {
            let nd = &self.nodes[i];
            if nd.feature == LEAF {
                return nd.value;
            }
            i = if x[nd.feature as usize] > nd.threshold {
                nd.right
            } else {
                nd.left
            } as usize;
        }
    }

    /// Predict one row.
    pub fn predict(&self, x: &[f32]) -> f32 {
        self.base
            + self
                .roots
                .iter()
                .map(|r| self.tree_value(*r, x))
                .sum::<f32>()
    }

    /// Flat arrays `(feature, threshold, left, right, value, roots)` for storage.
    #[allow(clippy::type_complexity)]
    pub fn to_arrays(&self) -> (Vec<u32>, Vec<f32>, Vec<u32>, Vec<u32>, Vec<f32>, Vec<u32>) {
        (
            self.nodes.iter().map(|n| n.feature).collect(),
            self.nodes.iter().map(|n| n.threshold).collect(),
            self.nodes.iter().map(|n| n.left).collect(),
            self.nodes.iter().map(|n| n.right).collect(),
            self.nodes.iter().map(|n| n.value).collect(),
            self.roots.clone(),
        )
    }

    /// Rebuild from flat arrays, checking every index. `Err` names the problem.
    #[allow(clippy::too_many_arguments)]
    pub fn from_arrays(
        n_features: usize,
        base: f32,
        feature: Vec<u32>,
        threshold: Vec<f32>,
        left: Vec<u32>,
        right: Vec<u32>,
        value: Vec<f32>,
        roots: Vec<u32>,
    ) -> Result<Gbt, String> {
        let n = feature.len();
        if [threshold.len(), left.len(), right.len(), value.len()]
            .iter()
            .any(|l| *l != n)
        {
            return Err("tree arrays have different lengths".into());
        }
        let mut nodes = Vec::with_capacity(n);
        for i in 0..n {
            let nd = Node {
                feature: feature[i],
                threshold: threshold[i],
                left: left[i],
                right: right[i],
                value: value[i],
            };
            if nd.feature != LEAF
                && (nd.feature as usize >= n_features
                    || nd.left as usize >= n
                    || nd.right as usize >= n
                    || nd.left as usize <= i
                    || nd.right as usize <= i)
            {
                return Err(format!(
                    "tree node {i} has an out-of-range feature or child"
                ));
            }
            nodes.push(nd);
        }
        if roots.iter().any(|r| *r as usize >= n) {
            return Err("a tree root is out of range".into());
        }
        Ok(Gbt {
            n_features,
            base,
            nodes,
            roots,
        })
    }
}

fn quantile_cuts(x: &[f32], nf: usize, f: usize, bins: usize) -> Vec<f32> {
    let mut v: Vec<f32> = x.iter().skip(f).step_by(nf).copied().collect();
    v.sort_by(f32::total_cmp);
    v.dedup();
    let bins = bins.clamp(2, 255);
    let mut cuts = Vec::new();
    if v.len() <= bins {
        for w in v.windows(2) {
            cuts.push(0.5 * (w[0] + w[1]));
        }
    } else {
        for k in 1..bins {
            let i = k * v.len() / bins;
            let c = 0.5 * (v[i - 1] + v[i]);
            if cuts.last().map_or(true, |l| c > *l) {
                cuts.push(c);
            }
        }
    }
    cuts
}

struct Builder<'a> {
    bins: &'a [u8],
    cuts: &'a [Vec<f32>],
    nf: usize,
    grad: &'a [f32],
    cfg: &'a GbtConfig,
    nodes: &'a mut Vec<Node>,
}

impl Builder<'_> {
    /// Grow a subtree over `idx`; returns its node index.
    fn grow(&mut self, idx: &mut [u32], depth: usize) -> u32 {
        let me = self.nodes.len() as u32;
        let g: f64 = idx.iter().map(|i| self.grad[*i as usize] as f64).sum();
        let cnt = idx.len() as f64;
        let l2 = self.cfg.l2 as f64;
        let leaf_value = (-g / (cnt + l2)) as f32 * self.cfg.learning_rate;
        self.nodes.push(Node {
            feature: LEAF,
            threshold: 0.0,
            left: 0,
            right: 0,
            value: leaf_value,
        });
        if depth >= self.cfg.depth || idx.len() < 2 * self.cfg.min_leaf {
            return me;
        }
        let parent_score = g * g / (cnt + l2);
        let mut best: Option<(f64, usize, usize)> = None; // (gain, feature, bin)
        let mut hg = [0f64; 256];
        let mut hc = [0u32; 256];
        for f in 0..self.nf {
            let nb = self.cuts[f].len() + 1;
            if nb < 2 {
                continue;
            }
            hg[..nb].fill(0.0);
            hc[..nb].fill(0);
            for &i in idx.iter() {
                let b = self.bins[i as usize * self.nf + f] as usize;
                hg[b] += self.grad[i as usize] as f64;
                hc[b] += 1;
            }
            let (mut gl, mut cl) = (0f64, 0u32);
            for b in 0..nb - 1 {
                gl += hg[b];
                cl += hc[b];
                let cr = idx.len() as u32 - cl;
                if (cl as usize) < self.cfg.min_leaf || (cr as usize) < self.cfg.min_leaf {
                    continue;
                }
                let gr = g - gl;
                let gain = gl * gl / (cl as f64 + l2) + gr * gr / (cr as f64 + l2) - parent_score;
                if gain > 1e-9 && best.map_or(true, |(bg, _, _)| gain > bg) {
                    best = Some((gain, f, b));
                }
            }
        }
        let Some((_, f, b)) = best else { return me };
        // Partition idx: bin <= b left, else right.
        let mut lo = 0usize;
        for k in 0..idx.len() {
            if (self.bins[idx[k] as usize * self.nf + f] as usize) <= b {
                idx.swap(lo, k);
                lo += 1;
            }
        }
        let (l, r) = idx.split_at_mut(lo);
        let left = self.grow(l, depth + 1);
        let right = self.grow(r, depth + 1);
        self.nodes[me as usize] = Node {
            feature: f as u32,
            threshold: self.cuts[f][b],
            left,
            right,
            value: leaf_value,
        };
        me
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fits_a_step_function_and_loss_falls() {
        // y = 3 when x0 >= 0.5 else 1; x1 is irrelevant.
        let n = 400;
        let mut x = Vec::new();
        let mut y = Vec::new();
        for i in 0..n {
            let a = i as f32 / n as f32;
            let b = ((i * 7919) % n) as f32 / n as f32;
            x.extend([a, b]);
            y.push(if a >= 0.5 { 3.0 } else { 1.0 });
        }
        let cfg = GbtConfig {
            trees: 50,
            depth: 2,
            learning_rate: 0.3,
            min_leaf: 2,
            bins: 32,
            l2: 0.0,
        };
        let (m, curve) = Gbt::fit(&x, 2, &y, &cfg);
        assert!(curve.last().unwrap() < &(curve[0] * 0.01), "{curve:?}");
        assert!((m.predict(&[0.9, 0.1]) - 3.0).abs() < 0.05);
        assert!((m.predict(&[0.1, 0.9]) - 1.0).abs() < 0.05);
        let (f, t, l, r, v, roots) = m.to_arrays();
        let back = Gbt::from_arrays(2, m.base, f, t, l, r, v, roots).unwrap();
        assert_eq!(back, m);
    }

    #[test]
    fn corrupt_arrays_are_refused() {
        let e = Gbt::from_arrays(
            1,
            0.0,
            vec![0],
            vec![0.0],
            vec![5],
            vec![6],
            vec![0.0],
            vec![0],
        )
        .unwrap_err();
        assert!(e.contains("node 0"), "{e}");
    }
}
