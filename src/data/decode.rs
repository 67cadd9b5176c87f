//! JPEG and PNG decoding to RGB, with a pixel-count limit against decompression bombs and
//! a check that JPEG data is complete.

use std::io::{Cursor, Read};
use std::path::Path;

use zune_jpeg::zune_core::bytestream::ZCursor;
use zune_jpeg::zune_core::colorspace::ColorSpace;
use zune_jpeg::zune_core::options::DecoderOptions;
use zune_jpeg::JpegDecoder;

use super::image::Image;
use crate::error::{Error, Result};

/// Default limit on `width * height`: PIL's decompression-bomb error threshold.
pub const DEFAULT_MAX_PIXELS: usize = 178_956_970;

/// How strictly files are read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DecodeOptions {
    /// Limit on `width * height`.
    pub max_pixels: usize,
    /// Refuse truncated JPEGs (PIL's default, `LOAD_TRUNCATED_IMAGES = False`). Lenient
    /// decoding fills the missing part with grey and reports it in [`Decoded::warning`].
    pub strict: bool,
}

impl Default for DecodeOptions {
    fn default() -> Self {
        DecodeOptions {
            max_pixels: DEFAULT_MAX_PIXELS,
            strict: true,
        }
    }
}

/// A decoded image and what a lenient decode had to forgive.
pub struct Decoded {
    pub image: Image,
    /// Set when the file was damaged but decoded anyway (`strict: false`).
    pub warning: Option<String>,
}

/// The container formats the pipeline reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Jpeg,
    Png,
}

/// Recognises a format from the file's first bytes.
pub fn sniff(bytes: &[u8]) -> Option<Format> {
    if bytes.starts_with(&[0xff, 0xd8, 0xff]) {
        Some(Format::Jpeg)
    } else if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some(Format::Png)
    } else {
        None
    }
}

/// Decodes an in-memory JPEG or PNG to RGB; `name` labels errors.
///
/// Greyscale and CMYK JPEGs and every PNG colour type come out as RGB; 16-bit PNG samples
/// keep their high byte and alpha is dropped, as PIL's `convert("RGB")` does.
pub fn decode(bytes: &[u8], name: &str, opts: &DecodeOptions) -> Result<Decoded> {
    let fail = |msg: String| Error::Image {
        path: name.to_string(),
        msg,
    };
    match sniff(bytes) {
        Some(Format::Jpeg) => {
            let complete = jpeg_is_complete(bytes);
            if !complete && opts.strict {
                return Err(fail(TRUNCATED.into()));
            }
            let image = decode_jpeg(bytes, opts.max_pixels).map_err(fail)?;
            let warning = (!complete).then(|| format!("{name}: {TRUNCATED_LENIENT}"));
            Ok(Decoded { image, warning })
        }
        Some(Format::Png) => Ok(Decoded {
            image: decode_png(bytes, opts.max_pixels).map_err(fail)?,
            warning: None,
        }),
        None if bytes.is_empty() => Err(fail("empty file".into())),
        None => Err(fail("not a JPEG or PNG file".into())),
    }
}

const TRUNCATED: &str = "truncated JPEG: the data ends before the end-of-image marker (read it \
                         anyway with strict=False)";
const TRUNCATED_LENIENT: &str = "truncated JPEG decoded leniently: the missing part is grey";

/// Reads and decodes an image file. Anything but a regular file (a named pipe, a device, a
/// directory) is refused before it is opened: reading a pipe would block forever.
pub fn read_image(path: &Path, opts: &DecodeOptions) -> Result<Decoded> {
    let name = path.display().to_string();
    let mut file = super::dataset::open_regular(path).map_err(|e| match e {
        // An image that is not a file is an image error, as a corrupt one is.
        Error::Value(_) => Error::Image {
            path: name.clone(),
            msg: super::dataset::NOT_REGULAR.into(),
        },
        other => other,
    })?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).map_err(|source| Error::Io {
        path: path.into(),
        source,
    })?;
    decode(&bytes, &name, opts)
}

/// Whether a JPEG's marker structure runs to its end-of-image marker: the segments' lengths
/// and the entropy-coded data after each start-of-scan are walked, so an EOI inside an EXIF
/// thumbnail does not count. Bytes after EOI are allowed, as libjpeg allows them.
fn jpeg_is_complete(b: &[u8]) -> bool {
    let n = b.len();
    let mut i = 2; // after SOI
    while i + 1 < n {
        if b[i] != 0xff {
            i += 1; // extraneous bytes between segments, which libjpeg also skips
            continue;
        }
        match b[i + 1] {
            0xff => i += 1, // fill byte
            0xd9 => return true,
            0x00 | 0x01 | 0xd0..=0xd7 => i += 2,
            marker => {
                if i + 3 >= n {
                    return false;
                }
                let len = usize::from(u16::from_be_bytes([b[i + 2], b[i + 3]]));
                i += 2 + len;
                if marker == 0xda {
                    // Entropy-coded data: runs to the next marker that is neither a stuffed
                    // 0xFF00 nor a restart marker.
                    while i + 1 < n {
                        if b[i] == 0xff && !matches!(b[i + 1], 0x00 | 0xd0..=0xd7) {
                            break;
                        }
                        i += 1;
                    }
                }
            }
        }
    }
    false
}

