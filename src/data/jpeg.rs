//! JPEG decoding with libjpeg-turbo through its TurboJPEG 3 API: the whole image, or only the
//! rows and iMCU columns a crop needs, at full size or scaled 1/2, 1/4 or 1/8 in the DCT domain.
//!
//! libjpeg-turbo is the decoder PIL and torchvision use, with the same defaults here (accurate
//! integer IDCT, fancy chroma upsampling), so a full-size decode gives PIL's pixels exactly.

use std::ffi::CStr;

use turbojpeg_sys as tj;

use super::image::Image;

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
    cmyk: bool,
    /// CMYK stored inverted, as Adobe writes it (an APP14 "Adobe" segment; PIL's `CMYK;I`).
    inverted: bool,
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
        Ok(Header {
            width: self.get(tj::TJPARAM_TJPARAM_JPEGWIDTH).max(0) as usize,
            height: self.get(tj::TJPARAM_TJPARAM_JPEGHEIGHT).max(0) as usize,
            mcu_width,
            cmyk,
            // Only CMYK needs it: no header walk for the other images.
            inverted: cmyk && has_adobe_segment(bytes),
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

    /// Decodes `region` of the image scaled by `1 / denom` (1, 2, 4 or 8; `region` in scaled
    /// pixels, `None` for all of it) to RGB. Returns the pixels and the rectangle they cover,
    /// which contains `region`: its left edge moves left to an iMCU column boundary, and where
    /// TurboJPEG cannot crop (an unnamed subsampling) the whole scaled image is returned.
    ///
    /// Greyscale comes out as three equal channels and CMYK is converted as PIL converts it,
    /// so a full-size decode equals PIL's `Image.open(path).convert("RGB")`.
    pub fn decode(self, denom: usize, region: Option<Rect>) -> Result<(Image, Rect), String> {
        let (handle, bytes, header) = (&self.handle, self.bytes, &self.header);
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
        let covered = match (region, header.mcu_width) {
            (Some(r), Some(mcu)) if r != full => {
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
                crop
            }
            _ => full,
        };
        let channels = if header.cmyk { 4 } else { 3 };
        let format = if header.cmyk {
            tj::TJPF_TJPF_CMYK
        } else {
            tj::TJPF_TJPF_RGB
        };
        let mut data = vec![0u8; covered.width * covered.height * channels];
        // SAFETY: `data` holds `covered.height` rows of `covered.width * channels` bytes, the
        // size TurboJPEG writes for this scaling factor and cropping region.
        let status = unsafe {
            tj::tj3Decompress8(
                handle.0,
                bytes.as_ptr(),
                bytes.len() as tj::size_t,
                data.as_mut_ptr(),
                (covered.width * channels) as i32,
                format,
            )
        };
        // A warning (corrupt but decodable data) is forgiven, as PIL forgives it; truncation is
        // refused before decoding when decoding is strict.
        // SAFETY: the handle is live.
        if status != 0 && unsafe { tj::tj3GetErrorCode(handle.0) } != tj::TJERR_TJERR_WARNING as i32
        {
            return Err(handle.error());
        }
        let image = if header.cmyk {
            cmyk_to_rgb(covered.width, covered.height, &data, header.inverted)
        } else {
            Image::from_rgb(covered.width, covered.height, data)
        };
        Ok((image, covered))
    }
}

/// PIL's CMYK to RGB: `r = (255 - k) - c * (255 - k) / 255`, rounded as PIL's `MULDIV255`.
/// libjpeg returns the samples as stored; Adobe's are inverted, so PIL (raw mode `CMYK;I`)
/// and this function invert them first.
fn cmyk_to_rgb(width: usize, height: usize, cmyk: &[u8], inverted: bool) -> Image {
    let muldiv255 = |a: u32, b: u32| {
        let t = a * b + 128;
        ((t >> 8) + t) >> 8
    };
    let flip = if inverted { 255 } else { 0 };
    let mut data = Vec::with_capacity(width * height * 3);
    for px in cmyk.chunks_exact(4) {
        let nk = 255 - (flip ^ u32::from(px[3]));
        for &c in &px[..3] {
            data.push((nk - muldiv255(flip ^ u32::from(c), nk)) as u8);
        }
    }
    Image::from_rgb(width, height, data)
}

/// Whether the segments before the first scan include an APP14 segment that starts "Adobe".
fn has_adobe_segment(b: &[u8]) -> bool {
    let mut i = 2; // after SOI
    while i + 4 <= b.len() && b[i] == 0xff {
        let marker = b[i + 1];
        if marker == 0xda {
            return false;
        }
        let len = usize::from(u16::from_be_bytes([b[i + 2], b[i + 3]]));
        if marker == 0xee && b.get(i + 4..i + 9) == Some(b"Adobe") {
            return true;
        }
        i += 2 + len;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_adobe_segment_before_the_first_scan() {
        let app14 = [0xff, 0xee, 0, 7, b'A', b'd', b'o', b'b', b'e'];
        let mut b = vec![0xff, 0xd8, 0xff, 0xe0, 0, 4, 0, 0];
        assert!(!has_adobe_segment(&b));
        b.extend_from_slice(&app14);
        assert!(has_adobe_segment(&b));
        let mut late = vec![0xff, 0xd8, 0xff, 0xda, 0, 2];
        late.extend_from_slice(&app14);
        assert!(
            !has_adobe_segment(&late),
            "after the scan it is not a header segment"
        );
    }

    #[test]
    fn cmyk_converts_as_pil_does() {
        // White paper, full black, and 50% cyan on no black; Adobe files store them inverted.
        let plain = [0, 0, 0, 0, 0, 0, 0, 255, 128, 0, 0, 0];
        let img = cmyk_to_rgb(3, 1, &plain, false);
        assert_eq!(img.data, [255, 255, 255, 0, 0, 0, 127, 255, 255]);
        let inverted: Vec<u8> = plain.iter().map(|v| 255 - v).collect();
        assert_eq!(cmyk_to_rgb(3, 1, &inverted, true), img);
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
}
