//! JPEG and PNG decoding to RGB, with a pixel-count limit against decompression bombs.

use std::io::Cursor;
use std::path::Path;

use zune_jpeg::zune_core::bytestream::ZCursor;
use zune_jpeg::zune_core::colorspace::ColorSpace;
use zune_jpeg::zune_core::options::DecoderOptions;
use zune_jpeg::JpegDecoder;

use super::image::Image;
use crate::error::{Error, Result};

/// Default limit on `width * height`: PIL's decompression-bomb error threshold.
pub const DEFAULT_MAX_PIXELS: usize = 178_956_970;

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
pub fn decode(bytes: &[u8], name: &str, max_pixels: usize) -> Result<Image> {
    let fail = |msg: String| Error::Image {
        path: name.to_string(),
        msg,
    };
    match sniff(bytes) {
        Some(Format::Jpeg) => decode_jpeg(bytes, max_pixels).map_err(fail),
        Some(Format::Png) => decode_png(bytes, max_pixels).map_err(fail),
        None if bytes.is_empty() => Err(fail("empty file".into())),
        None => Err(fail("not a JPEG or PNG file".into())),
    }
}

/// Reads and decodes an image file.
pub fn read_image(path: &Path, max_pixels: usize) -> Result<Image> {
    let bytes = std::fs::read(path).map_err(|source| Error::Io {
        path: path.into(),
        source,
    })?;
    decode(&bytes, &path.display().to_string(), max_pixels)
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

    #[test]
    fn rejects_garbage_and_truncation() {
        assert!(decode(b"", "a", DEFAULT_MAX_PIXELS).is_err());
        assert!(decode(b"GIF89a....", "a", DEFAULT_MAX_PIXELS).is_err());
        let err = decode(
            &[0xff, 0xd8, 0xff, 0xe0, 0, 16],
            "x.jpg",
            DEFAULT_MAX_PIXELS,
        )
        .unwrap_err();
        assert!(err.to_string().contains("x.jpg"), "{err}");
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
        let img = decode(&bytes, "t.png", DEFAULT_MAX_PIXELS).unwrap();
        assert_eq!((img.width, img.height), (3, 2));
        assert_eq!(&img.data[..6], &[0, 10, 20, 40, 50, 60]);
        let err = decode(&bytes, "t.png", 5).unwrap_err().to_string();
        assert!(err.contains("decompression bomb"), "{err}");
    }
}
