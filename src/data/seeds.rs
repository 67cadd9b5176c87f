//! The fuzz targets' seed corpora, written by a test so that every seed can be made again:
//! `Q2L_SEED_CORPUS=fuzz/corpus cargo test --release --lib write_seed_corpus -- --ignored`
//! (with `LD_LIBRARY_PATH` at torch's lib, as for every Rust test).
//!
//! Image seeds start with the 8 window bytes the `jpeg` and `png` targets read
//! (`fuzz/fuzz_targets/window.rs`), then the file.

use std::io::Write;
use std::path::Path;

use super::jpeg_encode::{codings, encode, pattern, Colorspace};

/// Flags (strict, DCT scaling), output 64x48, window from 1/8 in, 3/4 of the image.
const WINDOW: [u8; 8] = [0b10, 63, 0, 47, 0, 32, 32, 192];

fn write(dir: &Path, target: &str, name: &str, bytes: &[u8]) {
    let folder = dir.join(target);
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::write(folder.join(name), bytes).unwrap();
}

fn jpeg_seeds(dir: &Path) {
    for (name, opts) in codings() {
        let channels = if matches!(opts.colorspace, Colorspace::Cmyk | Colorspace::Ycck) {
            4
        } else {
            3
        };
        // Small (fast to fuzz) and odd-sized (partial iMCUs at both edges).
        let jpeg = encode(&pattern(45, 29, channels), 45, 29, &opts).unwrap();
        write(
            dir,
            "jpeg",
            &format!("{name}.jpg"),
            &[&WINDOW[..], &jpeg].concat(),
        );
    }
}

