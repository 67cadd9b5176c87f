//! JPEG decoding with libjpeg-turbo through its TurboJPEG 3 API: the whole image, or only the
//! rows and iMCU columns a crop needs, at full size or scaled 1/2, 1/4 or 1/8 in the DCT domain.
//!
//! libjpeg-turbo is the decoder PIL and torchvision use, with the same defaults here (accurate
//! integer IDCT, fancy chroma upsampling), so a full-size decode gives PIL's pixels exactly.

use std::ffi::CStr;

use turbojpeg_sys as tj;

use super::image::Image;
use crate::error::{try_zeroed, Error};

/// A progressive JPEG may have any number of scans, each a pass over the whole image; more than
/// this many is refused, as libjpeg-turbo advises for untrusted files (a real photo has about 10).
const SCAN_LIMIT: i32 = 500;

/// What the header says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub width: usize,
    pub height: usize,
    /// Pixel width of one iMCU column (8 to 32), `None` for a subsampling TurboJPEG cannot name.
    mcu_width: Option<usize>,
    /// CMYK or YCCK, decoded to CMYK samples.
    cmyk: bool,
    /// Lossless (SOF3): TurboJPEG decodes these only whole and at full size.
    lossless: bool,
    /// Bits per sample: 8 or 12 for DCT-coded files, 2 to 16 for lossless ones.
    precision: u32,
}

impl Header {
    /// Whether TurboJPEG can decode at 1/2, 1/4 and 1/8 scale in the DCT domain. libjpeg
    /// ignores a scaling factor for a lossless image and writes it at full size, so asking for
    /// one would overrun a buffer sized for the scaled image.
    pub fn scales(&self) -> bool {
        !self.lossless
    }

    /// Whether TurboJPEG can decode a window of columns and rows.
    fn crops(&self) -> bool {
        !self.lossless && self.mcu_width.is_some()
    }
}

/// A rectangle of a (possibly scaled) image: top-left corner and size, in pixels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rect {
    pub x: usize,
    pub y: usize,
    pub width: usize,
    pub height: usize,
}

/// One TurboJPEG decompressor, destroyed on drop.
struct Handle(tj::tjhandle);

impl Handle {
    fn new() -> Result<Self, String> {
        // SAFETY: tj3Init has no preconditions; a null handle is checked.
        let h = unsafe { tj::tj3Init(tj::TJINIT_TJINIT_DECOMPRESS as libc::c_int) };
        if h.is_null() {
            return Err("libjpeg-turbo could not allocate a decompressor".into());
        }
        let handle = Handle(h);
        // SAFETY: the handle is live and SCANLIMIT a decompression parameter.
        handle.check(unsafe { tj::tj3Set(h, tj::TJPARAM_TJPARAM_SCANLIMIT as i32, SCAN_LIMIT) })?;
        Ok(handle)
    }

    /// The message of the last error, prefixed as every decode error is.
    fn error(&self) -> String {
        // SAFETY: the handle is live; the string is owned by it and copied at once.
        let msg = unsafe { CStr::from_ptr(tj::tj3GetErrorStr(self.0)) };
        format!("corrupt JPEG: {}", msg.to_string_lossy())
    }

    fn check(&self, status: libc::c_int) -> Result<(), String> {
        if status == 0 {
            Ok(())
        } else {
            Err(self.error())
        }
    }

    fn get(&self, param: tj::TJPARAM) -> i32 {
        // SAFETY: the handle is live and `param` a TurboJPEG parameter.
        unsafe { tj::tj3Get(self.0, param as i32) }
    }