fn check_size(width: usize, height: usize, max_pixels: usize) -> std::result::Result<(), String> {
    if width == 0 || height == 0 {
        return Err(format!("image has a zero dimension ({width}x{height})"));
    }
    if width.saturating_mul(height) > max_pixels {
        return Err(format!(
            "{width}x{height} = {} pixels exceeds the limit of {max_pixels} (a possible \
             decompression bomb; raise max_pixels if the file is trusted)",
            width * height
        ));
    }
    Ok(())
}

fn decode_jpeg(bytes: &[u8], max_pixels: usize) -> std::result::Result<Image, String> {
    let options = DecoderOptions::default()
        .jpeg_set_out_colorspace(ColorSpace::RGB)
        .set_max_width(1 << 16)
        .set_max_height(1 << 16)
        .set_strict_mode(false);
    let mut dec = JpegDecoder::new_with_options(ZCursor::new(bytes), options);
    dec.decode_headers()
        .map_err(|e| format!("corrupt JPEG: {e:?}"))?;
    let (w, h) = dec.dimensions().unwrap_or((0, 0));
    check_size(w, h, max_pixels)?;
    let mut data = vec![0u8; w * h * 3];
    dec.decode_into(&mut data)
        .map_err(|e| format!("corrupt JPEG: {e:?}"))?;
    Ok(Image::from_rgb(w, h, data))
}

fn decode_png(bytes: &[u8], max_pixels: usize) -> std::result::Result<Image, String> {
    let limits = png::Limits {
        bytes: max_pixels.saturating_mul(8),
    };
    let mut dec = png::Decoder::new_with_limits(Cursor::new(bytes), limits);
    dec.set_transformations(png::Transformations::normalize_to_color8());
    let mut reader = dec.read_info().map_err(|e| format!("corrupt PNG: {e}"))?;
    let (w, h) = {
        let info = reader.info();
        (info.width as usize, info.height as usize)
    };
    check_size(w, h, max_pixels)?;
    let size = reader
        .output_buffer_size()
        .ok_or("PNG too large to decode")?;
    let mut buf = vec![0u8; size];
    let frame = reader
        .next_frame(&mut buf)
        .map_err(|e| format!("corrupt PNG: {e}"))?;
    let stride = frame.line_size;
    let channels = match frame.color_type {
        png::ColorType::Grayscale => 1,
        png::ColorType::GrayscaleAlpha => 2,
        png::ColorType::Rgb => 3,
        png::ColorType::Rgba => 4,
        png::ColorType::Indexed => return Err("unexpanded palette PNG".into()),
    };
    let mut data = Vec::with_capacity(w * h * 3);
    for row in buf.chunks_exact(stride).take(h) {
        for px in row[..w * channels].chunks_exact(channels) {
            match channels {
                1 | 2 => data.extend_from_slice(&[px[0], px[0], px[0]]),
                _ => data.extend_from_slice(&px[..3]),
            }
        }
    }
    Ok(Image::from_rgb(w, h, data))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(max_pixels: usize) -> DecodeOptions {
        DecodeOptions {
            max_pixels,
            strict: true,
        }
    }

    #[test]
    fn rejects_garbage_and_truncation() {
        assert!(decode(b"", "a", &opts(DEFAULT_MAX_PIXELS)).is_err());
        assert!(decode(b"GIF89a....", "a", &opts(DEFAULT_MAX_PIXELS)).is_err());
        let err = decode(
            &[0xff, 0xd8, 0xff, 0xe0, 0, 16],
            "x.jpg",
            &opts(DEFAULT_MAX_PIXELS),
        )
        .err()
        .unwrap();
        assert!(err.to_string().contains("x.jpg"), "{err}");
        assert!(err.to_string().contains("truncated JPEG"), "{err}");
    }

    #[test]
    fn jpeg_completeness_walks_segments_and_scans() {
        // SOI, an APP1 segment holding a (thumbnail) EOI, SOS with stuffed and RST bytes, EOI.
        let mut b = vec![0xff, 0xd8, 0xff, 0xe1, 0, 6, 0xff, 0xd9, 1, 2];
        b.extend_from_slice(&[0xff, 0xda, 0, 2, 7, 0xff, 0x00, 9, 0xff, 0xd3, 4]);
        assert!(!jpeg_is_complete(&b), "the thumbnail's EOI must not count");
        b.extend_from_slice(&[0xff, 0xd9]);
        assert!(jpeg_is_complete(&b));
        b.extend_from_slice(&[0, 0, 0]);
        assert!(jpeg_is_complete(&b), "bytes after EOI are allowed");
        assert!(!jpeg_is_complete(&b[..9]));
        assert!(!jpeg_is_complete(&[0xff, 0xd8, 0xff, 0xdb, 0, 67, 0]));
    }

    #[test]
    fn png_round_trip_and_limit() {
        let mut bytes = Vec::new();
        {
            let mut enc = png::Encoder::new(&mut bytes, 3, 2);
            enc.set_color(png::ColorType::Rgba);
            enc.set_depth(png::BitDepth::Eight);
            let mut w = enc.write_header().unwrap();
            let px: Vec<u8> = (0..24).map(|v| v as u8 * 10).collect();
            w.write_image_data(&px).unwrap();
        }
        let img = decode(&bytes, "t.png", &opts(DEFAULT_MAX_PIXELS))
            .ok()
            .unwrap()
            .image;
        assert_eq!((img.width, img.height), (3, 2));
        assert_eq!(&img.data[..6], &[0, 10, 20, 40, 50, 60]);
        let err = decode(&bytes, "t.png", &opts(5)).err().unwrap().to_string();
        assert!(err.contains("decompression bomb"), "{err}");
    }
}
