//! Plain-Rust inference for the scheduling LM: the same function as the
//! candle model ([`super::model`]) on `Vec<f32>`, with attention products
//! re-associated so one decision costs `O(n·d·(L + h))` with no allocation
//! in steady state. Decisions never pay framework overhead.

use std::collections::BTreeMap;

use super::features::{Encoded, CLUSTER_FEATS, TASK_FEATS};
use super::LmShape;

/// Every weight tensor: name → (shape, row-major values). Names and shapes
/// are listed by [`LmShape::tensors`].
pub type WeightMap = BTreeMap<String, (Vec<usize>, Vec<f32>)>;

/// Weights laid out for fast inference, with the constant products folded.
#[derive(Clone, Debug, PartialEq)]
pub struct LmWeights {
    shape: LmShape,
    w_in: Vec<f32>,
    b_in: Vec<f32>,
    w_cl: Vec<f32>,
    b_cl: Vec<f32>,
    lat: Vec<f32>,
    /// `(lat·Wq1)·Wk1ᵀ / √d`, `L × d`.
    q1k: Vec<f32>,
    /// `Wv1·Wo1`, `d × d`.
    vo1: Vec<f32>,
    a2q: Vec<f32>,
    a2k: Vec<f32>,
    a2v: Vec<f32>,
    a2o: Vec<f32>,
    ln1_g: Vec<f32>,
    ln1_b: Vec<f32>,
    ff1_w: Vec<f32>,
    ff1_b: Vec<f32>,
    ff2_w: Vec<f32>,
    ff2_b: Vec<f32>,
    ln2_g: Vec<f32>,
    ln2_b: Vec<f32>,
    out_w: Vec<f32>,
    out_b: f32,
    skip_w: Vec<f32>,
}

/// Scratch buffers for [`LmWeights::scores`].
#[derive(Clone, Debug, Default)]
pub struct Scratch {
    x: Vec<f32>,
    c: Vec<f32>,
    att: Vec<f32>,
    h: Vec<f32>,
    hc: Vec<f32>,
    k2: Vec<f32>,
    m2: Vec<f32>,
    vo2: Vec<f32>,
    tmp: Vec<f32>,
    hid: Vec<f32>,
    row: Vec<f32>,
}

/// `out[m×p] = a[m×k] · b[k×p]` (row-major), overwriting `out`.
fn matmul(a: &[f32], b: &[f32], m: usize, k: usize, p: usize, out: &mut Vec<f32>) {
    out.clear();
    out.resize(m * p, 0.0);
    for i in 0..m {
        let o = &mut out[i * p..(i + 1) * p];
        for (kk, av) in a[i * k..(i + 1) * k].iter().enumerate() {
            let br = &b[kk * p..(kk + 1) * p];
            for (ov, bv) in o.iter_mut().zip(br) {
                *ov += av * bv;
            }
        }
    }
}

fn transpose(a: &[f32], m: usize, n: usize) -> Vec<f32> {
    let mut t = vec![0.0; m * n];
    for i in 0..m {
        for j in 0..n {
            t[j * m + i] = a[i * n + j];
        }
    }
    t
}

fn layer_norm(x: &[f32], g: &[f32], b: &[f32], out: &mut [f32]) {
    let d = x.len() as f32;
    let mean = x.iter().sum::<f32>() / d;
    let var = x.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / d;
    let inv = 1.0 / (var + 1e-5).sqrt();
    for i in 0..x.len() {
        out[i] = (x[i] - mean) * inv * g[i] + b[i];
    }
}

fn softmax_in_place(v: &mut [f32]) {
    let m = v.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut s = 0.0;
    for x in v.iter_mut() {
        *x = (*x - m).exp();
        s += *x;
    }
    for x in v.iter_mut() {
        *x /= s;
    }
}

impl LmWeights {
    /// Build from a weight map, checking every name and shape.
    pub fn from_map(shape: LmShape, map: &WeightMap) -> Result<Self, String> {
        for (name, dims) in shape.tensors() {
            match map.get(&name) {
                None => return Err(format!("missing tensor `{name}`")),
                Some((s, v)) if *s != dims || v.len() != dims.iter().product::<usize>() => {
                    return Err(format!(
                        "tensor `{name}` has shape {s:?}, expected {dims:?}"
                    ))
                }
                _ => {}
            }
        }
        let g = |n: &str| map[n].1.clone();
        let (d, l) = (shape.d, shape.latents);
        let lat = g("lat");
        let mut q1 = Vec::new();
        matmul(&lat, &map["a1.q"].1, l, d, d, &mut q1);
        let k1t = transpose(&map["a1.k"].1, d, d);
        let mut q1k = Vec::new();
        matmul(&q1, &k1t, l, d, d, &mut q1k);
        let scale = 1.0 / (d as f32).sqrt();
        q1k.iter_mut().for_each(|v| *v *= scale);
        let mut vo1 = Vec::new();
        matmul(&map["a1.v"].1, &map["a1.o"].1, d, d, d, &mut vo1);
        Ok(LmWeights {
            shape,
            w_in: g("in.w"),
            b_in: g("in.b"),
            w_cl: g("cl.w"),
            b_cl: g("cl.b"),
            lat,
            q1k,
            vo1,
            a2q: g("a2.q"),
            a2k: g("a2.k"),
            a2v: g("a2.v"),
            a2o: g("a2.o"),
            ln1_g: g("ln1.g"),
            ln1_b: g("ln1.b"),
            ff1_w: g("ff1.w"),
            ff1_b: g("ff1.b"),
            ff2_w: g("ff2.w"),
            ff2_b: g("ff2.b"),
            ln2_g: g("ln2.g"),
            ln2_b: g("ln2.b"),
            out_w: g("out.w"),
            out_b: map["out.b"].1[0],
            skip_w: g("skip.w"),
        })
    }

