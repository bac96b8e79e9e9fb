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
    /// Transposed copies (`out × in`) for the feature-major kernels.
    w_in_t: Vec<f32>,
    a2q_t: Vec<f32>,
    ff1_t: Vec<f32>,
    ff2_t: Vec<f32>,
}

/// Scratch buffers for [`LmWeights::scores`]. Token-indexed buffers are
/// feature-major (`rows × np`, `np` = tokens rounded up to [`LANES`]), so
/// every step is an elementwise product over a block of tokens that the
/// compiler vectorises.
#[derive(Clone, Debug, Default)]
pub struct Scratch {
    tt: Vec<f32>,
    x: Vec<f32>,
    xr: Vec<f32>,
    c: Vec<f32>,
    att: Vec<f32>,
    attc: Vec<f32>,
    h: Vec<f32>,
    hc: Vec<f32>,
    k2: Vec<f32>,
    m2: Vec<f32>,
    m2t: Vec<f32>,
    v2: Vec<f32>,
    vo2: Vec<f32>,
    s2: Vec<f32>,
    ln: Vec<f32>,
    hid: Vec<f32>,
    tmp: Vec<f32>,
    row: Vec<f32>,
}

/// Tokens processed together by the feature-major kernels.
pub const LANES: usize = 8;
type Block = [f32; LANES];

#[inline]
fn block(v: &[f32], at: usize) -> Block {
    let mut b = [0.0; LANES];
    b.copy_from_slice(&v[at..at + LANES]);
    b
}

/// Feature-major linear map: `out[o][t] = bias[o] + Σ_i w[o][i]·inp[i][t]`
/// for `n_out` output rows over `np` tokens (`w` is `n_out × n_in`
/// row-major; rows of `inp`/`out` have stride `np`, a multiple of [`LANES`]).
/// With `relu`, negative outputs become 0. The sum over `i` runs in order
/// from the first term, the bias added last (as a row-major product would).
#[allow(clippy::too_many_arguments)]
fn linear_fm(
    inp: &[f32],
    n_in: usize,
    w: &[f32],
    bias: Option<&[f32]>,
    n_out: usize,
    np: usize,
    relu: bool,
    out: &mut Vec<f32>,
) {
    out.clear();
    out.resize(n_out * np, 0.0);
    let io = Io {
        inp,
        n_in,
        w,
        bias,
        np,
        relu,
    };
    for t in (0..np).step_by(LANES) {
        // Four output rows at a time: independent accumulators hide the
        // latency of the additions; each row's sum keeps its order.
        let mut o = 0;
        while o + 4 <= n_out {
            io.rows::<4>(o, t, out);
            o += 4;
        }
        while o < n_out {
            io.rows::<1>(o, t, out);
            o += 1;
        }
    }
}

/// The operands of one [`linear_fm`].
struct Io<'a> {
    inp: &'a [f32],
    n_in: usize,
    w: &'a [f32],
    bias: Option<&'a [f32]>,
    np: usize,
    relu: bool,
}

impl Io<'_> {
    /// Output rows `o..o+Q` for the token block at `t`.
    #[inline(always)]
    #[allow(clippy::needless_range_loop)] // `i` indexes the input rows and Q weight rows alike
    fn rows<const Q: usize>(&self, o: usize, t: usize, out: &mut [f32]) {
        let (n_in, np) = (self.n_in, self.np);
        let ws: [&[f32]; Q] = std::array::from_fn(|q| &self.w[(o + q) * n_in..(o + q + 1) * n_in]);
        let mut acc: [Block; Q] = [[0.0; LANES]; Q];
        for i in 0..n_in {
            let xv = block(self.inp, i * np + t);
            for q in 0..Q {
                let wv = ws[q][i];
                for l in 0..LANES {
                    acc[q][l] += wv * xv[l];
                }
            }
        }
        for (q, a) in acc.iter_mut().enumerate() {
            if let Some(b) = self.bias {
                let bv = b[o + q];
                for v in a.iter_mut() {
                    *v += bv;
                }
            }
            if self.relu {
                for v in a.iter_mut() {
                    *v = v.max(0.0);
                }
            }
            out[(o + q) * np + t..(o + q) * np + t + LANES].copy_from_slice(a);
        }
    }
}

