//! The one error type of the crate, and its conversions.

use std::fmt;
use std::path::PathBuf;

/// Everything that can go wrong in q2l's core.
///
/// The Python bindings map each variant to one exception class of `q2l.errors`, each a
/// subclass of `q2l.Q2LError` and of the built-in it stands for (see `python::errors`):
/// `Value` to `ValueError`, `Type` to `TypeError`, `Torch` and `Internal` to `RuntimeError`, `Io` and `Image` to
/// `OSError` subclasses, `Memory` to `MemoryError`.
///
/// Build errors with [`Error::value`] or, to return early, [`bail!`](crate::bail).
#[derive(Debug)]
pub enum Error {
    /// Bad shapes, dtypes, devices, values or arguments supplied by the caller.
    Value(String),
    /// An argument of the wrong type (an option given a bool where it takes a number).
    Type(String),
    /// A libtorch operation failed.
    Torch(String),
    /// A file could not be read or written.
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// An image file that is not a readable JPEG or PNG.
    Image { path: String, msg: String },
    /// A buffer whose size came from input could not be allocated; the message names what
    /// was being allocated and its size.
    Memory(String),
    /// A bug in q2l: a worker thread panicked or could not be started.
    Internal(String),
}

/// Result alias used throughout the crate.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// A `Value` error from anything printable.
    pub fn value(msg: impl Into<String>) -> Self {
        Error::Value(msg.into())
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Value(msg) | Error::Type(msg) => f.write_str(msg),
            Error::Torch(msg) => write!(f, "libtorch error: {msg}"),
            Error::Io { path, source } => write!(f, "{}: {source}", path.display()),
            Error::Image { path, msg } => write!(f, "{path}: {msg}"),
            Error::Memory(msg) => write!(f, "out of memory: {msg}"),
            Error::Internal(msg) => write!(
                f,
                "internal error in q2l (a bug: please report it with this message): {msg}"
            ),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// The message of a caught panic's payload, for an [`Error::Internal`].
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    let what = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "no message".into());
    format!("panic: {what}")
}

impl From<tch::TchError> for Error {
    fn from(err: tch::TchError) -> Self {
        match err {
            tch::TchError::Shape(msg) | tch::TchError::Kind(msg) => Error::Value(msg),
            // libtorch appends a C++ backtrace that says nothing to a Python user.
            other => {
                let msg = other.to_string();
                let head = msg.split("\nException raised from").next().unwrap_or(&msg);
                let head = head.trim_end().to_string();
                // c10's CPU allocator and the CUDA caching allocator word their failures so.
                if head.contains("can't allocate memory") || head.contains("out of memory") {
                    Error::Memory(head)
                } else {
                    Error::Torch(head)
                }
            }
        }
    }
}

/// A zero-filled `Vec` of `len` elements whose size comes from input: a failed allocation is
/// an [`Error::Memory`] naming `what` and the size, not the abort of `vec![..]`.
pub fn try_zeroed<T: Copy + Default>(len: usize, what: &str) -> Result<Vec<T>> {
    try_filled(&[len], T::default(), what)
}

/// A `Vec` of the product of `dims` elements, each `value`, where the sizes come from input
/// (rows x classes of a dataset's targets): a product that overflows or an allocation that
/// fails is an [`Error::Memory`] naming `what` and the sizes, never a wrap or an abort.
pub fn try_filled<T: Copy>(dims: &[usize], value: T, what: &str) -> Result<Vec<T>> {
    let too_big = || {
        let sizes: Vec<String> = dims.iter().map(usize::to_string).collect();
        let bytes = dims.iter().fold(std::mem::size_of::<T>() as u128, |a, &d| {
            a.saturating_mul(d as u128)
        });
        Error::Memory(format!(
            "cannot allocate {} ({bytes} bytes) for {what}",
            sizes.join(" x ")
        ))
    };
    let len = dims
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or_else(too_big)?;
    let mut v = Vec::new();
    v.try_reserve_exact(len).map_err(|_| too_big())?;
    v.resize(len, value);
    Ok(v)
}

/// This machine's physical memory in bytes (`u64::MAX` where it cannot be read): the bound
/// of what input may ask a long-lived buffer to hold, since Linux overcommits and a buffer
/// filled past it ends in the OOM killer rather than in an allocation error.
pub fn machine_memory() -> u64 {
    // SAFETY: sysconf reads system constants and has no preconditions.
    let (pages, size) = unsafe {
        (
            libc::sysconf(libc::_SC_PHYS_PAGES),
            libc::sysconf(libc::_SC_PAGE_SIZE),
        )
    };
    if pages <= 0 || size <= 0 {
        return u64::MAX;
    }
    (pages as u64).saturating_mul(size as u64)
}

/// Returns `Err(Error::Value(..))` with a formatted message.
#[macro_export]
macro_rules! bail {
    ($($arg:tt)*) => {
        return Err($crate::error::Error::value(format!($($arg)*)))
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_from_input_never_wrap_or_abort() {
        assert_eq!(try_filled(&[2, 3], -1i8, "t").unwrap(), vec![-1i8; 6]);
        for dims in [[usize::MAX, 2], [1 << 40, 1 << 30]] {
            match try_filled(&dims, 0i8, "the targets") {
                Err(Error::Memory(m)) => assert!(m.contains("the targets"), "{m}"),
                other => panic!("{dims:?}: {other:?}"),
            }
        }
        assert!(machine_memory() > 1 << 20);
    }
}
