//! The fused CPU kernel of the single-label (softmax) asymmetric loss.
//!
//! Per row, with log-probabilities `lp = log_softmax(x)`, focal weights
//! `w_j = p_j^gamma_neg` (j != target) and `w_t = (1 - p_t)^gamma_pos`, and smoothed
//! targets `s_j`, the loss is `-sum_j s_j w_j lp_j`. With `g_j = s_j (c_j lp_j + w_j)`,
//! where `c_j = dw_j/dlp_j`, the gradient is `p_k * sum_j g_j - g_k`.

use crate::math::Real;
use crate::parallel::{map_chunks, SendPtr};
use crate::simd;
use crate::tensor::{ComputeIo, FloatElement};

use super::options::SingleLabelOptions;

/// Elements per parallel task.
const CHUNK: usize = 32 * 1024;

/// What one pass counted.
#[derive(Clone, Copy, Debug, Default)]
pub struct Stats {
    /// Sum of the per-row losses.
    pub sum: f64,
    /// Number of NaN logits.
    pub nan_logits: u64,
}

impl Stats {
    fn add(mut self, o: Stats) -> Stats {
        self.sum += o.sum;
        self.nan_logits += o.nan_logits;
        self
    }
}

struct Row<R> {
    x: Vec<R>,
    e: Vec<R>,
    w: Vec<R>,
    g: Vec<R>,
}

/// Loss of one row; writes `g` (the gradient) into `r.g`.
#[inline(always)]
fn row<R: Real>(o: &SingleLabelOptions, r: &mut Row<R>, target: usize, grad_factor: R) -> f64 {
    let n = r.x.len();
    let mut m = r.x[0];
    for &v in &r.x[1..] {
        m = m.max(v);
    }
    let mut acc = [R::ZERO; 16];
    for (i, (e, &v)) in r.e.iter_mut().zip(&r.x).enumerate() {
        *e = (v - m).exp();
        acc[i % 16] += *e;
    }
    let mut total = R::ZERO;
    for a in acc {
        total += a;
    }
    let inv = R::ONE / total;
    let lse = m + total.ln();
    let gn = R::from_f64(o.gamma_neg);
    let s_other = R::from_f64(o.eps / n as f64);
    // f64 accumulators: rows can be 10^4 classes long.
    let mut loss = 0.0f64;
    let mut gsum = 0.0f64;
    // Non-target classes; the target's entry is overwritten below.
    if o.gamma_neg == 0.0 {
        for j in 0..n {
            let lp = r.x[j] - lse;
            r.w[j] = R::ONE;
            r.g[j] = s_other;
            loss += (s_other * lp).to_f64();
        }
    } else {
        for j in 0..n {
            let lp = r.x[j] - lse;
            let w = (gn * lp).exp();
            r.w[j] = w;
            r.g[j] = s_other * w * (gn * lp + R::ONE);
            loss += (s_other * w * lp).to_f64();
        }
    }
    // The target class, in f64: 1 - p_t needs expm1 to keep its precision.
    let lp_t = (r.x[target] - lse).to_f64();
    let p_t = lp_t.exp();
    let omp = -lp_t.exp_m1();
    let s_t = 1.0 - o.eps + o.eps / n as f64;
    let w_t = if o.gamma_pos == 0.0 {
        1.0
    } else {
        omp.powf(o.gamma_pos)
    };
    let c_lp = if omp > 0.0 && o.gamma_pos > 0.0 {
        -o.gamma_pos * p_t * w_t * (lp_t / omp)
    } else {
        0.0
    };
    let lp_j = r.x[target] - lse;
    loss += s_t * w_t * lp_t - (s_other * r.w[target] * lp_j).to_f64();
    r.g[target] = R::from_f64(s_t * (c_lp + w_t));
    for &g in &r.g {
        gsum += g.to_f64();
    }
    let gsum = R::from_f64(gsum);
    for j in 0..n {
        r.g[j] = (r.e[j] * inv * gsum - r.g[j]) * grad_factor;
    }
    -loss
}

/// Runs rows of `num_classes` logits against integer targets (one per row); gradients
/// are multiplied by `grad_factor`.
pub fn run<X: FloatElement>(
    opts: &SingleLabelOptions,
    x: &[X],
    targets: &[i64],
    num_classes: usize,
    grad_factor: f64,
    grad: Option<&mut [X]>,
    loss: Option<&mut [X::Compute]>,
) -> Stats {
    let rows = targets.len();
    let rows_per_chunk = (CHUNK / num_classes.max(1)).max(1);
    let chunks = rows.div_ceil(rows_per_chunk);
    let grad_ptr = grad.map(|g| SendPtr(g.as_mut_ptr()));
    let loss_ptr = loss.map(|l| SendPtr(l.as_mut_ptr()));
    let parts = map_chunks(chunks, x.len() >= 2 * CHUNK, |k| {
        let r0 = k * rows_per_chunk;
        let r1 = (r0 + rows_per_chunk).min(rows);
        simd::dispatch(
            #[inline(always)]
            || {
                let factor = X::Compute::from_f64(grad_factor);
                let z = vec![X::Compute::ZERO; num_classes];
                let mut r = Row {
                    x: z.clone(),
                    e: z.clone(),
                    w: z.clone(),
                    g: z,
                };
                let mut stats = Stats::default();
                for i in r0..r1 {
                    let xs = &x[i * num_classes..(i + 1) * num_classes];
                    X::Compute::load(xs, &mut r.x);
                    stats.nan_logits += r.x.iter().filter(|v| v.is_nan()).count() as u64;
                    let t = targets[i];
                    let counted = t != opts.ignore_index;
                    let l = if counted {
                        row(opts, &mut r, t as usize, factor)
                    } else {
                        0.0
                    };
                    if !counted {
                        r.g.fill(X::Compute::ZERO);
                    }
                    stats.sum += l;
                    // SAFETY: rows are disjoint between chunks.
                    if let Some(p) = grad_ptr {
                        let g = unsafe { p.slice_mut(i * num_classes, num_classes) };
                        X::from_compute(&r.g, g);
                    }
                    if let Some(p) = loss_ptr {
                        // SAFETY: element `i` of the per-row losses, written by this chunk only.
                        let slot = unsafe { p.slice_mut(i, 1) };
                        slot[0] = X::Compute::from_f64(l);
                    }
                }
                stats
            },
        )
    });
    parts.into_iter().fold(Stats::default(), Stats::add)
}
