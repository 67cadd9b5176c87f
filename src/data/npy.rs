//! NumPy `.npy` files of floating-point arrays, read without pickle and without trusting the
//! header: the shape it claims must account for exactly the bytes that follow it, so a
//! header claiming 10^11 rows is refused before anything is allocated.
//!
//! Format (NumPy's `numpy.lib.format`): the magic `\x93NUMPY`, a version (1.0: a 2-byte header
//! length; 2.0 and 3.0: 4 bytes), then a Python dict literal such as
//! `{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }` and the raw data.

use tch::{Kind, Tensor};

use crate::bail;
use crate::error::{try_zeroed, Result};

/// The most dimensions an array may have (NumPy's own limit is 64).
const MAX_DIMS: usize = 32;
/// The longest header read (NumPy writes at most a few hundred bytes; it refuses over 10,000).
const MAX_HEADER: usize = 65_536;

/// Reads a `.npy` file ([`parse`]); errors name the file.
pub fn read(path: &std::path::Path) -> Result<Tensor> {
    let bytes = super::file::read_file(path)?;
    parse(&bytes).map_err(|e| match e {
        crate::Error::Value(msg) => crate::Error::value(format!(
            "{}: not a readable .npy array: {msg}",
            path.display()
        )),
        other => other,
    })
}

/// The value of `key` in the header dict: the text after `'key':` up to the next top-level
/// comma or closing brace.
fn field<'a>(dict: &'a str, key: &str) -> Result<&'a str> {
    let pattern = [format!("'{key}':"), format!("\"{key}\":")];
    let Some(start) = pattern
        .iter()
        .find_map(|p| dict.find(p.as_str()).map(|i| i + p.len()))
    else {
        bail!("the header has no '{key}'");
    };
    let rest = dict[start..].trim_start();
    let end = if rest.starts_with('(') {
        rest.find(')').map(|i| i + 1)
    } else {
        rest.find([',', '}'])
    };
    match end {
        Some(end) => Ok(rest[..end].trim()),
        None => bail!("the header's '{key}' is not closed"),
    }
}

/// A shape tuple: `()`, `(5,)`, `(3, 4)`.
fn parse_shape(text: &str) -> Result<Vec<usize>> {
    let inner = text
        .strip_prefix('(')
        .and_then(|t| t.strip_suffix(')'))
        .ok_or_else(|| crate::Error::value(format!("shape {text:?} is not a tuple")))?;
    let dims: Vec<&str> = inner
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .collect();
    if dims.len() > MAX_DIMS {
        bail!("{} dimensions, more than {MAX_DIMS}", dims.len());
    }
    dims.iter()
        .map(|d| d.parse::<usize>())
        .collect::<std::result::Result<_, _>>()
        .map_err(|_| crate::Error::value(format!("shape {text} is not a tuple of sizes")))
}

/// Parses a `.npy` file's bytes into a contiguous CPU tensor of the file's dtype. Floats of 2,
/// 4 or 8 bytes in either byte order, C or Fortran order; errors say what is wrong (the caller
/// adds the file's name).
pub fn parse(bytes: &[u8]) -> Result<Tensor> {
    let Some(rest) = bytes.strip_prefix(b"\x93NUMPY") else {
        bail!("not a .npy file (no \\x93NUMPY magic)");
    };
    let (len, body) = match rest {
        [1, _, a, b, body @ ..] => (usize::from(u16::from_le_bytes([*a, *b])), body),
        [2 | 3, _, a, b, c, d, body @ ..] => (u32::from_le_bytes([*a, *b, *c, *d]) as usize, body),
        [major, ..] => bail!("unsupported .npy format version {major}"),
        [] => bail!("truncated .npy header"),
    };
    if len > MAX_HEADER || len > body.len() {
        bail!("the header length {len} is longer than the file or the {MAX_HEADER}-byte limit");
    }
    let Ok(dict) = std::str::from_utf8(&body[..len]) else {
        bail!("the header is not text");
    };
    let data = &body[len..];
    let descr = field(dict, "descr")?.trim_matches(['\'', '"']);
    let (big_endian, kind, width) = match descr.as_bytes() {
        [order @ (b'<' | b'>' | b'='), b'f', w] => {
            let kind = match w {
                b'2' => Kind::Half,
                b'4' => Kind::Float,
                b'8' => Kind::Double,
                _ => bail!("dtype {descr:?} is not a float of 2, 4 or 8 bytes"),
            };
            let big = *order == b'>' || (*order == b'=' && cfg!(target_endian = "big"));
            (big, kind, usize::from(w - b'0'))
        }
        _ => bail!("dtype {descr:?} is not a float array (label embeddings are floats)"),
    };
    let fortran = match field(dict, "fortran_order")? {
        "True" => true,
        "False" => false,
        other => bail!("fortran_order must be True or False, got {other}"),
    };
    let shape = parse_shape(field(dict, "shape")?)?;
    let count = shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d));
    let expected = count.and_then(|n| n.checked_mul(width));
    if expected != Some(data.len()) {
        bail!(
            "the header claims shape {shape:?} of {descr} ({} bytes), but {} bytes follow it",
            expected.map_or("too many".into(), |n| n.to_string()),
            data.len()
        );
    }
    let mut native = try_zeroed::<u8>(data.len(), "the .npy array")?;
    for (src, dst) in data.chunks_exact(width).zip(native.chunks_exact_mut(width)) {
        dst.copy_from_slice(src);
        if big_endian != cfg!(target_endian = "big") {
            dst.reverse();
        }
    }
    // Fortran order is C order of the reversed shape, transposed back.
    let stored: Vec<i64> = if fortran {
        shape.iter().rev().map(|&d| d as i64).collect()
    } else {
        shape.iter().map(|&d| d as i64).collect()
    };
    let t = Tensor::f_from_data_size(&native, &stored, kind)?;
    if !fortran || shape.len() < 2 {
        return Ok(t);
    }
    let dims: Vec<i64> = (0..shape.len() as i64).rev().collect();
    Ok(t.f_permute(dims)?.f_contiguous()?)
}

