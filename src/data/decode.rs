//! JPEG and PNG decoding to RGB, with a pixel-count limit against decompression bombs and
//! a check that JPEG data is complete.

use std::io::Cursor;
use std::path::Path;

use super::image::Image;
use super::jpeg::{self, corrupt, Rect};
use super::profile::{timed, Stage};
use super::resize::{resize_box, Window};
use crate::error::{try_zeroed, Error, Result};

/// Default limit on `width * height`: PIL's decompression-bomb error threshold.
pub const DEFAULT_MAX_PIXELS: usize = 178_956_970;

crate::options! {
    /// How image files are decoded.
    pub struct DecodeOptions {
        /// Largest `width * height` decoded (default: PIL's decompression-bomb limit);
        /// larger images are errors, without being allocated.
        max_pixels: usize = DEFAULT_MAX_PIXELS,
        /// Refuse truncated JPEGs (PIL's `LOAD_TRUNCATED_IMAGES = False`). False: decode them
        /// with the missing part grey, and report each one.
        strict: bool = true,
        /// Let a window decode a JPEG at 1/2, 1/4 or 1/8 scale in the DCT domain when its
        /// output is at most half the window's size. False: every decode is full-size and
        /// equals PIL's decode followed by the same crop and resize.
        dct_scaling: bool = true,
    }
}

