//! JPEG encoding through TurboJPEG, for the tests, the fuzz corpus and the benchmarks: every
//! coding the decoder must read can be written (baseline and progressive, Huffman and
//! arithmetic, lossless, 12-bit, restart markers, each chroma subsampling, greyscale, CMYK and
//! YCCK), so no test depends on files from elsewhere.

use turbojpeg_sys as tj;

use crate::bail;
use crate::error::Result;

/// The colour space written to the file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Colorspace {
    /// RGB pixels stored as YCbCr, as cameras write them.
    #[default]
    YCbCr,
    /// One grey channel (the input's first channel).
    Gray,
    /// CMYK pixels stored as they are (4 input channels).
    Cmyk,
    /// CMYK pixels stored as YCCK, as Adobe writes them (4 input channels).
    Ycck,
}

/// How to encode; `Default` is a baseline 4:2:0 file at quality 90.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EncodeOptions {
    /// 1 to 100 (ignored when lossless).
    pub quality: i32,
    /// A `TJSAMP_*` chroma subsampling (ignored when lossless).
    pub subsampling: tj::TJSAMP,
    pub colorspace: Colorspace,
    pub progressive: bool,
    /// Arithmetic instead of Huffman entropy coding.
    pub arithmetic: bool,
    /// Lossless (SOF3), with predictor 1 and no point transform.
    pub lossless: bool,
    /// Bits per sample: 8 or 12, or 2 to 16 when lossless. The 8-bit input is rescaled to it.
    pub precision: u32,
    /// A restart marker every this many MCU rows (0: none).
    pub restart_rows: i32,
}

impl Default for EncodeOptions {
    fn default() -> Self {
        EncodeOptions {
            quality: 90,
            subsampling: tj::TJSAMP_TJSAMP_420,
            colorspace: Colorspace::YCbCr,
            progressive: false,
            arithmetic: false,
            lossless: false,
            precision: 8,
            restart_rows: 0,
        }
    }
}

/// Every coding the decoder must read, named: baseline and each chroma subsampling, greyscale,
/// progressive, arithmetic, restart markers, 12-bit, lossless at 4 to 16 bits, CMYK and YCCK.
pub fn codings() -> Vec<(&'static str, EncodeOptions)> {
    let base = EncodeOptions::default();
    vec![
        ("baseline-420", base),
        (
            "444",
            EncodeOptions {
                subsampling: tj::TJSAMP_TJSAMP_444,
                ..base
            },
        ),
        (
            "422",
            EncodeOptions {
                subsampling: tj::TJSAMP_TJSAMP_422,
                ..base
            },
        ),
        (
            "411",
            EncodeOptions {
                subsampling: tj::TJSAMP_TJSAMP_411,
                ..base
            },
        ),
        (
            "440",
            EncodeOptions {
                subsampling: tj::TJSAMP_TJSAMP_440,
                ..base
            },
        ),
        (
            "441",
            EncodeOptions {
                subsampling: tj::TJSAMP_TJSAMP_441,
                ..base
            },
        ),
        (
            "gray",
            EncodeOptions {
                colorspace: Colorspace::Gray,
                ..base
            },
        ),
        (
            "progressive",
            EncodeOptions {
                progressive: true,
                ..base
            },
        ),
        (
            "arithmetic",
            EncodeOptions {
                arithmetic: true,
                ..base
            },
        ),
        (
            "arithmetic-progressive",
            EncodeOptions {
                arithmetic: true,
                progressive: true,
                ..base
            },
        ),
        (
            "restart",
            EncodeOptions {
                restart_rows: 1,
                ..base
            },
        ),
        (
            "12bit",
            EncodeOptions {
                precision: 12,
                ..base
            },
        ),
        (
            "12bit-progressive",
            EncodeOptions {
                precision: 12,
                progressive: true,
                ..base
            },
        ),
        (
            "lossless",
            EncodeOptions {
                lossless: true,
                ..base
            },
        ),
        (
            "lossless-4bit",
            EncodeOptions {
                lossless: true,
                precision: 4,
                ..base
            },
        ),
        (
            "lossless-12bit",
            EncodeOptions {
                lossless: true,
                precision: 12,
                ..base
            },
        ),
        (
            "lossless-16bit",
            EncodeOptions {
                lossless: true,
                precision: 16,
                ..base
            },
        ),
        (
            "cmyk",
            EncodeOptions {
                colorspace: Colorspace::Cmyk,
                ..base
            },
        ),
        (
            "ycck",
            EncodeOptions {
                colorspace: Colorspace::Ycck,
                ..base
            },
        ),
    ]
}

/// One TurboJPEG compressor, destroyed on drop.
struct Compressor(tj::tjhandle);

impl Drop for Compressor {
    fn drop(&mut self) {
        // SAFETY: the handle came from tj3Init and is destroyed once.
        unsafe { tj::tj3Destroy(self.0) }
    }
}

impl Compressor {
    fn set(&self, param: tj::TJPARAM, value: i32) -> Result<()> {
        // SAFETY: the handle is live; TurboJPEG range-checks the value.
        if unsafe { tj::tj3Set(self.0, param as i32, value) } != 0 {
            bail!("TurboJPEG refused parameter {param} = {value}");
        }
        Ok(())
    }
}