    fn read_header(&self, bytes: &[u8]) -> Result<Header, String> {
        // SAFETY: the pointer and length describe `bytes`, which outlives the call.
        self.check(unsafe {
            tj::tj3DecompressHeader(self.0, bytes.as_ptr(), bytes.len() as tj::size_t)
        })?;
        let colorspace = self.get(tj::TJPARAM_TJPARAM_COLORSPACE) as tj::TJCS;
        let cmyk = matches!(colorspace, tj::TJCS_TJCS_CMYK | tj::TJCS_TJCS_YCCK);
        let mcu_width = match self.get(tj::TJPARAM_TJPARAM_SUBSAMP) {
            tj::TJSAMP_TJSAMP_444
            | tj::TJSAMP_TJSAMP_GRAY
            | tj::TJSAMP_TJSAMP_440
            | tj::TJSAMP_TJSAMP_441 => Some(8),
            tj::TJSAMP_TJSAMP_422 | tj::TJSAMP_TJSAMP_420 => Some(16),
            tj::TJSAMP_TJSAMP_411 => Some(32),
            _ => None,
        };
        let lossless = self.get(tj::TJPARAM_TJPARAM_LOSSLESS) == 1;
        let precision = self.get(tj::TJPARAM_TJPARAM_PRECISION);
        // libjpeg refuses any other precision when it reads the header; checked again because
        // it picks the sample type, and with it the buffer size, below.
        let valid = if lossless {
            (2..=16).contains(&precision)
        } else {
            precision == 8 || precision == 12
        };
        if !valid {
            return Err(format!(
                "unsupported JPEG sample precision {precision} bits"
            ));
        }
        Ok(Header {
            width: self.get(tj::TJPARAM_TJPARAM_JPEGWIDTH).max(0) as usize,
            height: self.get(tj::TJPARAM_TJPARAM_JPEGHEIGHT).max(0) as usize,
            mcu_width,
            cmyk,
            lossless,
            precision: precision as u32,
        })
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        // SAFETY: the handle came from tj3Init and is destroyed once.
        unsafe { tj::tj3Destroy(self.0) }
    }
}

/// A JPEG whose header has been read, ready to decode once.
pub struct Decoder<'a> {
    handle: Handle,
    bytes: &'a [u8],
    pub header: Header,
}

/// `size` scaled by `1 / denom`, rounded up (TurboJPEG's `TJSCALED`).
pub fn scaled(size: usize, denom: usize) -> usize {
    size.div_ceil(denom)
}

/// The sample types of TurboJPEG's three decompression functions.
trait Sample: Copy + Default {
    /// Calls `tj3Decompress8`, `12` or `16`.
    ///
    /// # Safety
    /// `dst` must hold the rows TurboJPEG writes for the handle's scaling factor and cropping
    /// region, each `pitch` samples long.
    unsafe fn decompress(
        h: &Handle,
        jpeg: &[u8],
        dst: &mut [Self],
        pitch: usize,
        pf: tj::TJPF,
    ) -> libc::c_int;
    fn widen(self) -> u32;
}

/// One `Sample` impl: the sample type, its TurboJPEG function and its value as `u32`.
macro_rules! sample {
    ($t:ty, $decompress:path, $widen:expr) => {
        impl Sample for $t {
            unsafe fn decompress(
                h: &Handle,
                jpeg: &[u8],
                dst: &mut [$t],
                pitch: usize,
                pf: tj::TJPF,
            ) -> libc::c_int {
                let len = jpeg.len() as tj::size_t;
                $decompress(h.0, jpeg.as_ptr(), len, dst.as_mut_ptr(), pitch as i32, pf)
            }
            fn widen(self) -> u32 {
                $widen(self)
            }
        }
    };
}

sample!(u8, tj::tj3Decompress8, u32::from);
// 12-bit samples are `short`; libjpeg never writes a negative one, clamped all the same.
sample!(i16, tj::tj3Decompress12, |v: i16| v.max(0) as u32);
sample!(u16, tj::tj3Decompress16, u32::from);

impl<'a> Decoder<'a> {
    /// Reads the header of the JPEG in `bytes`.
    pub fn new(bytes: &'a [u8]) -> Result<Self, String> {
        let handle = Handle::new()?;
        let header = handle.read_header(bytes)?;
        Ok(Decoder {
            handle,
            bytes,
            header,
        })
    }