    /// The model's shape.
    pub fn shape(&self) -> &LmShape {
        &self.shape
    }

    /// Pointer logits (higher = start sooner) for every token of `enc`,
    /// written to `out` (cleared first).
    pub fn scores(&self, enc: &Encoded, s: &mut Scratch, out: &mut Vec<f32>) {
        let (d, l, h, n) = (self.shape.d, self.shape.latents, self.shape.ffn, enc.n);
        out.clear();
        if n == 0 {
            return;
        }
        // Token embeddings: X = T·W_in + b, c = C·W_cl + b.
        matmul(&enc.task, &self.w_in, n, TASK_FEATS, d, &mut s.x);
        for i in 0..n {
            for j in 0..d {
                s.x[i * d + j] += self.b_in[j];
            }
        }
        matmul(&enc.cluster, &self.w_cl, 1, CLUSTER_FEATS, d, &mut s.c);
        for j in 0..d {
            s.c[j] += self.b_cl[j];
        }
        // (a) latents attend over [c; X]: H = lat + softmax(q1k·[c;X]ᵀ)·[c;X]·(Wv1·Wo1).
        s.h.clear();
        s.h.extend_from_slice(&self.lat);
        for li in 0..l {
            let q = &self.q1k[li * d..(li + 1) * d];
            s.att.clear();
            s.att.push(dot(q, &s.c));
            for i in 0..n {
                s.att.push(dot(q, &s.x[i * d..(i + 1) * d]));
            }
            softmax_in_place(&mut s.att);
            s.row.clear();
            s.row.resize(d, 0.0);
            axpy(s.att[0], &s.c, &mut s.row);
            for i in 0..n {
                axpy(s.att[i + 1], &s.x[i * d..(i + 1) * d], &mut s.row);
            }
            matmul(&s.row, &self.vo1, 1, d, d, &mut s.tmp);
            for j in 0..d {
                s.h[li * d + j] += s.tmp[j];
            }
        }
        // (b) tasks attend over [c; H]: X += softmax(X·Wq2·K2ᵀ/√d)·(V2·Wo2).
        s.hc.clear();
        s.hc.extend_from_slice(&s.c);
        s.hc.extend_from_slice(&s.h);
        let m = l + 1;
        matmul(&s.hc, &self.a2k, m, d, d, &mut s.k2);
        let k2t = {
            s.tmp.clear();
            s.tmp.resize(d * m, 0.0);
            for i in 0..m {
                for j in 0..d {
                    s.tmp[j * m + i] = s.k2[i * d + j] / (d as f32).sqrt();
                }
            }
            std::mem::take(&mut s.tmp)
        };
        matmul(&self.a2q, &k2t, d, d, m, &mut s.m2); // d × m
        s.tmp = k2t;
        matmul(&s.hc, &self.a2v, m, d, d, &mut s.k2); // reuse as V2
        matmul(&s.k2, &self.a2o, m, d, d, &mut s.vo2); // m × d
        matmul(&s.x, &s.m2, n, d, m, &mut s.att); // n × m scores
        for i in 0..n {
            let a = &mut s.att[i * m..(i + 1) * m];
            softmax_in_place(a);
            let xi = &mut s.x[i * d..(i + 1) * d];
            for (k, w) in a.iter().enumerate() {
                for (xv, vv) in xi.iter_mut().zip(&s.vo2[k * d..(k + 1) * d]) {
                    *xv += w * vv;
                }
            }
        }
        // (c) X += relu(LN1(X)·W1 + b1)·W2 + b2; logits = LN2(X)·w_out + b + T·w_skip.
        s.row.clear();
        s.row.resize(d, 0.0);
        for i in 0..n {
            layer_norm(
                &s.x[i * d..(i + 1) * d],
                &self.ln1_g,
                &self.ln1_b,
                &mut s.row,
            );
            matmul(&s.row, &self.ff1_w, 1, d, h, &mut s.hid);
            for (v, b) in s.hid.iter_mut().zip(&self.ff1_b) {
                *v = (*v + b).max(0.0);
            }
            matmul(&s.hid, &self.ff2_w, 1, h, d, &mut s.tmp);
            let xi = &mut s.x[i * d..(i + 1) * d];
            for ((xv, t), b) in xi.iter_mut().zip(&s.tmp).zip(&self.ff2_b) {
                *xv += t + b;
            }
            layer_norm(xi, &self.ln2_g, &self.ln2_b, &mut s.row);
            let logit = dot(&s.row, &self.out_w)
                + self.out_b
                + dot(
                    &enc.task[i * TASK_FEATS..(i + 1) * TASK_FEATS],
                    &self.skip_w,
                );
            out.push(logit);
        }
    }
}

#[inline]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

#[inline]
fn axpy(a: f32, x: &[f32], y: &mut [f32]) {
    for (yv, xv) in y.iter_mut().zip(x) {
        *yv += a * xv;
    }
}