/// Encodes `pixels`, `height` rows of `width` pixels of 3 (RGB; grey takes the first) or 4
/// (CMYK, YCCK) interleaved 8-bit channels, as `opts` says.
pub fn encode(pixels: &[u8], width: usize, height: usize, opts: &EncodeOptions) -> Result<Vec<u8>> {
    let channels = match opts.colorspace {
        Colorspace::Cmyk | Colorspace::Ycck => 4,
        _ => 3,
    };
    if width == 0 || height == 0 || pixels.len() != width * height * channels {
        bail!(
            "encode: {} bytes are not {width}x{height} pixels of {channels} channels",
            pixels.len()
        );
    }
    let (format, samples): (tj::TJPF, Vec<u8>) = match opts.colorspace {
        Colorspace::Gray => (
            tj::TJPF_TJPF_GRAY,
            pixels.iter().step_by(3).copied().collect(),
        ),
        Colorspace::YCbCr => (tj::TJPF_TJPF_RGB, pixels.to_vec()),
        _ => (tj::TJPF_TJPF_CMYK, pixels.to_vec()),
    };
    let pitch = samples.len() / height;
    // SAFETY: tj3Init has no preconditions; a null handle is checked.
    let h = unsafe { tj::tj3Init(tj::TJINIT_TJINIT_COMPRESS as libc::c_int) };
    if h.is_null() {
        bail!("libjpeg-turbo could not allocate a compressor");
    }
    let c = Compressor(h);
    let subsamp = match opts.colorspace {
        Colorspace::Gray => tj::TJSAMP_TJSAMP_GRAY,
        _ => opts.subsampling,
    };
    c.set(tj::TJPARAM_TJPARAM_QUALITY, opts.quality)?;
    c.set(tj::TJPARAM_TJPARAM_SUBSAMP, subsamp)?;
    if let Colorspace::Cmyk | Colorspace::Ycck = opts.colorspace {
        let cs = if opts.colorspace == Colorspace::Cmyk {
            tj::TJCS_TJCS_CMYK
        } else {
            tj::TJCS_TJCS_YCCK
        };
        c.set(tj::TJPARAM_TJPARAM_COLORSPACE, cs as i32)?;
    }
    c.set(tj::TJPARAM_TJPARAM_PROGRESSIVE, opts.progressive as i32)?;
    c.set(tj::TJPARAM_TJPARAM_ARITHMETIC, opts.arithmetic as i32)?;
    c.set(tj::TJPARAM_TJPARAM_LOSSLESS, opts.lossless as i32)?;
    c.set(tj::TJPARAM_TJPARAM_PRECISION, opts.precision as i32)?;
    c.set(tj::TJPARAM_TJPARAM_RESTARTROWS, opts.restart_rows)?;
    // The 8-bit input rescaled to the precision's range (for 8 bits, unchanged).
    let max = (1u32 << opts.precision.clamp(2, 16)) - 1;
    let widen = |v: &u8| ((u32::from(*v) * max + 127) / 255) as u16;
    let (mut out, mut size): (*mut u8, tj::size_t) = (std::ptr::null_mut(), 0);
    let (w, p, ht) = (width as i32, pitch as i32, height as i32);
    // SAFETY: each source buffer holds `height` rows of `pitch` samples; TurboJPEG allocates
    // `out` (freed below with tj3Free) and sets `size`.
    let status = unsafe {
        match opts.precision {
            ..=8 => {
                let narrow: Vec<u8> = samples.iter().map(|v| widen(v) as u8).collect();
                tj::tj3Compress8(h, narrow.as_ptr(), w, p, ht, format, &mut out, &mut size)
            }
            9..=12 => {
                let wide: Vec<i16> = samples.iter().map(|v| widen(v) as i16).collect();
                tj::tj3Compress12(h, wide.as_ptr(), w, p, ht, format, &mut out, &mut size)
            }
            _ => {
                let wide: Vec<u16> = samples.iter().map(widen).collect();
                tj::tj3Compress16(h, wide.as_ptr(), w, p, ht, format, &mut out, &mut size)
            }
        }
    };
    let result = if status == 0 && !out.is_null() {
        // SAFETY: TurboJPEG wrote `size` bytes at `out`.
        Ok(unsafe { std::slice::from_raw_parts(out, size as usize) }.to_vec())
    } else {
        // SAFETY: the handle is live; the message is copied at once.
        let msg = unsafe { std::ffi::CStr::from_ptr(tj::tj3GetErrorStr(h)) };
        Err(crate::Error::value(format!(
            "encode: {}",
            msg.to_string_lossy()
        )))
    };
    // SAFETY: `out` is null or TurboJPEG's allocation, freed once.
    unsafe { tj::tj3Free(out.cast()) };
    result
}

/// A smooth colour picture with edges and fine texture, `channels` (3 or 4) interleaved: what
/// the tests and the fuzz corpus encode. Deterministic.
pub fn pattern(width: usize, height: usize, channels: usize) -> Vec<u8> {
    let mut px = Vec::with_capacity(width * height * channels);
    for y in 0..height {
        for x in 0..width {
            let (fx, fy) = (x as f64 / width as f64, y as f64 / height as f64);
            let ring = ((fx - 0.4).hypot(fy - 0.6) * 40.0).sin();
            let edge = if (x / 24 + y / 16) % 3 == 0 {
                60.0
            } else {
                0.0
            };
            let values = [
                200.0 * fx + 30.0 * ring + edge,
                180.0 * fy + 40.0 * (fx * 9.0).cos() + 20.0,
                120.0 + 90.0 * ring * fy - edge,
                255.0 * (1.0 - fx * fy),
            ];
            px.extend(values[..channels].iter().map(|v| v.clamp(0.0, 255.0) as u8));
        }
    }
    px
}