/// A PNG of `rows` already filtered (each starting with its filter byte), written by hand so
/// that any header, interlaced ones included, can be made.
fn png_by_hand(
    width: u32,
    height: u32,
    depth: u8,
    color: u8,
    interlaced: bool,
    rows: &[u8],
) -> Vec<u8> {
    fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        let start = out.len();
        out.extend_from_slice(kind);
        out.extend_from_slice(data);
        let crc = crc32(&out[start..]);
        out.extend_from_slice(&crc.to_be_bytes());
    }
    fn crc32(bytes: &[u8]) -> u32 {
        let mut crc = !0u32;
        for &b in bytes {
            crc ^= u32::from(b);
            for _ in 0..8 {
                crc = if crc & 1 == 1 {
                    (crc >> 1) ^ 0xedb8_8320
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&width.to_be_bytes());
    ihdr.extend_from_slice(&height.to_be_bytes());
    ihdr.extend_from_slice(&[depth, color, 0, 0, interlaced as u8]);
    chunk(&mut out, b"IHDR", &ihdr);
    if color == 3 {
        let palette: Vec<u8> = (0..16u8)
            .flat_map(|i| [i * 16, 255 - i * 16, i * 7])
            .collect();
        chunk(&mut out, b"PLTE", &palette);
    }
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    z.write_all(rows).unwrap();
    chunk(&mut out, b"IDAT", &z.finish().unwrap());
    chunk(&mut out, b"IEND", &[]);
    out
}

fn png_seeds(dir: &Path) {
    let (w, h) = (13u32, 9u32);
    // Unfiltered rows of `bytes_per_row` bytes, values from the pattern.
    let rows = |bytes_per_row: usize, rows: u32| -> Vec<u8> {
        let px = pattern(bytes_per_row, rows as usize, 3);
        let mut out = Vec::new();
        for row in px.chunks_exact(bytes_per_row * 3) {
            out.push(0); // filter: none
            out.extend(row.iter().step_by(3));
        }
        out
    };
    let plain = [
        ("rgb8", 8, 2, 3 * w as usize),
        ("rgb16", 16, 2, 6 * w as usize),
        ("rgba8", 8, 6, 4 * w as usize),
        ("gray-alpha16", 16, 4, 4 * w as usize),
        ("gray1", 1, 0, (w as usize).div_ceil(8)),
        ("palette4", 4, 3, (w as usize).div_ceil(2)),
    ];
    for (name, depth, color, bpr) in plain {
        let png = png_by_hand(w, h, depth, color, false, &rows(bpr, h));
        write(
            dir,
            "png",
            &format!("{name}.png"),
            &[&WINDOW[..], &png].concat(),
        );
    }
    // Adam7: the seven passes' sub-images, one after another (8-bit RGB).
    let passes = [
        (0, 0, 8, 8),
        (4, 0, 8, 8),
        (0, 4, 4, 8),
        (2, 0, 4, 4),
        (0, 2, 2, 4),
        (1, 0, 2, 2),
        (0, 1, 1, 2),
    ];
    let mut data = Vec::new();
    for (x0, y0, dx, dy) in passes {
        let (pw, ph) = (
            (w as usize).saturating_sub(x0).div_ceil(dx),
            (h as usize).saturating_sub(y0).div_ceil(dy),
        );
        if pw > 0 && ph > 0 {
            data.extend(rows(3 * pw, ph as u32));
        }
    }
    let png = png_by_hand(w, h, 8, 2, true, &data);
    write(dir, "png", "interlaced.png", &[&WINDOW[..], &png].concat());
}

fn npy_seeds(dir: &Path) {
    let npy = super::npy::write;
    let f4: Vec<u8> = (0..12)
        .flat_map(|i| (i as f32 * 0.5).to_le_bytes())
        .collect();
    write(dir, "npy", "f4.npy", &npy("<f4", false, "(3, 4)", &f4));
    write(
        dir,
        "npy",
        "f4-fortran.npy",
        &npy("<f4", true, "(3, 4)", &f4),
    );
    write(
        dir,
        "npy",
        "f8-big.npy",
        &npy(">f8", false, "(2, 3)", &f4[..48]),
    );
    write(
        dir,
        "npy",
        "f2.npy",
        &npy("<f2", false, "(2, 2, 2)", &f4[..16]),
    );
    write(dir, "npy", "scalar.npy", &npy("<f4", false, "()", &f4[..4]));
    let mut v2 = npy("<f4", false, "(4,)", &f4[..16]);
    v2.splice(6..10, [2, 0, v2[8], v2[9], 0, 0]);
    write(dir, "npy", "version2.npy", &v2);
}

fn dataset_seeds(dir: &Path) {
    write(
        dir,
        "list",
        "labels.csv",
        b"image,labels,unknown\na.jpg,cat|dog,\nb.jpg,,bird\n\"c d.jpg\",dog,cat\n",
    );
    write(dir, "list", "labels.jsonl", b"{\"image\": \"a.jpg\", \"labels\": [\"cat\"], \"unknown\": [\"dog\"]}\n{\"image\": \"b.jpg\", \"labels\": []}\n");
    write(
        dir,
        "coco",
        "instances.json",
        br#"{"images": [{"id": 1, "file_name": "a.jpg"}, {"id": 2, "file_name": "b.jpg"}],
"annotations": [{"image_id": 1, "category_id": 3}, {"image_id": 1, "category_id": 1}],
"categories": [{"id": 1, "name": "person"}, {"id": 3, "name": "car"}]}"#,
    );
    write(
        dir,
        "voc",
        "annotation.xml",
        b"<annotation><filename>a.jpg</filename><object><name>dog</name><difficult>0</difficult></object>\
<object><name>person</name><difficult>1</difficult></object></annotation>",
    );
    let idx: Vec<u8> = [0u8, 0, 8, 2, 0, 0, 0, 2, 0, 0, 0, 3, 1, 2, 3, 4, 5, 6].to_vec();
    write(dir, "idx", "plain.idx", &idx);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&idx).unwrap();
    write(dir, "idx", "gzip.idx", &gz.finish().unwrap());
}

#[test]
#[ignore = "writes the seed corpora when asked (see the module's documentation)"]
fn write_seed_corpus() {
    let Ok(dir) = std::env::var("Q2L_SEED_CORPUS") else {
        panic!("set Q2L_SEED_CORPUS to the corpus folder (fuzz/corpus)");
    };
    let dir = Path::new(&dir);
    jpeg_seeds(dir);
    png_seeds(dir);
    npy_seeds(dir);
    dataset_seeds(dir);
}

#[test]
fn every_seed_image_decodes() {
    // The seeds must be valid files: the fuzzer learns most from mutating what decodes.
    let dir = std::env::temp_dir().join(format!("q2l-seeds-{}", std::process::id()));
    jpeg_seeds(&dir);
    png_seeds(&dir);
    let opts = super::decode::DecodeOptions::default();
    for target in ["jpeg", "png"] {
        for entry in std::fs::read_dir(dir.join(target)).unwrap() {
            let path = entry.unwrap().path();
            let bytes = std::fs::read(&path).unwrap();
            let decoded = super::decode::decode(&bytes[WINDOW.len()..], "seed", &opts);
            assert!(decoded.is_ok(), "{}: {:?}", path.display(), decoded.err());
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
