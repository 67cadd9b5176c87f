//! The single-label asymmetric loss as libtorch ops with the analytic gradient.

use tch::{Kind, Tensor};

use crate::error::Result;

use super::common::{nan_error, tensor_loss};
use super::options::{Reduction, SingleLabelOptions};
use super::{mean_factor, LossOutput};

/// The loss and, with `need_grad`, its gradient.
pub(super) fn run(
    logits: &Tensor,
    targets: &Tensor,
    opts: &SingleLabelOptions,
    need_grad: bool,
    compute: Kind,
) -> Result<LossOutput> {
    tch::no_grad(|| {
        let x = logits.f_detach()?.f_to_kind(compute)?;
        if opts.validate {
            let nan = x.f_isnan()?.f_sum(Kind::Int64)?.f_int64_value(&[])?;
            if nan > 0 {
                return Err(nan_error(&x, nan as u64)?);
            }
        }
        let classes = x.size()[1];
        let valid = targets.f_ne(opts.ignore_index)?;
        let t = targets.f_where_scalarother(&valid, 0)?.f_unsqueeze(1)?;
        let validf = valid.f_to_kind(compute)?;
        let factor = match opts.reduction {
            Reduction::Mean => mean_factor(&validf.f_sum(compute)?, opts.scale, compute)?,
            _ => Tensor::f_scalar_tensor(opts.scale, (compute, x.device()))?,
        };
        let logp = x.f_log_softmax(1, compute)?;
        let p = logp.f_exp()?;
        let onehot = x.f_zeros_like()?.f_scatter_value(1, &t, 1.0)?;
        let is_t = onehot.f_gt(0.5)?;
        let s = opts.eps;
        let smooth = onehot
            .f_mul_scalar(1.0 - s)?
            .f_add_scalar(s / classes as f64)?;
        // Target column: w_t = (1 - p_t)^gamma_pos, with 1 - p_t = -expm1(lp_t).
        let lp_t = logp.f_gather(1, &t, false)?;
        let p_t = lp_t.f_exp()?;
        let omp = lp_t.f_expm1()?.f_neg()?;
        let w_t = omp.f_pow_tensor_scalar(opts.gamma_pos)?;
        let positive = omp.f_gt(0.0)?;
        let ratio = lp_t
            .f_div(&omp.f_where_scalarother(&positive, 1.0)?)?
            .f_mul(&positive)?;
        let c_lp_t = p_t
            .f_mul(&w_t)?
            .f_mul(&ratio)?
            .f_mul_scalar(-opts.gamma_pos)?;
        // Other columns: w_j = p_j^gamma_neg = exp(gamma_neg * lp_j).
        let w_o = logp.f_mul_scalar(opts.gamma_neg)?.f_exp()?;
        let c_lp_o = w_o.f_mul(&logp)?.f_mul_scalar(opts.gamma_neg)?;
        let w = w_t.f_expand_as(&w_o)?.f_where_self(&is_t, &w_o)?;
        let c_lp = c_lp_t.f_expand_as(&c_lp_o)?.f_where_self(&is_t, &c_lp_o)?;
        let row_loss = smooth
            .f_mul(&w)?
            .f_mul(&logp)?
            .f_sum_dim_intlist(1, false, compute)?
            .f_neg()?
            .f_mul(&validf)?;
        let grad = if need_grad {
            let g = smooth.f_mul(&c_lp.f_add(&w)?)?;
            let gsum = g.f_sum_dim_intlist(1, true, compute)?;
            let grad = p
                .f_mul(&gsum)?
                .f_sub(&g)?
                .f_mul(&validf.f_unsqueeze(1)?)?
                .f_mul(&factor)?;
            Some(grad.f_to_kind(logits.f_kind()?)?)
        } else {
            None
        };
        let loss = tensor_loss(&row_loss, opts.reduction, opts.scale, &factor, compute)?;
        Ok(LossOutput { loss, grad })
    })
}
