//! The IDX format of (Fashion-)MNIST, plain or gzip-compressed.

use std::io::Read;
use std::path::Path;

use crate::bail;
use crate::error::{Error, Result};

/// An IDX array of unsigned bytes: its dimensions and values.
pub struct Idx {
    pub dims: Vec<usize>,
    pub data: Vec<u8>,
}

/// The most bytes a gzip-compressed IDX file may inflate to (Fashion-MNIST's largest is 47 MB):
/// a small file that inflates without end is refused instead of filling memory.
pub const MAX_INFLATED: u64 = 1 << 30;

/// Reads an IDX file of `u8` values; `.gz` files (by magic bytes) are inflated first.
pub fn read_idx(path: &Path) -> Result<Idx> {
    let raw = crate::data::file::read_file(path)?;
    let bytes = if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        let mut inflate = flate2::read::GzDecoder::new(&raw[..]).take(MAX_INFLATED + 1);
        if let Err(e) = inflate.read_to_end(&mut out) {
            bail!("{}: corrupt gzip data: {e}", path.display());
        }
        if out.len() as u64 > MAX_INFLATED {
            bail!(
                "{}: inflates to more than {MAX_INFLATED} bytes, the limit for an IDX file",
                path.display()
            );
        }
        out
    } else {
        raw
    };
    parse_idx(&bytes).map_err(|msg| Error::value(format!("{}: {msg}", path.display())))
}

/// Parses IDX bytes (type code 0x08, unsigned byte).
pub fn parse_idx(bytes: &[u8]) -> std::result::Result<Idx, String> {
    if bytes.len() < 4 || bytes[0] != 0 || bytes[1] != 0 {
        return Err("not an IDX file (bad magic number)".into());
    }
    if bytes[2] != 0x08 {
        return Err(format!(
            "IDX element type 0x{:02x} is not unsigned byte",
            bytes[2]
        ));
    }
    let ndim = bytes[3] as usize;
    let header = 4 + 4 * ndim;
    if bytes.len() < header {
        return Err("truncated IDX header".into());
    }
    let dims: Vec<usize> = (0..ndim)
        .map(|d| u32::from_be_bytes(bytes[4 + 4 * d..8 + 4 * d].try_into().unwrap()) as usize)
        .collect();
    let count = dims
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or("IDX dimensions overflow")?;
    if bytes.len() - header != count {
        return Err(format!(
            "IDX holds {} values, its header says {count} ({dims:?})",
            bytes.len() - header
        ));
    }
    Ok(Idx {
        dims,
        data: bytes[header..].to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_rejects() {
        let mut b = vec![0, 0, 8, 2, 0, 0, 0, 2, 0, 0, 0, 3];
        b.extend_from_slice(&[1, 2, 3, 4, 5, 6]);
        let idx = parse_idx(&b).unwrap();
        assert_eq!(idx.dims, [2, 3]);
        assert_eq!(idx.data, [1, 2, 3, 4, 5, 6]);
        assert!(parse_idx(&b[..b.len() - 1]).is_err());
        b[2] = 0x0d;
        assert!(parse_idx(&b).is_err());
    }
}