    /// Decodes `region` of the image scaled by `1 / denom` (1, 2, 4 or 8, and only 1 where
    /// [`Header::scales`] is false; `region` in scaled pixels, `None` for all of it) to RGB.
    /// Returns the pixels and the rectangle they cover, which contains `region`: its left edge
    /// moves left to an iMCU column boundary, and where TurboJPEG cannot crop (a lossless
    /// file, an unnamed subsampling) the whole scaled image is returned.
    ///
    /// Greyscale comes out as three equal channels and CMYK is converted as PIL converts it,
    /// so a full-size decode equals PIL's `Image.open(path).convert("RGB")`. Samples of more
    /// (or fewer) than 8 bits are rescaled to 0-255, rounded.
    pub fn decode(self, denom: usize, region: Option<Rect>) -> Result<(Image, Rect), Error> {
        let header = self.header;
        if denom != 1 && !header.scales() {
            return Err(corrupt(
                "a lossless JPEG cannot be decoded at a reduced scale".into(),
            ));
        }
        let covered = self.set_window(denom, region).map_err(corrupt)?;
        let channels = if header.cmyk { 4 } else { 3 };
        let p = header.precision;
        let samples = match p {
            8 => self.decompress::<u8>(covered, channels)?,
            ..=8 => to_8_bits(&self.decompress::<u8>(covered, channels)?, p),
            9..=12 => to_8_bits(&self.decompress::<i16>(covered, channels)?, p),
            _ => to_8_bits(&self.decompress::<u16>(covered, channels)?, p),
        };
        let image = if header.cmyk {
            cmyk_to_rgb(covered.width, covered.height, &samples)?
        } else {
            Image::from_rgb(covered.width, covered.height, samples)
        };
        Ok((image, covered))
    }

    /// Sets the scaling factor and, where TurboJPEG can crop, the cropping region; returns
    /// the rectangle the decode will write.
    fn set_window(&self, denom: usize, region: Option<Rect>) -> Result<Rect, String> {
        let (handle, header) = (&self.handle, &self.header);
        let factor = tj::tjscalingfactor {
            num: 1,
            denom: denom as i32,
        };
        // SAFETY: the handle is live; TurboJPEG checks that the factor is one it supports.
        handle.check(unsafe { tj::tj3SetScalingFactor(handle.0, factor) })?;
        let full = Rect {
            x: 0,
            y: 0,
            width: scaled(header.width, denom),
            height: scaled(header.height, denom),
        };
        match (region, header.mcu_width) {
            (Some(r), Some(mcu)) if r != full && header.crops() => {
                let step = scaled(mcu, denom);
                let x = r.x / step * step;
                let crop = Rect {
                    x,
                    y: r.y,
                    width: r.x + r.width - x,
                    height: r.height,
                };
                let tjr = tj::tjregion {
                    x: crop.x as i32,
                    y: crop.y as i32,
                    w: crop.width as i32,
                    h: crop.height as i32,
                };
                // SAFETY: the handle is live and has read the header, as cropping requires.
                handle.check(unsafe { tj::tj3SetCroppingRegion(handle.0, tjr) })?;
                Ok(crop)
            }
            _ => Ok(full),
        }
    }

