//! What each fuzz target does with its input, one function per target. The targets call these,
//! and `cargo test` (src/fuzz_corpus.rs) runs every file of `fuzz/corpus/<target>/` through
//! the same function, so a crash a fuzzing run finds, saved there, stays a regression test.
//! Any error is fine; a panic, a crash, a hang or a sanitizer report is not.

// Each target binary uses one of these functions.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use q2l::data::dataset::{coco, idx, listfile, shards, voc};
use q2l::data::decode::{decode, decode_window, DecodeOptions};
use q2l::data::resize::Window;
use q2l::data::OnError;

/// Images (`jpeg`, `png`): 8 bytes choose the decode options and a window, then the file.
/// The window is placed from the image's own size, so every input asks for a valid crop and
/// resize, at whatever scale the decoder picks.
pub fn image(data: &[u8]) {
    let Some((head, file)) = data.split_first_chunk::<8>() else {
        return;
    };
    let opts = DecodeOptions {
        strict: head[0] & 1 == 1,
        dct_scaling: head[0] & 2 == 2,
        // Small enough to keep an iteration fast; the limit check itself is what is fuzzed.
        max_pixels: if head[0] & 4 == 4 { 1 << 22 } else { 1 << 16 },
    };
    let out_width = usize::from(u16::from_le_bytes([head[1], head[2]]) % 512) + 1;
    let out_height = usize::from(u16::from_le_bytes([head[3], head[4]]) % 512) + 1;
    let frac = |b: u8, of: usize| of * usize::from(b) / 256;
    let mut window = |w: usize, h: usize| {
        let (x, y) = (frac(head[5], w), frac(head[6], h));
        let (width, height) = (frac(head[7], w - x).max(1), frac(head[7], h - y).max(1));
        Window {
            x,
            y,
            width,
            height,
            out_width,
            out_height,
        }
    };
    let _ = decode_window(file, "fuzz", &opts, &mut window);
    if head[0] & 8 == 8 {
        let _ = decode(file, "fuzz", &opts);
    }
}

/// `.npy` label-embedding files: header dict, dtype, byte order, shape against the data.
pub fn npy(data: &[u8]) {
    let _ = q2l::data::npy::parse(data);
}

/// IDX (Fashion-MNIST) files, plain and gzip-compressed (a gzip bomb must be refused).
pub fn idx(data: &[u8]) {
    let _ = idx::parse_idx(data);
    let _ = idx::read_idx(&write("images.idx", data));
}

/// List files: the first byte picks CSV or JSON Lines and whether a label table is given.
pub fn list(data: &[u8]) {
    let Some((&pick, text)) = data.split_first() else {
        return;
    };
    let name = if pick & 1 == 0 {
        "list.csv"
    } else {
        "list.jsonl"
    };
    let path = write(name, text);
    let classes = (pick & 2 == 2).then(|| vec!["cat".into(), "dog".into(), "bird".into()]);
    let _ = listfile::list_file(&path, &scratch(), classes, '|');
}

/// COCO instances JSON.
pub fn coco(data: &[u8]) {
    let path = write("instances.json", data);
    for annotated_only in [false, true] {
        let _ = coco::coco(&path, &scratch(), annotated_only);
    }
}

/// WebDataset tar shards: the first byte picks raising or skipping; the rest is the shard.
/// Labels name the classes `cat`, `dog`, `bird` or index them.
pub fn shards(data: &[u8]) {
    let Some((&pick, shard)) = data.split_first() else {
        return;
    };
    let on_error = if pick & 1 == 0 {
        OnError::Raise
    } else {
        OnError::Skip
    };
    let classes = vec!["cat".into(), "dog".into(), "bird".into()];
    let _ = shards::index_bytes(shard, classes, on_error);
}

/// Pascal VOC annotation XML, read through a one-image split.
pub fn voc(data: &[u8]) {
    write("ImageSets/Main/fuzz.txt", b"a\n");
    write("Annotations/a.xml", data);
    let _ = voc::voc(&scratch(), "fuzz", voc::Difficult::Ignore);
}

/// The parsers that read files by path get this process's scratch folder (in memory where
/// Linux offers it; each thread its own, as `cargo test` runs several).
fn scratch() -> PathBuf {
    let shm = Path::new("/dev/shm");
    let base = if shm.is_dir() {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    };
    let thread = format!("{:?}", std::thread::current().id());
    let thread: String = thread.chars().filter(char::is_ascii_digit).collect();
    base.join(format!("q2l-fuzz-{}-{thread}", std::process::id()))
}

/// `name` under the scratch folder, holding `data`.
fn write(name: &str, data: &[u8]) -> PathBuf {
    let path = scratch().join(name);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).expect("scratch folder");
    }
    std::fs::write(&path, data).expect("scratch file");
    path
}
