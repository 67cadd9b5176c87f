//! The 2-D arrays the core reads on the CPU (score and target matrices): `ndarray` views
//! with any strides, of a host tensor or (through the bindings) of a numpy array in place.

use half::{bf16, f16};
use ndarray::ArrayView2;
use tch::{Device, Kind, Tensor};

use crate::bail;
use crate::error::Result;
use crate::tensor::{as_slice, check_has_data, host_readable, kind_name, ternary_error, Element};

/// A read-only `[N, C]` view of one of the element types the metrics read.
#[derive(Clone, Copy, Debug)]
pub enum Matrix<'a> {
    Bool(ArrayView2<'a, bool>),
    U8(ArrayView2<'a, u8>),
    I8(ArrayView2<'a, i8>),
    I16(ArrayView2<'a, i16>),
    I32(ArrayView2<'a, i32>),
    I64(ArrayView2<'a, i64>),
    F16(ArrayView2<'a, f16>),
    BF16(ArrayView2<'a, bf16>),
    F32(ArrayView2<'a, f32>),
    F64(ArrayView2<'a, f64>),
}

/// One `match` arm per listed variant, binding `$v` to its view and `$t` to its element
/// type, then any further arms.
macro_rules! dispatch {
    ($m:expr, $v:ident: $t:ident => $body:expr; $($variant:ident $ty:ty),+; $($rest:tt)*) => {
        match $m {
            $( $crate::array::Matrix::$variant($v) => {
                type $t = $ty;
                $body
            } )+
            $($rest)*
        }
    };
}
pub(crate) use dispatch;

/// Calls `$body` with `$v` bound to the view of any [`Matrix`] and `$t` to its element type.
macro_rules! with_matrix {
    ($m:expr, $v:ident: $t:ident => $body:expr) => {
        $crate::array::dispatch!($m, $v: $t => $body;
            Bool bool, U8 u8, I8 i8, I16 i16, I32 i32, I64 i64,
            F16 half::f16, BF16 half::bf16, F32 f32, F64 f64;)
    };
}
pub(crate) use with_matrix;

/// As [`with_matrix`] for the floating variants; any other is an error naming `scores`.
macro_rules! with_scores {
    ($m:expr, $v:ident: $t:ident => $body:expr) => {
        $crate::array::dispatch!($m, $v: $t => $body;
            F16 half::f16, BF16 half::bf16, F32 f32, F64 f64;
            other => $crate::bail!(
                "scores must be floating point (float16, bfloat16, float32 or float64), got {}",
                other.dtype()
            ),
        )
    };
}
pub(crate) use with_scores;

impl<'a> Matrix<'a> {
    /// `[rows, cols]`.
    pub fn dim(&self) -> (usize, usize) {
        with_matrix!(self, v: _T => v.dim())
    }

    /// The element type's name, as numpy and torch print it without their prefix.
    pub fn dtype(&self) -> &'static str {
        match self {
            Matrix::Bool(_) => "bool",
            Matrix::U8(_) => "uint8",
            Matrix::I8(_) => "int8",
            Matrix::I16(_) => "int16",
            Matrix::I32(_) => "int32",
            Matrix::I64(_) => "int64",
            Matrix::F16(_) => "float16",
            Matrix::BF16(_) => "bfloat16",
            Matrix::F32(_) => "float32",
            Matrix::F64(_) => "float64",
        }
    }

    /// The view of a contiguous 2-D CPU tensor (see [`host`]).
    pub fn from_tensor(t: &'a Tensor, name: &str) -> Result<Self> {
        let s = t.size();
        if s.len() != 2 {
            bail!(
                "{name} must have shape [num_samples, num_classes], got {}",
                crate::tensor::shape_str(&s)
            );
        }
        if !host_readable(t) {
            bail!(
                "{name}: the metrics read tensors with storage, not the batched or wrapped \
                 tensors of torch.vmap and torch.func"
            );
        }
        if t.device() != Device::Cpu || !t.is_contiguous() {
            bail!("{name}: the metrics read contiguous CPU tensors (see `host`)");
        }
        let dim = (s[0] as usize, s[1] as usize);
        fn view<'a, E>(t: &'a Tensor, dim: (usize, usize)) -> Result<ArrayView2<'a, E>> {
            // SAFETY: a contiguous CPU tensor of element type `E` (matched on its kind
            // below), borrowed for as long as the view.
            let data = unsafe { as_slice::<E>(t) };
            ArrayView2::from_shape(dim, data).map_err(|e| crate::Error::value(e.to_string()))
        }
        Ok(match t.f_kind()? {
            Kind::Bool => Matrix::Bool(view(t, dim)?),
            Kind::Uint8 => Matrix::U8(view(t, dim)?),
            Kind::Int8 => Matrix::I8(view(t, dim)?),
            Kind::Int16 => Matrix::I16(view(t, dim)?),
            Kind::Int => Matrix::I32(view(t, dim)?),
            Kind::Int64 => Matrix::I64(view(t, dim)?),
            Kind::Half => Matrix::F16(view(t, dim)?),
            Kind::BFloat16 => Matrix::BF16(view(t, dim)?),
            Kind::Float => Matrix::F32(view(t, dim)?),
            Kind::Double => Matrix::F64(view(t, dim)?),
            k => bail!(
                "{name} must hold bools, integers or floats, got {}",
                kind_name(k)
            ),
        })
    }

    /// The index and value of the first element (in row-major order) for which `bad` holds.
    pub fn first(&self, bad: impl Fn(f64) -> bool) -> Option<([usize; 2], f64)> {
        with_matrix!(self, v: T => {
            let mut buf = Vec::new();
            v.rows().into_iter().enumerate().find_map(|(i, row)| {
                let row = row_slice::<T>(row, &mut buf);
                let mut vals = vec![0f64; row.len()];
                T::to_f64_slice(row, &mut vals);
                vals.iter().position(|&x| bad(x)).map(|j| ([i, j], vals[j]))
            })
        })
    }
}

impl Matrix<'_> {
    /// The matrix as row-major `i8`, or the error naming its first element outside
    /// {1, 0, -1}.
    pub fn ternary(&self) -> Result<Vec<i8>> {
        let (rows, cols) = self.dim();
        let mut out = Vec::new();
        out.try_reserve_exact(rows * cols)
            .map_err(|_| crate::Error::Memory(format!("{rows}x{cols} targets")))?;
        with_matrix!(self, v: T => {
            let (mut buf, mut vals) = (Vec::new(), vec![0f64; cols]);
            for (i, row) in v.rows().into_iter().enumerate() {
                T::to_f64_slice(row_slice(row, &mut buf), &mut vals);
                if let Some(j) = vals.iter().position(|&y| y != 0.0 && y != 1.0 && y != -1.0) {
                    return Err(ternary_error(vals[j], &[i, j]));
                }
                out.extend(vals.iter().map(|&y| y as i8));
            }
        });
        Ok(out)
    }
}

/// `row` as a slice: in place where its elements are adjacent, else copied into `buf`.
pub fn row_slice<'b, 'a: 'b, T: Element>(
    row: ndarray::ArrayView1<'a, T>,
    buf: &'b mut Vec<T>,
) -> &'b [T] {
    match row.to_slice() {
        Some(s) => s,
        None => {
            buf.clear();
            buf.extend(row.iter().copied());
            buf
        }
    }
}

/// Calls `f` on each pair of rows of `x` and `y` (as many rows each) as slices while it
/// returns true; returns whether it saw every row. Row-major views are cut into rows
/// directly, others go through [`row_slice`].
pub fn rows_while<X: Element, Y: Element>(
    x: ArrayView2<'_, X>,
    y: ArrayView2<'_, Y>,
    mut f: impl FnMut(&[X], &[Y]) -> bool,
) -> bool {
    if let (Some(xs), Some(ys)) = (x.to_slice(), y.to_slice()) {
        if x.ncols() > 0 && y.ncols() > 0 {
            let pairs = xs.chunks_exact(x.ncols()).zip(ys.chunks_exact(y.ncols()));
            return pairs.into_iter().all(|(a, b)| f(a, b));
        }
    }
    let (mut xbuf, mut ybuf) = (Vec::new(), Vec::new());
    x.rows()
        .into_iter()
        .zip(y.rows())
        .all(|(a, b)| f(row_slice(a, &mut xbuf), row_slice(b, &mut ybuf)))
}

/// A tensor argument as [`Matrix::from_tensor`] reads it: detached, on the CPU, contiguous
/// (a copy only where it is not already).
pub fn host(t: &Tensor, name: &str) -> Result<Tensor> {
    check_has_data(t, name)?;
    Ok(t.f_detach()?.f_to_device(Device::Cpu)?.f_contiguous()?)
}

/// Scores and targets `[N, C]`, checked: floating scores, targets of their shape, not empty.
#[derive(Clone, Copy)]
pub struct Inputs<'a> {
    pub scores: Matrix<'a>,
    pub targets: Matrix<'a>,
    pub rows: usize,
    pub cols: usize,
}

impl<'a> Inputs<'a> {
    /// Checks the shapes and the scores' element type.
    pub fn new(scores: Matrix<'a>, targets: Matrix<'a>) -> Result<Self> {
        with_scores!(scores, _v: _T => ());
        let (rows, cols) = scores.dim();
        if targets.dim() != (rows, cols) {
            let (r, c) = targets.dim();
            bail!("targets must have the shape of scores [{rows}, {cols}], got [{r}, {c}]");
        }
        if rows == 0 || cols == 0 {
            bail!("scores and targets are empty (shape [{rows}, {cols}]): there is nothing to evaluate");
        }
        Ok(Inputs {
            scores,
            targets,
            rows,
            cols,
        })
    }

    /// The error for a NaN score, naming the first.
    pub fn nan_error(&self) -> crate::Error {
        match self.scores.first(f64::is_nan) {
            Some((at, _)) => {
                crate::Error::value(format!("scores contain NaN, the first at index {at:?}"))
            }
            None => crate::Error::value("scores contain NaN"),
        }
    }

    /// The error for a target outside {1, 0, -1}, naming the first.
    pub fn target_error(&self) -> crate::Error {
        match self.targets.ternary() {
            Err(e) => e,
            Ok(_) => crate::Error::value("targets hold a value other than 1, 0 and -1"),
        }
    }
}

/// Runs `f` on the [`Inputs`] of two tensors (any device; read from host copies).
pub fn with_tensors<R>(
    scores: &Tensor,
    targets: &Tensor,
    f: impl FnOnce(&Inputs<'_>) -> Result<R>,
) -> Result<R> {
    crate::tensor::same_device(targets, "targets", scores, "scores")?;
    let (s, t) = (host(scores, "scores")?, host(targets, "targets")?);
    f(&Inputs::new(
        Matrix::from_tensor(&s, "scores")?,
        Matrix::from_tensor(&t, "targets")?,
    )?)
}