    /// Decompresses the `covered` rectangle into samples of type `S`.
    fn decompress<S: Sample>(&self, covered: Rect, channels: usize) -> Result<Vec<S>, Error> {
        let (handle, header) = (&self.handle, &self.header);
        let format = if header.cmyk {
            tj::TJPF_TJPF_CMYK
        } else {
            tj::TJPF_TJPF_RGB
        };
        let pitch = covered.width * channels;
        let len = pitch.checked_mul(covered.height).ok_or_else(|| {
            corrupt(format!(
                "{}x{} pixels overflow",
                covered.width, covered.height
            ))
        })?;
        let mut data = try_zeroed::<S>(len, "the decoded JPEG")?;
        // What TurboJPEG writes, by its rules: `TJSCALED` of the header's size, or the cropping
        // region, or for a lossless file the full size whatever the factor (refused above).
        let (cols, rows) = if header.lossless {
            (header.width, header.height)
        } else {
            (covered.width, covered.height)
        };
        if rows * cols * channels != data.len() || pitch > i32::MAX as usize {
            return Err(corrupt(format!(
                "refusing to decode {cols}x{rows} pixels into a buffer for {}x{}",
                covered.width, covered.height
            )));
        }
        // SAFETY: `data` holds `rows` rows of `pitch` samples, the size TurboJPEG writes for the
        // scaling factor and cropping region `set_window` gave the handle (checked just above;
        // the tests decode lossless, 12-bit, cropped and scaled files, under valgrind too, and
        // the `jpeg` fuzz target under AddressSanitizer).
        let status = unsafe { S::decompress(handle, self.bytes, &mut data, pitch, format) };
        // A warning (corrupt but decodable data) is forgiven, as PIL forgives it; truncation is
        // refused before decoding when decoding is strict.
        // SAFETY: the handle is live.
        if status != 0 && unsafe { tj::tj3GetErrorCode(handle.0) } != tj::TJERR_TJERR_WARNING as i32
        {
            return Err(corrupt(handle.error()));
        }
        Ok(data)
    }
}

/// A decode failure about the file, to be labelled with its name by the caller.
pub(super) fn corrupt(msg: String) -> Error {
    Error::Image {
        path: String::new(),
        msg,
    }
}

/// Samples of `precision` bits (not 8) rescaled to 0-255, rounded to nearest.
fn to_8_bits<S: Sample>(samples: &[S], precision: u32) -> Vec<u8> {
    let max = (1u32 << precision) - 1;
    samples
        .iter()
        .map(|&v| ((v.widen().min(max) * 255 + max / 2) / max) as u8)
        .collect()
}

/// PIL's CMYK to RGB: `r = (255 - k) - c * (255 - k) / 255`, rounded as PIL's `MULDIV255`.
/// libjpeg returns the samples as stored. PIL reads every CMYK JPEG as Adobe writes them,
/// inverted (raw mode `CMYK;I`), whether or not the file has Adobe's APP14 segment; so does
/// this function.
fn cmyk_to_rgb(width: usize, height: usize, cmyk: &[u8]) -> Result<Image, Error> {
    let muldiv255 = |a: u32, b: u32| {
        let t = a * b + 128;
        ((t >> 8) + t) >> 8
    };
    let mut data = try_zeroed::<u8>(width * height * 3, "the decoded JPEG")?;
    for (px, out) in cmyk.chunks_exact(4).zip(data.chunks_exact_mut(3)) {
        let nk = u32::from(px[3]);
        for (&c, o) in px[..3].iter().zip(out) {
            *o = (nk - muldiv255(255 - u32::from(c), nk)) as u8;
        }
    }
    Ok(Image::from_rgb(width, height, data))
}

#[cfg(test)]
mod tests {
    use super::super::jpeg_encode::{codings, encode, pattern, Colorspace, EncodeOptions};
    use super::*;

    fn decode_full(bytes: &[u8]) -> Image {
        Decoder::new(bytes).unwrap().decode(1, None).unwrap().0
    }

    fn mean_abs(a: &[u8], b: &[u8]) -> f64 {
        assert_eq!(a.len(), b.len());
        let sum: u64 = a
            .iter()
            .zip(b)
            .map(|(&x, &y)| u64::from(x.abs_diff(y)))
            .sum();
        sum as f64 / a.len() as f64
    }

    #[test]
    fn cmyk_converts_as_pil_does() {
        // White paper, full black, and 50% cyan on no black, stored inverted as PIL reads
        // every CMYK JPEG.
        let plain = [0u8, 0, 0, 0, 0, 0, 0, 255, 128, 0, 0, 0];
        let inverted: Vec<u8> = plain.iter().map(|v| 255 - v).collect();
        let img = cmyk_to_rgb(3, 1, &inverted).unwrap();
        assert_eq!(img.data, [255, 255, 255, 0, 0, 0, 127, 255, 255]);
    }

