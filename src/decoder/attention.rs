//! Multi-head attention on packed `nn.MultiheadAttention` weights, batch-first.
//!
//! Self-attention uses libtorch's fused `scaled_dot_product_attention`. Label-to-image
//! cross-attention is reassociated (exact up to rounding): with K label queries and
//! far more image tokens, projecting the few queries through the key weights and
//! multiplying the attention by the raw memory before the value weights costs
//! `K * heads * tokens * d` instead of `tokens * d^2` per projection.

use tch::{Kind, Tensor};

use super::dropout::dropout;
use crate::error::Result;

/// The weights of one `nn.MultiheadAttention`.
pub struct MhaWeights<'a> {
    /// `[3d, d]`: query, key and value projections stacked.
    pub in_w: &'a Tensor,
    /// `[3d]`.
    pub in_b: &'a Tensor,
    /// `[d, d]`.
    pub out_w: &'a Tensor,
    /// `[d]`.
    pub out_b: &'a Tensor,
}

/// Splits packed projection weights (or biases) along dim 0 into pieces of `sizes`.
///
/// One split rather than several `narrow`s: the backward of a split is one `cat`, while
/// each `narrow` would allocate and zero a gradient as large as the whole packed weight.
fn split(t: &Tensor, sizes: &[i64]) -> Result<Vec<Tensor>> {
    Ok(t.f_split_with_sizes(sizes, 0)?)
}

/// `x @ w^T + b` on the last dimension.
pub fn linear(x: &Tensor, w: &Tensor, b: Option<&Tensor>) -> Result<Tensor> {
    Ok(x.f_linear(w, b)?)
}

/// Self-attention of `x` [B, L, d] with queries and keys from `qk_in` (x + pos).
pub fn self_attention(
    qk_in: &Tensor,
    v_in: &Tensor,
    w: &MhaWeights,
    heads: i64,
    dropout: f64,
    train: bool,
) -> Result<Tensor> {
    let d = v_in.size()[2];
    let ws = split(w.in_w, &[2 * d, d])?;
    let bs = split(w.in_b, &[2 * d, d])?;
    let qk = linear(qk_in, &ws[0], Some(&bs[0]))?.f_split_with_sizes([d, d], 2)?;
    let v = linear(v_in, &ws[1], Some(&bs[1]))?;
    fused_attention(&qk[0], &qk[1], &v, w, heads, dropout, train)
}

/// libtorch's fused attention on projected queries `q` [Bq, L, d] (Bq = 1 broadcasts) and
/// keys and values [B, T, d], split into `heads`, then the output projection: [B, L, d].
fn fused_attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    w: &MhaWeights,
    heads: i64,
    dropout: f64,
    train: bool,
) -> Result<Tensor> {
    let (qs, vs) = (q.size(), v.size());
    let (b, l, d) = (vs[0], qs[1], vs[2]);
    let heads_first = |x: &Tensor| -> Result<Tensor> {
        let s = x.size();
        Ok(x.f_view([s[0], s[1], heads, d / heads])?
            .f_transpose(1, 2)?)
    };
    let q = heads_first(q)?.f_expand([b, heads, l, d / heads], false)?;
    let p = if train { dropout } else { 0.0 };
    let o = Tensor::f_scaled_dot_product_attention(
        &q,
        &heads_first(k)?,
        &heads_first(v)?,
        None::<Tensor>,
        p,
        false,
        None,
        false,
    )?;
    let o = o.f_transpose(1, 2)?.f_reshape([b, l, d])?;
    linear(&o, w.out_w, Some(w.out_b))
}