impl crate::options::Checked for DecodeOptions {
    fn check(&self) -> Result<()> {
        if self.max_pixels == 0 {
            crate::bail!("max_pixels must be >= 1, got 0");
        }
        Ok(())
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
    decode_inner(bytes, name, opts, None)
}

/// Decodes an image and applies `window` (given the image's size) to it, decoding a JPEG only
/// as far as the window needs: the iMCU columns and the rows its box covers, and, where the
/// output is at most half the box on both sides, at the coarsest DCT scale (1/2, 1/4, 1/8)
/// that keeps at least the output's resolution. At full scale the result equals a full decode
/// followed by `window.apply`; scaled, it differs as a smaller IDCT differs from a resize.
pub fn decode_window(
    bytes: &[u8],
    name: &str,
    opts: &DecodeOptions,
    window: &mut dyn FnMut(usize, usize) -> Window,
) -> Result<Decoded> {
    decode_inner(bytes, name, opts, Some(window))
}

fn decode_inner(
    bytes: &[u8],
    name: &str,
    opts: &DecodeOptions,
    window: Option<&mut dyn FnMut(usize, usize) -> Window>,
) -> Result<Decoded> {
    let fail = |msg: String| Error::Image {
        path: name.to_string(),
        msg,
    };
    // The decoders leave the path empty: name it.
    let label = |e: Error| match e {
        Error::Image { msg, .. } => fail(msg),
        other => other,
    };
    match sniff(bytes) {
        Some(Format::Jpeg) => {
            let complete = jpeg_is_complete(bytes);
            if !complete && opts.strict {
                return Err(fail(TRUNCATED.into()));
            }
            let image = decode_jpeg(bytes, opts, window).map_err(label)?;
            let warning = (!complete).then(|| format!("{name}: {TRUNCATED_LENIENT}"));
            Ok(Decoded { image, warning })
        }
        Some(Format::Png) => {
            let image =
                timed(Stage::Decode, || decode_png(bytes, opts.max_pixels)).map_err(label)?;
            let image = match window {
                Some(f) => {
                    let window = f(image.width, image.height);
                    timed(Stage::Resize, || window.apply(&image))?
                }
                None => image,
            };
            Ok(Decoded {
                image,
                warning: None,
            })
        }
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
    decode(&read_bytes(path)?, &path.display().to_string(), opts)
}

/// [`read_image`], then [`decode_window`].
pub fn read_image_window(
    path: &Path,
    opts: &DecodeOptions,
    window: &mut dyn FnMut(usize, usize) -> Window,
) -> Result<Decoded> {
    decode_window(
        &read_bytes(path)?,
        &path.display().to_string(),
        opts,
        window,
    )
}

fn read_bytes(path: &Path) -> Result<Vec<u8>> {
    timed(Stage::Read, || super::file::read_file(path)).map_err(|e| match e {
        // An image that is not a file is an image error, as a corrupt one is.
        Error::Value(_) => Error::Image {
            path: path.display().to_string(),
            msg: super::file::NOT_REGULAR.into(),
        },
        other => other,
    })
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
                        // Whole runs without an 0xFF are skipped at memchr speed (slice
                        // `contains` on bytes): the scan is a few percent of a decode.
                        if let Some(run) = b.get(i..i + 64) {
                            if !run.contains(&0xff) {
                                i += 64;
                                continue;
                            }
                        }
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

/// Rows and columns decoded beyond a window's box on each side (source pixels), so that the
/// box's edge pixels are upsampled from the same chroma neighbours as in a full decode.
const MARGIN: usize = 16;

/// Decodes a JPEG; errors about the file come back as [`Error::Image`] with an empty path.
fn decode_jpeg(
    bytes: &[u8],
    opts: &DecodeOptions,
    window: Option<&mut dyn FnMut(usize, usize) -> Window>,
) -> Result<Image> {
    let decoder = jpeg::Decoder::new(bytes).map_err(corrupt)?;
    let header = decoder.header;
    check_size(header.width, header.height, opts.max_pixels).map_err(corrupt)?;
    let Some(window) = window else {
        return Ok(decoder.decode(1, None)?.0);
    };
    let win = window(header.width, header.height);
    // The coarsest scale whose box still has at least the output's pixels on both sides.
    let denom = [8, 4, 2]
        .into_iter()
        .find(|d| win.width >= d * win.out_width && win.height >= d * win.out_height)
        .filter(|_| opts.dct_scaling && header.scales())
        .unwrap_or(1);
    let (sw, sh) = (
        jpeg::scaled(header.width, denom),
        jpeg::scaled(header.height, denom),
    );
    // The box in scaled pixels (fractional), the whole pixels it touches, and those plus a
    // margin: what is decoded.
    let d = denom as f64;
    let edges = [
        win.x as f64 / d,
        win.y as f64 / d,
        (win.x + win.width) as f64 / d,
        (win.y + win.height) as f64 / d,
    ];
    let hull = Rect {
        x: edges[0].floor() as usize,
        y: edges[1].floor() as usize,
        width: (edges[2].ceil() as usize).min(sw) - edges[0].floor() as usize,
        height: (edges[3].ceil() as usize).min(sh) - edges[1].floor() as usize,
    };
    let m = MARGIN.div_ceil(denom);
    let (x0, y0) = (hull.x.saturating_sub(m), hull.y.saturating_sub(m));
    let region = Rect {
        x: x0,
        y: y0,
        width: (hull.x + hull.width + m).min(sw) - x0,
        height: (hull.y + hull.height + m).min(sh) - y0,
    };
    let (decoded, covered) = timed(Stage::Decode, || decoder.decode(denom, Some(region)))?;
    // A window over the whole image (a Resize) needs no copy of what was decoded.
    let crop = if covered == hull {
        decoded
    } else {
        timed(Stage::Crop, || {
            decoded.crop(
                hull.x - covered.x,
                hull.y - covered.y,
                hull.width,
                hull.height,
            )
        })?
    };
    let (hx, hy) = (hull.x as f64, hull.y as f64);
    let inside = [edges[0] - hx, edges[1] - hy, edges[2] - hx, edges[3] - hy];
    timed(Stage::Resize, || {
        resize_box(&crop, inside, win.out_width, win.out_height)
    })
}

/// Decodes a PNG; errors about the file come back as [`Error::Image`] with an empty path.
/// Encodes an RGB image as an 8-bit PNG (what the shard writer stores for images that have
/// no file of their own).
pub fn encode_png(img: &Image) -> Result<Vec<u8>> {
    let fail = |e: png::EncodingError| Error::Value(format!("cannot encode a PNG: {e}"));
    let mut bytes = Vec::new();
    let (w, h) = (u32::try_from(img.width), u32::try_from(img.height));
    let (Ok(w), Ok(h)) = (w, h) else {
        crate::bail!("a {}x{} image is too large for PNG", img.width, img.height);
    };
    let mut enc = png::Encoder::new(&mut bytes, w, h);
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    let mut writer = enc.write_header().map_err(fail)?;
    writer.write_image_data(&img.data).map_err(fail)?;
    writer.finish().map_err(fail)?;
    Ok(bytes)
}

fn decode_png(bytes: &[u8], max_pixels: usize) -> Result<Image> {
    let limits = png::Limits {
        bytes: max_pixels.saturating_mul(8),
    };
    let mut dec = png::Decoder::new_with_limits(Cursor::new(bytes), limits);
    dec.set_transformations(png::Transformations::normalize_to_color8());
    let mut reader = dec
        .read_info()
        .map_err(|e| corrupt(format!("corrupt PNG: {e}")))?;
    let (w, h) = {
        let info = reader.info();
        // The png crate (0.18.1) accepts a PLTE chunk that is not whole RGB entries, which
        // the PNG specification forbids, then panics expanding it (found by the png fuzz
        // target; fuzz/corpus/png/plte-49-bytes.png).
        if let Some(plte) = &info.palette {
            if plte.is_empty() || plte.len() % 3 != 0 || plte.len() > 3 * 256 {
                let n = plte.len();
                return Err(corrupt(format!(
                    "corrupt PNG: a {n}-byte palette is not 1 to 256 RGB entries"
                )));
            }
        }
        (info.width as usize, info.height as usize)
    };
    check_size(w, h, max_pixels).map_err(corrupt)?;
    let size = reader
        .output_buffer_size()
        .ok_or_else(|| corrupt("PNG too large to decode".into()))?;
    let mut buf = try_zeroed::<u8>(size, "the decoded PNG")?;
    let frame = reader
        .next_frame(&mut buf)
        .map_err(|e| corrupt(format!("corrupt PNG: {e}")))?;
    let stride = frame.line_size;
    let channels = match frame.color_type {
        png::ColorType::Grayscale => 1,
        png::ColorType::GrayscaleAlpha => 2,
        png::ColorType::Rgb => 3,
        png::ColorType::Rgba => 4,
        png::ColorType::Indexed => return Err(corrupt("unexpanded palette PNG".into())),
    };
    let mut data = Vec::new();
    data.try_reserve_exact(w * h * 3)
        .map_err(|_| Error::Memory(format!("cannot allocate a {w}x{h} image")))?;
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
            ..DecodeOptions::default()
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

    /// The mean absolute difference (levels) and the share of values more than 8 apart.
    fn difference(a: &Image, b: &Image) -> (f64, f64) {
        assert_eq!((a.width, a.height), (b.width, b.height));
        let d: Vec<u8> = a
            .data
            .iter()
            .zip(&b.data)
            .map(|(x, y)| x.abs_diff(*y))
            .collect();
        let mean = d.iter().map(|&v| f64::from(v)).sum::<f64>() / d.len() as f64;
        let far = d.iter().filter(|&&v| v > 8).count() as f64 / d.len() as f64;
        (mean, far)
    }

    #[test]
    fn every_coding_through_a_scaled_window_matches_a_full_decode_and_resize() {
        use super::super::jpeg_encode::{codings, encode, pattern, Colorspace};
        let (w, h) = (640, 427);
        let opts = DecodeOptions::default();
        // A Resize small enough for 1/8 and 1/4 scaling, and a crop: the lossless file, which
        // TurboJPEG can neither scale nor crop, once overran the buffer sized for them.
        let windows = [
            Window {
                x: 0,
                y: 0,
                width: w,
                height: h,
                out_width: 64,
                out_height: 48,
            },
            Window {
                x: 0,
                y: 0,
                width: w,
                height: h,
                out_width: 200,
                out_height: 150,
            },
            Window {
                x: 101,
                y: 37,
                width: 300,
                height: 260,
                out_width: 64,
                out_height: 64,
            },
        ];
        // 4:1:1 and 4:4:1 are left out: their chroma, a quarter of the width or height, decoded
        // at 1/8 scale differs from the full decode's by a mean of 8.6 and 11.1 levels on this
        // pattern, past the photo tolerance (the same as PIL's draft mode would give).
        let quarter = [
            turbojpeg_sys::TJSAMP_TJSAMP_411,
            turbojpeg_sys::TJSAMP_TJSAMP_441,
        ];
        let cases = codings()
            .into_iter()
            .filter(|(_, o)| !quarter.contains(&o.subsampling));
        for (name, enc) in cases {
            let cmyk = matches!(enc.colorspace, Colorspace::Cmyk | Colorspace::Ycck);
            let bytes = encode(&pattern(w, h, if cmyk { 4 } else { 3 }), w, h, &enc).unwrap();
            let full = decode(&bytes, name, &opts).unwrap().image;
            for win in windows {
                let ours = decode_window(&bytes, name, &opts, &mut |_, _| win)
                    .unwrap()
                    .image;
                let reference = win.apply(&full).unwrap();
                if enc.lossless {
                    assert_eq!(ours, reference, "{name}: a lossless file is decoded whole");
                } else {
                    // The README's scaled-decode tolerance.
                    let (mean, far) = difference(&ours, &reference);
                    assert!(mean < 4.0 && far < 0.2, "{name} {win:?}: {mean} {far}");
                }
            }
        }
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
