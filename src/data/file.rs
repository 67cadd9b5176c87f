//! Reading files the data pipeline is given: only regular files, sizes from the file system
//! reserved before reading, every failure naming the file.

use std::io::Read;
use std::path::Path;

use crate::bail;
use crate::error::Result;

/// Reads a whole regular file, naming it on failure. The buffer is reserved from the file's
/// size first, so a file larger than the memory left is an [`Error::Memory`](crate::Error),
/// not an abort.
pub fn read_file(path: &Path) -> Result<Vec<u8>> {
    let mut file = open_regular(path)?;
    let io = |source| crate::Error::Io {
        path: path.into(),
        source,
    };
    let size = file.metadata().map_err(io)?.len();
    let mut bytes = Vec::new();
    usize::try_from(size)
        .ok()
        .and_then(|n| bytes.try_reserve_exact(n).ok())
        .ok_or_else(|| {
            crate::Error::Memory(format!("cannot hold {} ({size} bytes)", path.display()))
        })?;
    file.read_to_end(&mut bytes).map_err(io)?;
    Ok(bytes)
}

/// Reads a UTF-8 text file, naming it on failure.
pub(crate) fn read_text(path: &Path) -> Result<String> {
    String::from_utf8(read_file(path)?).map_err(|_| crate::Error::Io {
        path: path.into(),
        source: std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "stream did not contain valid UTF-8",
        ),
    })
}

/// Why [`open_regular`] refuses a path that exists.
pub(crate) const NOT_REGULAR: &str =
    "not a regular file (a named pipe, socket or device); refusing to read it";

/// Opens a file for reading. Anything but a regular file (a named pipe, a device) is
/// refused before it is opened: reading a pipe would block forever.
pub(crate) fn open_regular(path: &Path) -> Result<std::fs::File> {
    let io = |source| crate::Error::Io {
        path: path.into(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(io)?;
    if meta.is_dir() {
        return Err(io(std::io::Error::new(
            std::io::ErrorKind::IsADirectory,
            "is a directory, not a file",
        )));
    }
    if !meta.is_file() {
        bail!("{}: {NOT_REGULAR}", path.display());
    }
    std::fs::File::open(path).map_err(io)
}
