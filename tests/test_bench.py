"""The benchmark command runs end to end (its figures are not checked: it is no timed test)."""

from q2l.bench.__main__ import main


def test_loss_benchmark_quick_mode_runs(capsys):
    assert main(["loss", "--quick", "--preset", "query2label", "--compile", "aot_eager"]) == 0
    out = capsys.readouterr().out
    assert "preset 'query2label'" in out and "(128, 1000)" in out
    assert "CSL partial-label loss" in out and "ignore_normalize_classes" in out


def test_metrics_benchmark_quick_mode_runs(capsys):
    assert main(["metrics", "--quick"]) == 0
    assert "shape (2000, 40)" in capsys.readouterr().out


def test_head_benchmark_quick_mode_runs(capsys):
    assert main(["head", "--quick", "--compile", "aot_eager"]) == 0
    out = capsys.readouterr().out
    assert "2, 4x4" in out
    assert "Group decoding" in out and "K=30 over K=8" in out


def test_data_benchmark_quick_mode_runs(capsys):
    assert main(["data", "--quick", "--workers", "1"]) == 0
    out = capsys.readouterr().out
    assert "decode only" in out and "training 64 (resize, Cutout, RandAugment)" in out
    assert "photographs 1024x768" in out and "training 32 (RandomResizedCrop, flip)" in out


def test_data_profile_quick_mode_runs(capsys):
    assert main(["data", "--profile", "--quick", "--workers", "1"]) == 0
    out = capsys.readouterr().out
    assert "decode-bound limit" in out and "hand-over" in out
    for recipe in ("validation 64", "training 64", "training 32 (RandomResizedCrop"):
        assert recipe in out
    # The loader's own stages were counted: its decode column is not zero.
    decode = [line.split() for line in out.splitlines() if line.startswith("decode ")]
    assert decode and all(float(row[-1]) > 0 for row in decode)


def test_speed_benchmark_quick_mode_runs_under_load(capsys):
    assert main(["speed", "--quick", "--busy", "--compile", "aot_eager"]) == 0
    out = capsys.readouterr().out
    assert "one other process spinning" in out and "cores available" in out
    for row in (
        "training step vs official eager",
        "vs official compiled",
        "vs numpy vectorised",
        "vs the official module",
    ):
        assert row in out