/// A `.npy` file (format 1.0) of `data` under the given header values, for tests and seeds.
#[cfg(test)]
pub(crate) fn write(descr: &str, fortran: bool, shape: &str, data: &[u8]) -> Vec<u8> {
    let dict = format!(
        "{{'descr': '{descr}', 'fortran_order': {}, 'shape': {shape}, }}\n",
        if fortran { "True" } else { "False" }
    );
    let mut b = b"\x93NUMPY\x01\x00".to_vec();
    b.extend_from_slice(&(dict.len() as u16).to_le_bytes());
    b.extend_from_slice(dict.as_bytes());
    b.extend_from_slice(data);
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_both_byte_orders_and_fortran_order() {
        let values = [1.5f32, -2.0, 3.25, 4.0, 0.5, -0.125];
        let le: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        let be: Vec<u8> = values.iter().flat_map(|v| v.to_be_bytes()).collect();
        let a = parse(&write("<f4", false, "(2, 3)", &le)).unwrap();
        let b = parse(&write(">f4", false, "(2, 3)", &be)).unwrap();
        assert_eq!(a, b);
        assert_eq!((a.size(), a.kind()), (vec![2, 3], Kind::Float));
        assert_eq!(a.double_value(&[1, 0]), 4.0);
        // The same values stored column by column.
        let cols = [0usize, 3, 1, 4, 2, 5].map(|i| values[i]);
        let f: Vec<u8> = cols.iter().flat_map(|v| v.to_le_bytes()).collect();
        assert_eq!(parse(&write("<f4", true, "(2, 3)", &f)).unwrap(), b);
        let d: Vec<u8> = [7.0f64].iter().flat_map(|v| v.to_be_bytes()).collect();
        let t = parse(&write(">f8", false, "(1,)", &d)).unwrap();
        assert_eq!((t.kind(), t.double_value(&[0])), (Kind::Double, 7.0));
    }

    #[test]
    fn a_header_must_account_for_the_data() {
        let err = parse(&write("<f4", false, "(100000000000, 4)", &[0; 16]))
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains("[100000000000, 4]") && err.contains("16 bytes"),
            "{err}"
        );
        let huge = parse(&write(
            "<f8",
            false,
            "(4294967296, 4294967296, 4294967296)",
            &[],
        ));
        assert!(huge.err().unwrap().to_string().contains("too many"));
        for (descr, shape) in [
            ("<i8", "(1,)"),
            ("|O", "(1,)"),
            ("<f4", "[1]"),
            ("<f4", "(a,)"),
        ] {
            assert!(
                parse(&write(descr, false, shape, &[0; 8])).is_err(),
                "{descr} {shape}"
            );
        }
        assert!(parse(b"\x93NUMPY\x01\x00\xff\xff{").is_err());
        assert!(parse(b"\x93NUMPY").is_err());
        assert!(parse(b"PK\x03\x04").is_err());
    }
}
