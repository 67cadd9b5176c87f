//! PIL's antialiased bilinear filter as fixed-point taps: what each output pixel of one axis
//! reads and with which 22-bit weights (`ImagingResample`'s coefficients, the same rounding).

pub(super) const PRECISION_BITS: u32 = 32 - 8 - 2;

/// Filter taps of one axis: for each output position, its first input index and weights.
pub(super) struct Taps {
    pub bounds: Vec<(usize, usize)>,
    pub ksize: usize,
    pub coeffs: Vec<i32>,
}

fn bilinear(x: f64) -> f64 {
    let x = x.abs();
    if x < 1.0 {
        1.0 - x
    } else {
        0.0
    }
}

/// The taps that map input positions `span.0..span.1` (fractional, as PIL's resize `box`)
/// onto `out_size` outputs; the filter may reach outside the span but not outside the input.
pub(super) fn taps(in_size: usize, span: (f64, f64), out_size: usize) -> Taps {
    let scale = (span.1 - span.0) / out_size as f64;
    let filterscale = scale.max(1.0);
    let support = filterscale;
    let ksize = support.ceil() as usize * 2 + 1;
    let mut bounds = Vec::with_capacity(out_size);
    let mut coeffs = vec![0i32; out_size * ksize];
    let mut k = vec![0f64; ksize];
    for xx in 0..out_size {
        let center = span.0 + (xx as f64 + 0.5) * scale;
        let ss = 1.0 / filterscale;
        // C's truncating casts, as in PIL.
        let xmin = ((center - support + 0.5) as i64).max(0) as usize;
        let xmax = ((center + support + 0.5) as i64).min(in_size as i64) as usize - xmin;
        let mut ww = 0.0;
        for (x, kx) in k.iter_mut().enumerate().take(xmax) {
            let w = bilinear((x as f64 + xmin as f64 - center + 0.5) * ss);
            *kx = w;
            ww += w;
        }
        for (x, &kx) in k.iter().enumerate().take(xmax) {
            let w = if ww != 0.0 { kx / ww } else { kx };
            let fixed = w * (1u32 << PRECISION_BITS) as f64;
            coeffs[xx * ksize + x] = if w < 0.0 {
                (fixed - 0.5) as i32
            } else {
                (fixed + 0.5) as i32
            };
        }
        bounds.push((xmin, xmax));
    }
    Taps {
        bounds,
        ksize,
        coeffs,
    }
}
