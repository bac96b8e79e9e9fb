//! The scheduling LM in candle, for training: the same function as
//! [`super::infer`] on batched, padded tensors, plus the pointer loss.
//!
//! Weights are plain [`candle_core::Var`]s initialised from a seeded ChaCha8
//! RNG, so a training run is reproducible from its seed.

use candle_core::{DType, Device, Tensor, Var, D};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::features::{CLUSTER_FEATS, TASK_FEATS};
use super::infer::WeightMap;
use super::LmShape;
use crate::LearnError;

type CResult<T> = candle_core::Result<T>;

/// Trainable parameters, in [`LmShape::tensors`] order.
pub struct LmModel {
    /// Sizes.
    pub shape: LmShape,
    /// (name, variable) pairs.
    pub vars: Vec<(String, Var)>,
}

/// A padded batch of decision points with pointer targets.
#[derive(Clone, Debug, Default)]
pub struct Batch {
    /// Rows.
    pub b: usize,
    /// Tokens per row (padded).
    pub n: usize,
    /// Pointer steps per row.
    pub k: usize,
    /// `b × n × TASK_FEATS`.
    pub task: Vec<f32>,
    /// `b × CLUSTER_FEATS`.
    pub cluster: Vec<f32>,
    /// `b × n`: 1 for a real token, 0 for padding.
    pub mask: Vec<f32>,
    /// `k × b × n`: 1 where the token may be chosen at step k (real, not yet chosen).
    pub step_mask: Vec<f32>,
    /// `k × b`: token chosen at step k (0 when the step is unused).
    pub target: Vec<u32>,
    /// `k × b`: weight of the step's negative log-likelihood (0 when unused).
    pub weight: Vec<f32>,
}

impl Batch {
    /// Start an empty batch of `b` rows with `n` tokens and `k` steps.
    pub fn new(b: usize, n: usize, k: usize) -> Self {
        Batch {
            b,
            n,
            k,
            task: vec![0.0; b * n * TASK_FEATS],
            cluster: vec![0.0; b * CLUSTER_FEATS],
            mask: vec![0.0; b * n],
            step_mask: vec![0.0; k * b * n],
            target: vec![0; k * b],
            weight: vec![0.0; k * b],
        }
    }

    /// Fill row `r` from tokens (`nt` real tokens) and a target prefix whose
    /// steps each get weight `w`.
    pub fn set_row(
        &mut self,
        r: usize,
        task: &[f32],
        cluster: &[f32],
        nt: usize,
        prefix: &[u16],
        w: f32,
    ) {
        let (n, b) = (self.n, self.b);
        let nt = nt.min(n);
        self.task[r * n * TASK_FEATS..r * n * TASK_FEATS + nt * TASK_FEATS]
            .copy_from_slice(&task[..nt * TASK_FEATS]);
        self.cluster[r * CLUSTER_FEATS..(r + 1) * CLUSTER_FEATS].copy_from_slice(cluster);
        for i in 0..nt {
            self.mask[r * n + i] = 1.0;
        }
        let mut chosen: Vec<usize> = Vec::new();
        for (s, &t) in prefix.iter().take(self.k).enumerate() {
            let t = t as usize;
            if t >= nt {
                break;
            }
            let base = s * b * n + r * n;
            for i in 0..nt {
                self.step_mask[base + i] = if chosen.contains(&i) { 0.0 } else { 1.0 };
            }
            self.target[s * b + r] = t as u32;
            self.weight[s * b + r] = w;
            chosen.push(t);
        }
    }
}

