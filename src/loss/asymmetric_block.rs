//! What the asymmetric loss's scalar and vector kernels share: the block of elements they
//! work on, the options in the compute type, and the focusing exponents.

use crate::math::Real;

use super::options::AslOptions;

/// Elements per block: the scratch arrays' length.
pub(super) const BLOCK: usize = 256;

/// A focusing exponent, with the common integer cases computed by multiplication.
#[derive(Clone, Copy)]
pub(super) enum Pow<R> {
    Zero,
    One,
    Two,
    Three,
    Four,
    Real(R),
}

impl<R: Real> Pow<R> {
    pub(super) fn new(g: f64) -> Self {
        match g {
            0.0 => Pow::Zero,
            1.0 => Pow::One,
            2.0 => Pow::Two,
            3.0 => Pow::Three,
            4.0 => Pow::Four,
            _ => Pow::Real(R::from_f64(g)),
        }
    }

    /// `out[i] = base[i] ^ gamma`, with `log_base[i] = ln(base[i])`.
    #[inline(always)]
    pub(super) fn apply(self, base: &[R], log_base: &[R], out: &mut [R]) {
        match self {
            Pow::Zero => out.fill(R::ONE),
            Pow::One => out.copy_from_slice(base),
            Pow::Two => out.iter_mut().zip(base).for_each(|(o, &b)| *o = b * b),
            Pow::Three => out.iter_mut().zip(base).for_each(|(o, &b)| *o = b * b * b),
            Pow::Four => out
                .iter_mut()
                .zip(base)
                .for_each(|(o, &b)| *o = (b * b) * (b * b)),
            Pow::Real(g) => {
                for ((o, &b), &lb) in out.iter_mut().zip(base).zip(log_base) {
                    *o = if b > R::ZERO { (g * lb).exp() } else { R::ZERO };
                }
            }
        }
    }

    /// Whether the exponent is one of the integers computed by multiplication.
    pub(super) fn integer(self) -> bool {
        !matches!(self, Pow::Real(_))
    }

    /// The exponent if it is one of the integers computed by multiplication.
    pub(super) fn integer_value(self) -> Option<u8> {
        match self {
            Pow::Zero => Some(0),
            Pow::One => Some(1),
            Pow::Two => Some(2),
            Pow::Three => Some(3),
            Pow::Four => Some(4),
            Pow::Real(_) => None,
        }
    }

    /// `out[i] = base[i] ^ (gamma - 1)` (0 for gamma 0), given `pow[i] = base[i] ^ gamma`:
    /// the derivative's factor, by multiplication rather than a division for integer gammas.
    #[inline(always)]
    pub(super) fn apply_lower(self, base: &[R], pow: &[R], out: &mut [R]) {
        match self {
            Pow::Zero => out.fill(R::ZERO),
            Pow::One => out.fill(R::ONE),
            Pow::Two => out.copy_from_slice(base),
            Pow::Three => out.iter_mut().zip(base).for_each(|(o, &b)| *o = b * b),
            Pow::Four => out.iter_mut().zip(base).for_each(|(o, &b)| *o = b * b * b),
            Pow::Real(_) => {
                for ((o, &b), &w) in out.iter_mut().zip(base).zip(pow) {
                    *o = if b > R::ZERO { w / b } else { R::ZERO };
                }
            }
        }
    }
}

/// The options in the compute type, and the choices they fix for the whole pass.
pub(super) struct Consts<R> {
    pub(super) gp: Pow<R>,
    pub(super) gn: Pow<R>,
    pub(super) gp_value: R,
    pub(super) gn_value: R,
    pub(super) clip: R,
    pub(super) eps: R,
    pub(super) log_eps: R,
    /// 1 when the gradient flows through the focal weight, else 0.
    pub(super) focal: R,
    /// Multiplies every gradient element: the reduction factor times the loss scale.
    pub(super) grad_factor: R,
    /// Both exponents are integers and `eps` is a normal number: hard targets then take
    /// [`hard_targets_one_log`].
    pub(super) one_log: bool,
}

impl<R: Real> Consts<R> {
    pub(super) fn new(o: &AslOptions, grad_factor: f64) -> Self {
        Consts {
            gp: Pow::new(o.gamma_pos),
            gn: Pow::new(o.gamma_neg),
            gp_value: R::from_f64(o.gamma_pos),
            gn_value: R::from_f64(o.gamma_neg),
            clip: R::from_f64(o.clip),
            eps: R::from_f64(o.eps),
            log_eps: R::from_f64(if o.eps > 0.0 {
                o.eps.ln()
            } else {
                f64::NEG_INFINITY
            }),
            focal: if o.disable_torch_grad_focal_loss {
                R::ZERO
            } else {
                R::ONE
            },
            grad_factor: R::from_f64(grad_factor),
            one_log: Pow::<R>::new(o.gamma_pos).integer()
                && Pow::<R>::new(o.gamma_neg).integer()
                && R::from_f64(o.eps) >= R::MIN_POSITIVE,
        }
    }
}

/// Stack arrays of one block, in the compute type.
pub(super) struct Scratch<R> {
    pub(super) x: [R; BLOCK],
    pub(super) y: [R; BLOCK],
    pub(super) w: [R; BLOCK],
    pub(super) p: [R; BLOCK],
    pub(super) sn: [R; BLOCK],
    pub(super) lsp: [R; BLOCK],
    pub(super) lsn: [R; BLOCK],
    pub(super) q: [R; BLOCK],
    pub(super) lq: [R; BLOCK],
    /// A negative's shifted probability before its clamp at 1.
    pub(super) pm: [R; BLOCK],
    pub(super) wp: [R; BLOCK],
    pub(super) wn: [R; BLOCK],
    pub(super) wn1: [R; BLOCK],
    pub(super) l: [R; BLOCK],
    pub(super) g: [R; BLOCK],
}

impl<R: Real> Scratch<R> {
    pub(super) fn new() -> Box<Self> {
        let z = [R::ZERO; BLOCK];
        Box::new(Scratch {
            x: z,
            y: z,
            w: [R::ONE; BLOCK],
            p: z,
            sn: z,
            lsp: z,
            lsn: z,
            q: z,
            lq: z,
            pm: z,
            wp: z,
            wn: z,
            wn1: z,
            l: z,
            g: z,
        })
    }
}
