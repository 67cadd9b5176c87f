//! Dropout for the heads' training steps.
//!
//! On the CPU libtorch draws a dropout mask with `bernoulli_`, about 10 ns an element on
//! these machines: in a Query2Label or ML-Decoder training step at batch 8 that is a sixth
//! of the step. Here the keep mask comes from a counter-based generator (SplitMix64, one
//! stream per 4096-element chunk, in parallel) seeded by one draw from torch's default
//! generator, so `torch.manual_seed` still reproduces a run and the masks do not depend on
//! the thread count. Other devices keep libtorch's fused `native_dropout`.

use tch::{Device, Kind, Tensor};

use crate::data::rng::Rng;
use crate::error::Result;
use crate::parallel::{map_chunks, SendPtr};

const CHUNK: usize = 4096;

/// `x` with each element zeroed with probability `p` and the rest scaled by `1 / (1 - p)`,
/// in training mode; `x` itself otherwise. The backward keeps a one-byte mask.
pub fn dropout(x: &Tensor, p: f64, train: bool) -> Result<Tensor> {
    if !train || p == 0.0 {
        return Ok(x.shallow_clone());
    }
    if x.device() != Device::Cpu || p >= 1.0 {
        return Ok(x.f_native_dropout(p, true)?.0);
    }
    let dropped = drop_mask(&x.size(), p)?;
    Ok(x.f_masked_fill(&dropped, 0.0)?
        .f_mul_scalar(1.0 / (1.0 - p))?)
}

/// A boolean tensor of `shape`, each element true (dropped) with probability `p`, seeded
/// by one draw from torch's default generator.
fn drop_mask(shape: &[i64], p: f64) -> Result<Tensor> {
    let seed = Tensor::f_randint(i64::MAX, [1], (Kind::Int64, Device::Cpu))?.f_int64_value(&[0])?;
    seeded_mask(shape, p, seed as u64)
}

/// The drop mask of stream `seed`: the same for the same seed on any number of threads.
fn seeded_mask(shape: &[i64], p: f64, seed: u64) -> Result<Tensor> {
    let mask = Tensor::f_empty(shape, (Kind::Bool, Device::Cpu))?;
    let n = mask.numel();
    // Dropped when a uniform 32-bit draw falls below p * 2^32 (p exact to 2^-32).
    let threshold = (p * 4_294_967_296.0) as u64;
    let ptr = SendPtr(mask.data_ptr() as *mut bool);
    map_chunks(n.div_ceil(CHUNK), n > 4 * CHUNK, |c| {
        let start = c * CHUNK;
        let len = CHUNK.min(n - start);
        // SAFETY: `mask` is a fresh contiguous bool tensor of n elements; each chunk
        // writes its own disjoint range.
        let out = unsafe { ptr.slice_mut(start, len) };
        let mut rng = Rng::keyed(&[seed, c as u64]);
        for pair in out.chunks_mut(2) {
            let bits = rng.next_u64();
            for (i, v) in pair.iter_mut().enumerate() {
                *v = ((bits >> (32 * i)) & 0xffff_ffff) < threshold;
            }
        }
    });
    Ok(mask)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drops_at_the_rate_and_scales_the_rest() {
        tch::manual_seed(0);
        let x = Tensor::ones([1000, 100], (Kind::Float, Device::Cpu));
        let y = dropout(&x, 0.25, true).unwrap();
        let zeros = y.eq(0.0).sum(Kind::Float).double_value(&[]) / 1e5;
        assert!((zeros - 0.25).abs() < 0.01, "{zeros}");
        let kept = y.ne(0.0);
        let values = y.masked_select(&kept);
        assert!(values.allclose(
            &values.ones_like().g_mul_scalar(4.0 / 3.0),
            1e-6,
            1e-6,
            false
        ));
        assert!(dropout(&x, 0.25, false).unwrap().equal(&x));
        // The same seed, the same mask; another seed, another mask. (Seeding through
        // torch.manual_seed is tested from Python: Rust tests share torch's generator
        // across threads.)
        let a = seeded_mask(&[300, 77], 0.1, 5).unwrap();
        assert!(a.equal(&seeded_mask(&[300, 77], 0.1, 5).unwrap()));
        assert!(!a.equal(&seeded_mask(&[300, 77], 0.1, 6).unwrap()));
    }

    #[test]
    fn gradients_flow_through_kept_elements_only() {
        tch::manual_seed(1);
        let x = Tensor::randn([64, 33], (Kind::Double, Device::Cpu)).set_requires_grad(true);
        let y = dropout(&x, 0.5, true).unwrap();
        y.sum(Kind::Double).backward();
        let g = x.grad();
        let want = y.ne(0.0).to_kind(Kind::Double).g_mul_scalar(2.0);
        assert!(g.allclose(&want, 1e-12, 1e-12, false));
    }
}