fn randn(rng: &mut ChaCha8Rng) -> f32 {
    let u1: f64 = rng.gen::<f64>().max(1e-12);
    let u2: f64 = rng.gen();
    ((-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()) as f32
}

impl LmModel {
    /// Fresh weights from `seed`.
    pub fn new(shape: LmShape, seed: u64) -> Result<Self, LearnError> {
        shape.validate()?;
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut vars = Vec::new();
        for (name, dims) in shape.tensors() {
            let count: usize = dims.iter().product();
            let vals: Vec<f32> = if name.ends_with(".g") {
                vec![1.0; count]
            } else if name.ends_with(".b") {
                vec![0.0; count]
            } else {
                let fan_in = if dims.len() == 2 {
                    dims[0]
                } else {
                    dims[0].max(1)
                } as f32;
                let scale = if name == "out.w" || name == "skip.w" {
                    0.1
                } else {
                    1.0 / fan_in.sqrt()
                };
                (0..count).map(|_| randn(&mut rng) * scale).collect()
            };
            let t = Tensor::from_vec(vals, dims.as_slice(), &Device::Cpu)
                .map_err(LearnError::candle("init"))?;
            vars.push((
                name,
                Var::from_tensor(&t).map_err(LearnError::candle("init"))?,
            ));
        }
        Ok(LmModel { shape, vars })
    }

    /// Model from a weight map (e.g. loaded from safetensors).
    pub fn from_map(shape: LmShape, map: &WeightMap) -> Result<Self, LearnError> {
        let mut vars = Vec::new();
        for (name, dims) in shape.tensors() {
            let (s, v) = map.get(&name).ok_or_else(|| LearnError::Config {
                field: "weights",
                reason: format!("missing tensor `{name}`"),
            })?;
            if *s != dims {
                return Err(LearnError::Config {
                    field: "weights",
                    reason: format!("`{name}` has shape {s:?}, want {dims:?}"),
                });
            }
            let t = Tensor::from_vec(v.clone(), dims.as_slice(), &Device::Cpu)
                .map_err(LearnError::candle("load"))?;
            vars.push((
                name,
                Var::from_tensor(&t).map_err(LearnError::candle("load"))?,
            ));
        }
        Ok(LmModel { shape, vars })
    }

    /// Current weights as a map (for inference and saving).
    pub fn weight_map(&self) -> Result<WeightMap, LearnError> {
        let mut m = WeightMap::new();
        for (name, v) in &self.vars {
            let t = v.as_tensor();
            let vals = t
                .flatten_all()
                .and_then(|f| f.to_vec1::<f32>())
                .map_err(LearnError::candle("export"))?;
            m.insert(name.clone(), (t.dims().to_vec(), vals));
        }
        Ok(m)
    }

    fn get(&self, name: &str) -> &Tensor {
        self.vars
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_tensor())
            .expect("known tensor name")
    }

    /// The trainable variables.
    pub fn all_vars(&self) -> Vec<Var> {
        self.vars.iter().map(|(_, v)| v.clone()).collect()
    }

    fn layer_norm(&self, x: &Tensor, g: &str, b: &str) -> CResult<Tensor> {
        let mean = x.mean_keepdim(D::Minus1)?;
        let xc = x.broadcast_sub(&mean)?;
        let var = xc.sqr()?.mean_keepdim(D::Minus1)?;
        let xn = xc.broadcast_div(&(var + 1e-5)?.sqrt()?)?;
        xn.broadcast_mul(self.get(g))?.broadcast_add(self.get(b))
    }

    /// Pointer logits `[b, n]` for a batch (padding not yet masked).
    pub fn logits(&self, batch: &Batch) -> CResult<Tensor> {
        let dev = Device::Cpu;
        let (b, n, d, l) = (batch.b, batch.n, self.shape.d, self.shape.latents);
        let task = Tensor::from_slice(&batch.task, (b, n, TASK_FEATS), &dev)?;
        let cl = Tensor::from_slice(&batch.cluster, (b, CLUSTER_FEATS), &dev)?;
        let mask = Tensor::from_slice(&batch.mask, (b, n), &dev)?;
        let scale = 1.0 / (d as f64).sqrt();
        let x = task
            .broadcast_matmul(self.get("in.w"))?
            .broadcast_add(self.get("in.b"))?;
        let c = cl
            .matmul(self.get("cl.w"))?
            .broadcast_add(self.get("cl.b"))?
            .unsqueeze(1)?; // b,1,d
        let xc = Tensor::cat(&[&c, &x], 1)?; // b,n+1,d
        let maskc = Tensor::cat(&[&Tensor::ones((b, 1), DType::F32, &dev)?, &mask], 1)?;
        let neg = ((maskc - 1.0)? * 1e9)?.unsqueeze(1)?; // b,1,n+1
        let lat = self.get("lat");
        let q1 = lat
            .matmul(self.get("a1.q"))?
            .unsqueeze(0)?
            .broadcast_as((b, l, d))?
            .contiguous()?;
        let k1 = xc.broadcast_matmul(self.get("a1.k"))?;
        let s1 = (q1.matmul(&k1.transpose(1, 2)?.contiguous()?)? * scale)?.broadcast_add(&neg)?;
        let a1 = candle_nn::ops::softmax(&s1, D::Minus1)?;
        let v1 = xc.broadcast_matmul(self.get("a1.v"))?;
        let h = a1
            .matmul(&v1)?
            .broadcast_matmul(self.get("a1.o"))?
            .broadcast_add(lat)?; // b,l,d
        let hc = Tensor::cat(&[&c, &h], 1)?; // b,l+1,d
        let q2 = x.broadcast_matmul(self.get("a2.q"))?;
        let k2 = hc.broadcast_matmul(self.get("a2.k"))?;
        let v2 = hc.broadcast_matmul(self.get("a2.v"))?;
        let s2 = (q2.matmul(&k2.transpose(1, 2)?.contiguous()?)? * scale)?;
        let a2 = candle_nn::ops::softmax(&s2, D::Minus1)?;
        let x = (x + a2.matmul(&v2)?.broadcast_matmul(self.get("a2.o"))?)?;
        let f = self.layer_norm(&x, "ln1.g", "ln1.b")?;
        let f = f
            .broadcast_matmul(self.get("ff1.w"))?
            .broadcast_add(self.get("ff1.b"))?
            .relu()?;
        let f = f
            .broadcast_matmul(self.get("ff2.w"))?
            .broadcast_add(self.get("ff2.b"))?;
        let x = (x + f)?;
        let y = self.layer_norm(&x, "ln2.g", "ln2.b")?;
        let out = y
            .broadcast_matmul(&self.get("out.w").unsqueeze(1)?)?
            .squeeze(2)?
            .broadcast_add(self.get("out.b"))?;
        let skip = task
            .broadcast_matmul(&self.get("skip.w").unsqueeze(1)?)?
            .squeeze(2)?;
        out + skip
    }

    /// Weighted pointer negative log-likelihood: `Σ_k Σ_b w[k,b]·(−log P(target[k,b]))`
    /// where step k's distribution is over the tokens its step mask allows.
    pub fn pointer_nll(&self, batch: &Batch) -> CResult<Tensor> {
        let dev = Device::Cpu;
        let (b, n, k) = (batch.b, batch.n, batch.k);
        let logits = self.logits(batch)?;
        let sm = Tensor::from_slice(&batch.step_mask, (k, b, n), &dev)?;
        let tg = Tensor::from_slice(&batch.target, (k, b), &dev)?;
        let w = Tensor::from_slice(&batch.weight, (k, b), &dev)?;
        let mut total = Tensor::zeros((), DType::F32, &dev)?;
        for s in 0..k {
            let m = sm.get(s)?;
            let lg = logits.add(&((m - 1.0)? * 1e9)?)?;
            let lp = candle_nn::ops::log_softmax(&lg, D::Minus1)?;
            let picked = lp.gather(&tg.get(s)?.unsqueeze(1)?, 1)?.squeeze(1)?;
            let term = (picked * w.get(s)?)?.sum_all()?;
            total = (total - term)?;
        }
        Ok(total)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lm::{Encoded, LmWeights, Scratch};

    fn random_tokens(n: usize, seed: u64) -> (Vec<f32>, [f32; CLUSTER_FEATS]) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let t = (0..n * TASK_FEATS).map(|_| rng.gen::<f32>()).collect();
        let mut c = [0f32; CLUSTER_FEATS];
        c.iter_mut().for_each(|v| *v = rng.gen());
        (t, c)
    }

    #[test]
    fn candle_and_plain_rust_compute_the_same_logits() {
        let shape = LmShape {
            d: 8,
            latents: 3,
            ffn: 12,
            max_queue: 32,
        };
        let m = LmModel::new(shape.clone(), 3).unwrap();
        let w = LmWeights::from_map(shape, &m.weight_map().unwrap()).unwrap();
        // Two rows of different lengths: padding must not change the real tokens' logits.
        let (t0, c0) = random_tokens(5, 1);
        let (t1, c1) = random_tokens(9, 2);
        let mut b = Batch::new(2, 9, 1);
        b.set_row(0, &t0, &c0, 5, &[0], 1.0);
        b.set_row(1, &t1, &c1, 9, &[0], 1.0);
        let lg = m.logits(&b).unwrap().to_vec2::<f32>().unwrap();
        for (row, (t, c, n)) in [(t0, c0, 5usize), (t1, c1, 9)].into_iter().enumerate() {
            let enc = Encoded {
                n,
                idx: (0..n).collect(),
                task: t,
                cluster: c,
                fits: vec![true; n],
            };
            let mut out = Vec::new();
            w.scores(&enc, &mut Scratch::default(), &mut out);
            for i in 0..n {
                assert!(
                    (out[i] - lg[row][i]).abs() < 1e-4,
                    "row {row} token {i}: {} vs {}",
                    out[i],
                    lg[row][i]
                );
            }
        }
    }

    #[test]
    fn pointer_nll_prefers_the_target_after_steps() {
        let shape = LmShape {
            d: 8,
            latents: 2,
            ffn: 8,
            max_queue: 16,
        };
        let m = LmModel::new(shape, 5).unwrap();
        let (t, c) = random_tokens(6, 9);
        let mut b = Batch::new(1, 6, 2);
        b.set_row(0, &t, &c, 6, &[4, 1], 1.0);
        let mut opt = AdamWLite::new(&m);
        let first = m.pointer_nll(&b).unwrap().to_scalar::<f32>().unwrap();
        for _ in 0..60 {
            opt.step(&m, &b);
        }
        let last = m.pointer_nll(&b).unwrap().to_scalar::<f32>().unwrap();
        assert!(last < first * 0.2, "{first} -> {last}");
    }

    /// Plain SGD, enough for the test.
    struct AdamWLite;
    impl AdamWLite {
        fn new(_m: &LmModel) -> Self {
            AdamWLite
        }
        fn step(&mut self, m: &LmModel, b: &Batch) {
            let loss = m.pointer_nll(b).unwrap();
            let grads = loss.backward().unwrap();
            for (_, v) in &m.vars {
                if let Some(g) = grads.get(v.as_tensor()) {
                    v.set(&(v.as_tensor() - (g * 0.1).unwrap()).unwrap())
                        .unwrap();
                }
            }
        }
    }
}