    #[test]
    fn garbage_is_an_error_not_a_crash() {
        let err = Decoder::new(&[0xff, 0xd8, 0xff, 0xc0, 0, 3, 1, 2, 3])
            .err()
            .unwrap();
        assert!(err.starts_with("corrupt JPEG: "), "{err}");
        assert_eq!(scaled(427, 2), 214);
        assert_eq!(scaled(640, 8), 80);
    }

    #[test]
    fn lossless_files_decode_whole_at_every_precision() {
        let (w, h) = (67, 45);
        let px = pattern(w, h, 3);
        for precision in [2, 8, 12, 16] {
            let opts = EncodeOptions {
                lossless: true,
                precision,
                ..EncodeOptions::default()
            };
            let bytes = encode(&px, w, h, &opts).unwrap();
            let dec = Decoder::new(&bytes).unwrap();
            assert!(dec.header.lossless && !dec.header.scales());
            assert_eq!(dec.header.precision, precision);
            // A window cannot be cut from a lossless file: the whole image comes back, which
            // is what the buffer is sized for.
            let region = Rect {
                x: 20,
                y: 10,
                width: 16,
                height: 8,
            };
            let (img, covered) = dec.decode(1, Some(region)).unwrap();
            assert_eq!(
                covered,
                Rect {
                    x: 0,
                    y: 0,
                    width: w,
                    height: h
                }
            );
            assert_eq!((img.width, img.height, img.data.len()), (w, h, w * h * 3));
            if precision >= 8 {
                // Rescaled up to `precision` bits and back: the input again.
                assert_eq!(img.data, px, "lossless {precision}-bit");
            } else {
                assert!(
                    mean_abs(&img.data, &px) < 40.0,
                    "{precision}-bit {:?} {:?} {}",
                    &img.data[..12],
                    &px[..12],
                    mean_abs(&img.data, &px)
                );
            }
            let err = Decoder::new(&bytes).unwrap().decode(2, None).err().unwrap();
            assert!(err.to_string().contains("lossless"), "{err}");
        }
    }

    #[test]
    fn every_coding_decodes_close_to_its_pixels() {
        let (w, h) = (131, 77);
        // Lossless files are decoded exactly (above) and only at full scale.
        for (name, opts) in codings().into_iter().filter(|(_, o)| !o.lossless) {
            let cmyk = matches!(opts.colorspace, Colorspace::Cmyk | Colorspace::Ycck);
            let px = pattern(w, h, if cmyk { 4 } else { 3 });
            let bytes = encode(&px, w, h, &opts).unwrap();
            let img = decode_full(&bytes);
            let want = if opts.colorspace == Colorspace::Gray {
                px.iter().step_by(3).flat_map(|&v| [v, v, v]).collect()
            } else if cmyk {
                cmyk_to_rgb(w, h, &px).unwrap().data
            } else {
                px
            };
            let err = mean_abs(&img.data, &want);
            assert!(err < 6.0, "{name}: mean difference {err}");
            // Every scale and a cropped window stay inside their buffers (ASan checks this).
            for denom in [2, 4, 8] {
                let (img, covered) = Decoder::new(&bytes).unwrap().decode(denom, None).unwrap();
                assert_eq!(
                    (img.width, img.height),
                    (scaled(w, denom), scaled(h, denom)),
                    "{name}"
                );
                assert_eq!(covered.width * covered.height * 3, img.data.len());
                let region = Rect {
                    x: 5,
                    y: 3,
                    width: 4,
                    height: 5,
                };
                let (img, covered) = Decoder::new(&bytes)
                    .unwrap()
                    .decode(denom, Some(region))
                    .unwrap();
                assert!(
                    covered.x <= 5 && covered.x + covered.width >= 9 && covered.y <= 3,
                    "{name}"
                );
                assert_eq!(covered.width * covered.height * 3, img.data.len(), "{name}");
            }
        }
    }
}