/// Feature-major layer norm of `d` rows over `np` tokens (same arithmetic,
/// per token, as the row-major [`layer_norm`]).
fn layer_norm_fm(x: &[f32], d: usize, np: usize, g: &[f32], b: &[f32], out: &mut Vec<f32>) {
    out.clear();
    out.resize(d * np, 0.0);
    let df = d as f32;
    for t in (0..np).step_by(LANES) {
        let mut mean: Block = [0.0; LANES];
        for j in 0..d {
            let xv = block(x, j * np + t);
            for l in 0..LANES {
                mean[l] += xv[l];
            }
        }
        for m in &mut mean {
            *m /= df;
        }
        let mut var: Block = [0.0; LANES];
        for j in 0..d {
            let xv = block(x, j * np + t);
            for l in 0..LANES {
                let c = xv[l] - mean[l];
                var[l] += c * c;
            }
        }
        let mut inv: Block = [0.0; LANES];
        for l in 0..LANES {
            inv[l] = 1.0 / (var[l] / df + 1e-5).sqrt();
        }
        for j in 0..d {
            let xv = block(x, j * np + t);
            let o = &mut out[j * np + t..j * np + t + LANES];
            for l in 0..LANES {
                o[l] = (xv[l] - mean[l]) * inv[l] * g[j] + b[j];
            }
        }
    }
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
        let h = shape.ffn;
        let w_in_t = transpose(&map["in.w"].1, TASK_FEATS, d);
        let a2q_t = transpose(&map["a2.q"].1, d, d);
        let ff1_t = transpose(&map["ff1.w"].1, d, h);
        let ff2_t = transpose(&map["ff2.w"].1, h, d);
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
            w_in_t,
            a2q_t,
            ff1_t,
            ff2_t,
        })
    }

    /// The model's shape.
    pub fn shape(&self) -> &LmShape {
        &self.shape
    }

    /// Pointer logits (higher = start sooner) for every token of `enc`,
    /// written to `out` (cleared first). Allocates nothing once `s` and
    /// `out` have grown to the queue size.
    ///
    /// Token-wise steps run feature-major over blocks of [`LANES`] tokens
    /// (vectorised); every per-token sum keeps the order of the row-major
    /// reference ([`Self::scores_reference`]), so both give the same logits.
    pub fn scores(&self, enc: &Encoded, s: &mut Scratch, out: &mut Vec<f32>) {
        let (d, l, h, n) = (self.shape.d, self.shape.latents, self.shape.ffn, enc.n);
        out.clear();
        if n == 0 {
            return;
        }
        let np = n.div_ceil(LANES) * LANES;
        // Task features, feature-major; padding tokens are zeros.
        s.tt.clear();
        s.tt.resize(TASK_FEATS * np, 0.0);
        for (i, row) in enc.task.chunks_exact(TASK_FEATS).take(n).enumerate() {
            for (f, v) in row.iter().enumerate() {
                s.tt[f * np + i] = *v;
            }
        }
        // Token embeddings: X = T·W_in + b, c = C·W_cl + b.
        linear_fm(
            &s.tt,
            TASK_FEATS,
            &self.w_in_t,
            Some(&self.b_in),
            d,
            np,
            false,
            &mut s.x,
        );
        matmul(&enc.cluster, &self.w_cl, 1, CLUSTER_FEATS, d, &mut s.c);
        for j in 0..d {
            s.c[j] += self.b_cl[j];
        }
        // (a) latents attend over [c; X]: H = lat + softmax(q1k·[c;X]ᵀ)·[c;X]·(Wv1·Wo1).
        linear_fm(&s.x, d, &self.q1k, None, l, np, false, &mut s.tmp);
        s.att.clear();
        s.att.resize(l * (n + 1), 0.0);
        s.attc.clear();
        for li in 0..l {
            let a = &mut s.att[li * (n + 1)..(li + 1) * (n + 1)];
            a[0] = dot(&self.q1k[li * d..(li + 1) * d], &s.c);
            a[1..].copy_from_slice(&s.tmp[li * np..li * np + n]);
            softmax_in_place(a);
            s.attc.push(a[0]);
        }
        // row[li][j] = att0·c[j] + Σ_i att[i+1]·X[i][j], summed over i in order.
        s.row.clear();
        s.row.resize(l * d, 0.0);
        for li in 0..l {
            let a0 = s.attc[li];
            for (r, cv) in s.row[li * d..(li + 1) * d].iter_mut().zip(&s.c) {
                *r += a0 * cv;
            }
        }
        // Row-major copy of X so each token's term is one contiguous axpy.
        s.xr.clear();
        s.xr.resize(n * d, 0.0);
        for j in 0..d {
            for (i, v) in s.x[j * np..j * np + n].iter().enumerate() {
                s.xr[i * d + j] = *v;
            }
        }
        for (i, xi) in s.xr.chunks_exact(d).enumerate() {
            for li in 0..l {
                let a = s.att[li * (n + 1) + i + 1];
                axpy(a, xi, &mut s.row[li * d..(li + 1) * d]);
            }
        }
        s.h.clear();
        s.h.extend_from_slice(&self.lat);
        for li in 0..l {
            matmul(&s.row[li * d..(li + 1) * d], &self.vo1, 1, d, d, &mut s.hid);
            for j in 0..d {
                s.h[li * d + j] += s.hid[j];
            }
        }
        // (b) tasks attend over [c; H]: X += softmax(X·Wq2·K2ᵀ/√d)·(V2·Wo2).
        s.hc.clear();
        s.hc.extend_from_slice(&s.c);
        s.hc.extend_from_slice(&s.h);
        let m = l + 1;
        matmul(&s.hc, &self.a2k, m, d, d, &mut s.k2);
        let scale = (d as f32).sqrt();
        s.k2.iter_mut().for_each(|v| *v /= scale);
        // m2t[k][j] = Σ_e K2[k][e]/√d · Wq2[j][e]
        matmul(&s.k2, &self.a2q_t, m, d, d, &mut s.m2t);
        matmul(&s.hc, &self.a2v, m, d, d, &mut s.v2);
        matmul(&s.v2, &self.a2o, m, d, d, &mut s.vo2); // m × d
        linear_fm(&s.x, d, &s.m2t, None, m, np, false, &mut s.s2); // m × np scores
        for t in (0..np).step_by(LANES) {
            let mut mx: Block = [f32::NEG_INFINITY; LANES];
            for k in 0..m {
                let v = block(&s.s2, k * np + t);
                for ln in 0..LANES {
                    mx[ln] = mx[ln].max(v[ln]);
                }
            }
            let mut sum: Block = [0.0; LANES];
            for k in 0..m {
                let e = &mut s.s2[k * np + t..k * np + t + LANES];
                for ln in 0..LANES {
                    e[ln] = (e[ln] - mx[ln]).exp();
                    sum[ln] += e[ln];
                }
            }
            for k in 0..m {
                let e = &mut s.s2[k * np + t..k * np + t + LANES];
                for ln in 0..LANES {
                    e[ln] /= sum[ln];
                }
            }
        }
        for k in 0..m {
            let a = &s.s2[k * np..(k + 1) * np];
            for j in 0..d {
                let v = s.vo2[k * d + j];
                for (xv, av) in s.x[j * np..(j + 1) * np].iter_mut().zip(a) {
                    *xv += av * v;
                }
            }
        }
        // (c) X += relu(LN1(X)·W1 + b1)·W2 + b2; logits = LN2(X)·w_out + b + T·w_skip.
        layer_norm_fm(&s.x, d, np, &self.ln1_g, &self.ln1_b, &mut s.ln);
        linear_fm(
            &s.ln,
            d,
            &self.ff1_t,
            Some(&self.ff1_b),
            h,
            np,
            true,
            &mut s.hid,
        );
        linear_fm(
            &s.hid,
            h,
            &self.ff2_t,
            Some(&self.ff2_b),
            d,
            np,
            false,
            &mut s.tmp,
        );
        for (xv, t) in s.x.iter_mut().zip(&s.tmp) {
            *xv += t;
        }
        layer_norm_fm(&s.x, d, np, &self.ln2_g, &self.ln2_b, &mut s.ln);
        for t in (0..n).step_by(LANES) {
            let mut acc: Block = [0.0; LANES];
            for j in 0..d {
                let v = block(&s.ln, j * np + t);
                let w = self.out_w[j];
                for ln in 0..LANES {
                    acc[ln] += v[ln] * w;
                }
            }
            let mut skip: Block = [0.0; LANES];
            for f in 0..TASK_FEATS {
                let v = block(&s.tt, f * np + t);
                let w = self.skip_w[f];
                for ln in 0..LANES {
                    skip[ln] += v[ln] * w;
                }
            }
            for ln in 0..LANES.min(n - t) {
                out.push(acc[ln] + self.out_b + skip[ln]);
            }
        }
    }
    /// The same logits as [`Self::scores`], computed row-major token by
    /// token (the straightforward form of the network, slower). Kept as the
    /// reference the fast path is tested against.
    pub fn scores_reference(&self, enc: &Encoded, s: &mut Scratch, out: &mut Vec<f32>) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lm::{Encoder, LmShape, SchedLm};
    use llmchain_core::{
        Dur, NodeId, NodeState, Resources, RunningTask, Snapshot, TaskId, Time, WaitingTask,
    };
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// A random but realistic decision point: `n` waiting tasks, some running.
    fn snapshot_parts(n: usize, seed: u64) -> (Vec<NodeState>, Vec<WaitingTask>, Vec<RunningTask>) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let nodes = vec![NodeState {
            id: NodeId(0),
            capacity: Resources::cpus(256, 0),
            free: Resources::cpus(rng.gen_range(0..64), 0),
        }];
        let waiting = (0..n as u64)
            .map(|i| WaitingTask {
                id: TaskId(100 + i),
                submit: Time::from_secs(rng.gen_range(0..8000)),
                request: Resources::cpus(rng.gen_range(1..=128), 0),
                estimate: rng
                    .gen_bool(0.9)
                    .then(|| Dur::from_secs(rng.gen_range(10..50_000))),
                user: 0,
                priority: 0,
            })
            .collect();
        let running = (0..rng.gen_range(0..30u64))
            .map(|i| RunningTask {
                id: TaskId(i),
                node: NodeId(0),
                request: Resources::cpus(rng.gen_range(1..16), 0),
                start: Time::from_secs(i),
                expected_end: Some(Time::from_secs(8000 + rng.gen_range(0..20_000))),
                user: 0,
            })
            .collect();
        (nodes, waiting, running)
    }

    fn greedy_order(lg: &[f32]) -> Vec<usize> {
        let mut o: Vec<usize> = (0..lg.len()).collect();
        o.sort_by(|a, b| lg[*b].total_cmp(&lg[*a]).then(a.cmp(b)));
        o
    }

    #[test]
    fn optimised_scores_equal_the_reference_for_the_shipped_model() {
        let m = SchedLm::embedded().unwrap();
        let w = m.weights();
        let (mut s, mut r) = (Scratch::default(), Scratch::default());
        let (mut fast, mut slow) = (Vec::new(), Vec::new());
        let mut enc = Encoder::new(true);
        let mut e = Encoded::default();
        // Queue lengths around the block size, and the full 128 (plus more,
        // which the encoder caps at max_queue).
        for (case, n) in [1usize, 2, 7, 8, 9, 31, 64, 100, 128, 200]
            .into_iter()
            .enumerate()
        {
            let (nodes, waiting, running) = snapshot_parts(n, case as u64);
            let snap = Snapshot::new(Time::from_secs(8000), &nodes, &waiting, &running);
            enc.encode(&snap, w.shape().max_queue, &mut e);
            // Reuse the scratch space across sizes, as a policy does.
            w.scores(&e, &mut s, &mut fast);
            w.scores_reference(&e, &mut r, &mut slow);
            assert_eq!(fast.len(), n.min(128));
            for (i, (a, b)) in fast.iter().zip(&slow).enumerate() {
                assert!(
                    (a - b).abs() <= 1e-5 * b.abs().max(1.0),
                    "queue {n}, token {i}: {a} vs {b}"
                );
            }
            assert_eq!(fast, slow, "queue {n}: same arithmetic, same bits");
            assert_eq!(greedy_order(&fast), greedy_order(&slow), "queue {n}");
        }
    }

    #[test]
    fn optimised_scores_equal_the_reference_for_other_shapes() {
        for (d, l, h) in [(8, 2, 12), (5, 3, 7), (16, 1, 9)] {
            let shape = LmShape {
                d,
                latents: l,
                ffn: h,
                max_queue: 64,
            };
            let mut rng = ChaCha8Rng::seed_from_u64(d as u64);
            let map: WeightMap = shape
                .tensors()
                .into_iter()
                .map(|(name, dims)| {
                    let len = dims.iter().product();
                    let v = (0..len).map(|_| rng.gen_range(-1.0f32..1.0)).collect();
                    (name, (dims, v))
                })
                .collect();
            let w = LmWeights::from_map(shape, &map).unwrap();
            for n in [3usize, 16, 45] {
                let task = (0..n * TASK_FEATS).map(|_| rng.gen::<f32>()).collect();
                let mut cluster = [0f32; CLUSTER_FEATS];
                cluster.iter_mut().for_each(|v| *v = rng.gen());
                let enc = Encoded {
                    n,
                    idx: (0..n).collect(),
                    task,
                    cluster,
                    fits: vec![true; n],
                };
                let (mut a, mut b) = (Vec::new(), Vec::new());
                w.scores(&enc, &mut Scratch::default(), &mut a);
                w.scores_reference(&enc, &mut Scratch::default(), &mut b);
                assert_eq!(a, b, "d={d} l={l} h={h} n={n}");
            }
        }
    }
}
