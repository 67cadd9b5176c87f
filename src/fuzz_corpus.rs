//! Every file of the fuzz corpora (`fuzz/corpus/<target>/`: the seeds, and each input a
//! fuzzing run found a crash with, saved there as a regression) through its target's harness,
//! the code the fuzz targets run (`fuzz/fuzz_targets/harness.rs`, included here). A file that
//! crashes the harness fails this test, or takes the test binary down with it.

#[path = "../fuzz/fuzz_targets/harness.rs"]
mod harness;

use std::path::Path;

#[test]
fn every_corpus_file_runs_through_its_target() {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
    type Harness = fn(&[u8]);
    let targets: [(&str, Harness); 8] = [
        ("jpeg", harness::image),
        ("png", harness::image),
        ("npy", harness::npy),
        ("idx", harness::idx),
        ("list", harness::list),
        ("coco", harness::coco),
        ("voc", harness::voc),
        ("shards", harness::shards),
    ];
    for (target, run) in targets {
        let files: Vec<_> = std::fs::read_dir(corpus.join(target))
            .unwrap_or_else(|e| panic!("{target}: {e}"))
            .map(|entry| entry.unwrap().path())
            .collect();
        assert!(!files.is_empty(), "no corpus for {target}");
        for path in files {
            run(&std::fs::read(&path).unwrap());
        }
    }
}
