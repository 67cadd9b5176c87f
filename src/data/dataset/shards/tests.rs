use super::writer::{write_shards, ShardLayout};
use super::*;
use crate::data::dataset::fixture::TempDir;
use crate::data::dataset::from_memory;

/// `n` 2x2 grey images whose pixels hold their index; targets: "odd", and "third" unknown
/// for every third image.
pub(crate) fn memory(n: usize) -> Dataset {
    let pixels: Vec<u8> = (0..n).flat_map(|i| [i as u8; 4]).collect();
    let targets: Vec<i8> = (0..n)
        .flat_map(|i| [(i % 2) as i8, if i % 3 == 0 { -1 } else { 1 }])
        .collect();
    from_memory(
        pixels,
        [n, 2, 2, 1],
        targets,
        vec!["odd".into(), "third".into()],
    )
    .unwrap()
}

pub(crate) fn layout(samples_per_shard: usize) -> ShardLayout {
    ShardLayout {
        prefix: "train".into(),
        samples_per_shard,
        max_shard_bytes: u64::MAX,
    }
}

pub(crate) fn classes() -> Vec<String> {
    vec!["odd".into(), "third".into()]
}

/// A shard built member by member: `(name, bytes)`.
fn tar(dir: &TempDir, name: &str, members: &[(&str, &[u8])]) -> String {
    let path = dir.path().join(name);
    let mut b = tar::Builder::new(std::fs::File::create(&path).unwrap());
    for (member, data) in members {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        b.append_data(&mut h, member, *data).unwrap();
    }
    b.finish().unwrap();
    path.display().to_string()
}

fn err(r: Result<Dataset>) -> String {
    r.err().expect("an error").to_string()
}

#[test]
fn braces_expand_like_the_shell() {
    assert_eq!(
        expand_braces("a-{000..002}.tar").unwrap(),
        ["a-000.tar", "a-001.tar", "a-002.tar"]
    );
    assert_eq!(
        expand_braces("{x,y}-{8..9}").unwrap(),
        ["x-8", "x-9", "y-8", "y-9"]
    );
    assert_eq!(expand_braces("{a,b{1,2}}").unwrap(), ["a", "b1", "b2"]);
    assert_eq!(expand_braces("plain.tar").unwrap(), ["plain.tar"]);
    for (bad, says) in [
        ("{3..1}", "backwards"),
        ("a{b", "without"),
        ("a}b", "without"),
        ("{1..x}", "range of integers"),
        ("{only}", "neither a list"),
        ("{0..99999999}", "more than"),
    ] {
        let e = expand_braces(bad).err().unwrap().to_string();
        assert!(e.contains(says), "{bad}: {e}");
    }
}

#[test]
fn written_shards_read_back_the_same() {
    let dir = TempDir::new();
    let source = memory(10);
    let written = write_shards(&source, dir.path(), &layout(4)).unwrap();
    assert_eq!(written.len(), 3, "10 samples at 4 per shard");
    let classes = read_classes(&dir.path().join("classes.txt")).unwrap();
    assert_eq!(classes, ["odd", "third"]);
    let pattern = dir.path().join("train-{000000..000002}.tar");
    let d = shards(&[pattern.display().to_string()], classes, OnError::Raise).unwrap();
    assert_eq!(d.targets(), source.targets());
    let s = d.shards().unwrap();
    assert_eq!(s.spans(), [0..4, 4..8, 8..10]);
    assert!(
        d.name(5).ends_with("train-000001.tar:000005.png"),
        "{}",
        d.name(5)
    );
    for i in 0..10 {
        assert_eq!(d.load(i).unwrap().image, source.load(i).unwrap().image);
    }
    // A byte budget cuts shards too: each sample here is about 1.2 KiB of tar.
    let by_bytes = ShardLayout {
        max_shard_bytes: 2500,
        ..layout(100)
    };
    assert_eq!(
        write_shards(&source, &dir.path().join("b"), &by_bytes)
            .unwrap()
            .len(),
        5
    );
}

#[test]
fn bad_shards_name_shard_and_member_or_are_skipped() {
    let dir = TempDir::new();
    let png = crate::data::decode::encode_png(&memory(1).load(0).unwrap().image).unwrap();
    let good: &[(&str, &[u8])] = &[("a.png", &png), ("a.json", b"[\"odd\"]")];
    let read = |members: &[(&str, &[u8])], on_error| {
        let path = tar(&dir, "s.tar", members);
        shards(&[path], classes(), on_error)
    };
    for (members, says) in [
        (&[("a.png", &png[..])][..], "s.tar:a: no labels"),
        (&[("a.json", &b"[0]"[..])][..], "s.tar:a: no image member"),
        (
            &[("a.png", &png[..]), ("a.json", &b"[\"cat\"]"[..])][..],
            "unknown class \"cat\"",
        ),
        (
            &[("a.png", &png[..]), ("a.cls", &b"2"[..])][..],
            "class index 2 is out of range",
        ),
        (
            &[("a.png", &png[..]), ("a.cls", &b"x"[..])][..],
            "\"x\" is not a class index",
        ),
        (
            &[("a.png", &png[..]), ("a.json", &b"{\"k\": 1}"[..])][..],
            "an object with \"labels\"",
        ),
    ] {
        let e = err(read(members, OnError::Raise));
        assert!(e.contains(says) && e.contains("s.tar"), "{says}: {e}");
    }
    let d = read(
        &[good, &[("b.png", &png[..])], good].concat()[..2 + 1],
        OnError::Skip,
    )
    .unwrap();
    assert_eq!((d.len(), d.shards().unwrap().skipped().len()), (1, 1));
    // Truncated: the second sample's image is cut short.
    let two = [good, &[("b.png", &png[..]), ("b.cls", &b"0 1"[..])]].concat();
    let path = tar(&dir, "t.tar", &two);
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..512 * 5 + 10]).unwrap();
    let e = err(shards(
        std::slice::from_ref(&path),
        classes(),
        OnError::Raise,
    ));
    assert!(e.contains("truncated shard") && e.contains("b.png"), "{e}");
    let d = shards(&[path], classes(), OnError::Skip).unwrap();
    assert_eq!(d.len(), 1);
    assert!(d.shards().unwrap().skipped()[0].1.contains("truncated"));
    // Not a tar at all.
    let junk = dir.write("junk.tar", &"x".repeat(1500));
    assert!(err(shards(
        &[junk.display().to_string()],
        classes(),
        OnError::Raise
    ))
    .contains("not a readable tar"));
}

#[test]
fn gnu_and_pax_long_names_are_read() {
    // The fuzz seeds, written by Python's tarfile in each format (first byte: the harness's).
    let corpus = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/shards");
    let names = vec!["cat".into(), "dog".into(), "bird".into()];
    for (seed, samples) in [
        ("ustar_json_0", 2),
        ("gnu_longname_0", 1),
        ("pax_path_0", 1),
    ] {
        let bytes = std::fs::read(corpus.join(seed)).unwrap();
        let found = index_bytes(&bytes[1..], names.clone(), OnError::Raise);
        assert_eq!(found.ok(), Some(samples), "{seed}");
    }
}
