//! The 2-D sine positional encoding of DETR, as Query2Label normalises it.

use tch::{Device, Kind, Tensor};

use crate::error::Result;

/// Sine positional encoding for an `h` x `w` feature map: `[h * w, d]`, row-major tokens.
///
/// Coordinates are the cumulative positions 1..=n normalised to (0, 2 pi] (divided by
/// `n + 1e-6`); each axis gets `d / 2` features `sin(c / T^(2i/(d/2)))`,
/// `cos(c / T^(2i/(d/2)))` interleaved; `y` features come first, then `x`. Computed for
/// the actual size, so one model runs at any resolution.
pub fn sine_encoding(
    h: i64,
    w: i64,
    d: i64,
    temperature: f64,
    kind: Kind,
    device: Device,
) -> Result<Tensor> {
    let f = d / 2;
    let opts = (Kind::Double, Device::Cpu);
    let axis = |n: i64| -> Result<Tensor> {
        let c = Tensor::f_arange_start(1, n + 1, opts)?;
        Ok(c.f_div_scalar(n as f64 + 1e-6)?
            .f_mul_scalar(2.0 * std::f64::consts::PI)?)
    };
    let idx = Tensor::f_arange(f, opts)?;
    let pairs = idx.f_floor_divide_scalar(2)?.f_mul_scalar(2.0 / f as f64)?;
    let dim_t = Tensor::f_full([f], temperature, opts)?.f_pow(&pairs)?;
    let features = |c: &Tensor| -> Result<Tensor> {
        // [n, f]: even features sin, odd features cos.
        let a = c.f_unsqueeze(1)?.f_div(&dim_t.f_unsqueeze(0)?)?;
        let even = idx.f_remainder(2)?.f_eq(0)?;
        Ok(a.f_sin()?.f_where_self(&even, &a.f_cos()?)?)
    };
    let y = features(&axis(h)?)?; // [h, f]
    let x = features(&axis(w)?)?; // [w, f]
    let y = y.f_unsqueeze(1)?.f_expand([h, w, f], false)?;
    let x = x.f_unsqueeze(0)?.f_expand([h, w, f], false)?;
    let pe = Tensor::f_cat(&[y, x], 2)?.f_reshape([h * w, 2 * f])?;
    // Built in float64 and rounded once to the model's dtype.
    Ok(pe.f_to_kind(kind)?.f_to_device(device)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closed_form_on_a_small_map() {
        // d = 8: 4 features per axis with dim_t = [1, 1, T^(1/2), T^(1/2)]; row-major tokens,
        // y features first. Coordinates are 1..=n scaled to (0, 2 pi].
        let (h, w, t) = (2i64, 3i64, 10000.0f64);
        let pe = sine_encoding(h, w, 8, t, Kind::Double, Device::Cpu).unwrap();
        assert_eq!(pe.size(), vec![h * w, 8]);
        let coord =
            |i: i64, n: i64| (i + 1) as f64 / (n as f64 + 1e-6) * 2.0 * std::f64::consts::PI;
        let feats = |c: f64| [c.sin(), c.cos(), (c / t.sqrt()).sin(), (c / t.sqrt()).cos()];
        for y in 0..h {
            for x in 0..w {
                let want: Vec<f64> = feats(coord(y, h))
                    .into_iter()
                    .chain(feats(coord(x, w)))
                    .collect();
                for (j, v) in want.iter().enumerate() {
                    let got = pe.double_value(&[y * w + x, j as i64]);
                    assert!(
                        (got - v).abs() < 1e-12,
                        "token ({y}, {x}) feature {j}: {got} vs {v}"
                    );
                }
            }
        }
    }
}