/// Cross-attention of label queries `query` [Bq, K, d] (Bq = 1 or B) over image tokens:
/// keys from `key_in` [B, T, d] (memory + pos), values from `memory` [B, T, d].
///
/// Returns the output [B, K, d] and, when asked, the head-averaged attention (before
/// dropout) [B, K, T]. With few queries for the width ([`reassociation_pays`]), or maps asked
/// for, the keys' projection is reassociated into the queries (`(q W_k) k^T`, never
/// projecting the memory); otherwise keys and values are projected and libtorch's fused
/// attention runs.
#[allow(clippy::too_many_arguments)]
pub fn cross_attention(
    query: &Tensor,
    key_in: &Tensor,
    memory: &Tensor,
    w: &MhaWeights,
    heads: i64,
    dropout: f64,
    train: bool,
    want_weights: bool,
) -> Result<(Tensor, Option<Tensor>)> {
    let qs = query.size();
    let (bq, k, d) = (qs[0], qs[1], qs[2]);
    let ws = split(w.in_w, &[d, d, d])?;
    let bs = split(w.in_b, &[d, d, d])?;
    if !want_weights && !reassociation_pays(k, heads, d) {
        // The usual way: keys and values projected, then libtorch's fused attention.
        let q = linear(query, &ws[0], Some(&bs[0]))?;
        let keys = linear(key_in, &ws[1], Some(&bs[1]))?;
        let values = linear(memory, &ws[2], Some(&bs[2]))?;
        let out = fused_attention(&q, &keys, &values, w, heads, dropout, train)?;
        return Ok((out, None));
    }
    let ms = memory.size();
    let (b, t) = (ms[0], ms[1]);
    let dh = d / heads;
    let scale = 1.0 / (dh as f64).sqrt();
    // The key bias adds q.b_k to every score of a query: softmax ignores it.
    let q = linear(query, &ws[0], Some(&bs[0]))?.f_mul_scalar(scale)?;
    let q = q.f_view([bq * k, heads, dh])?.f_transpose(0, 1)?; // [H, Bq*K, dh]
    let wk = ws[1].f_view([heads, dh, d])?;
    let qt = q.f_bmm(&wk)?; // [H, Bq*K, d]
    let qt = qt
        .f_view([heads, bq, k, d])?
        .f_permute([1, 0, 2, 3])?
        .f_reshape([bq, heads * k, d])?;
    let scores = qt.f_matmul(&key_in.f_transpose(1, 2)?)?; // [B, H*K, T]
    let p = scores.f_softmax(-1, None::<Kind>)?;
    let weights = if want_weights {
        Some(
            p.f_view([b, heads, k, t])?
                .f_mean_dim(1, false, None::<Kind>)?,
        )
    } else {
        None
    };
    let dropped = if train && dropout > 0.0 {
        self::dropout(&p, dropout, true)?
    } else {
        p.shallow_clone()
    };
    let o1 = dropped.f_matmul(memory)?; // [B, H*K, d]
    let o1 = o1
        .f_view([b, heads, k, d])?
        .f_transpose(0, 1)?
        .f_reshape([heads, b * k, d])?;
    let wv = ws[2].f_view([heads, dh, d])?;
    let o = o1.f_bmm(&wv.f_transpose(1, 2)?)?; // [H, B*K, dh]
    let bv = bs[2].f_view([heads, 1, dh])?;
    // Rows of the attention sum to 1, so the value bias passes through unchanged unless
    // dropout rescaled them; then it is weighted by each row's sum.
    let o = if train && dropout > 0.0 {
        let sums = dropped.f_sum_dim_intlist(-1, true, None::<Kind>)?; // [B, H*K, 1]
        let sums = sums
            .f_view([b, heads, k, 1])?
            .f_transpose(0, 1)?
            .f_reshape([heads, b * k, 1])?;
        o.f_add(&sums.f_mul(&bv)?)?
    } else {
        o.f_add(&bv)?
    };
    let o = o
        .f_view([heads, b, k, dh])?
        .f_permute([1, 2, 0, 3])?
        .f_reshape([b, k, d])?;
    Ok((linear(&o, w.out_w, Some(w.out_b))?, weights))
}

/// Whether [`cross_attention`]'s reassociation is faster than projecting the memory. It
/// does `2 * heads * K * T * d` multiply-adds against about `2 * T * d^2`, but as batched
/// matmuls that run at about half the throughput of the projections' one large matmul
/// (measured on ML-Decoder, K = 80, 8 heads, d = 768: reassociated 10-15% slower); hence
/// the factor 2.
fn reassociation_pays(queries: i64, heads: i64, d: i64) -> bool {
    2 * heads * queries <= d
}
