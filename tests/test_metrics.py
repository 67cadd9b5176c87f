"""Multi-label metrics: parity with scikit-learn, torchmetrics and reference formulas."""

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from q2l.metrics import (
    MultilabelMetrics,
    average_precision,
    best_f1_thresholds,
    mean_average_precision,
    threshold_metrics,
    topk_metrics,
)

sklearn_metrics = pytest.importorskip("sklearn.metrics")


def _data(n, c, seed=0, ties=False, partial=False, rate=0.2):
    rng = np.random.default_rng(seed)
    scores = rng.standard_normal((n, c))
    if ties:
        scores = np.round(scores, 1)
    targets = (rng.random((n, c)) < rate).astype(np.int64)
    targets[0] = 1  # every class has a positive
    if partial:
        mask = rng.random((n, c)) < 0.15
        mask[0] = False
        targets[mask] = -1
    return scores, targets


def _ranked(s, t):
    keep = t != -1
    s, t = torch.as_tensor(s[keep]), torch.as_tensor(t[keep])
    order = torch.sort(s, descending=True, stable=True).indices
    return t[order].double()


def reference_noninterpolated(s, t):
    labels = _ranked(s, t)
    tp = torch.cumsum(labels, 0)
    ranks = torch.arange(1, len(labels) + 1, dtype=torch.float64)
    return float((tp / ranks)[labels == 1].mean())


def reference_voc(s, t):
    labels = _ranked(s, t)
    tp = torch.cumsum(labels, 0)
    precision = tp / torch.arange(1, len(labels) + 1, dtype=torch.float64)
    envelope = torch.flip(torch.cummax(torch.flip(precision, [0]), 0).values, [0])
    return float(envelope[labels == 1].mean())


@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("partial", [False, True])
def test_step_definition_matches_sklearn_to_1e12(ties, partial):
    s, t = _data(500, 23, ties=ties, partial=partial)
    ours = average_precision(s, t, definition="step")
    for c in range(t.shape[1]):
        keep = t[:, c] != -1
        expected = sklearn_metrics.average_precision_score(t[keep, c], s[keep, c])
        assert abs(ours[c].item() - expected) < 1e-12, c


@pytest.mark.parametrize(
    "definition, reference", [("voc", reference_voc), ("noninterpolated", reference_noninterpolated)]
)
@pytest.mark.parametrize("ties", [False, True])
def test_voc_and_noninterpolated_match_their_formulas(definition, reference, ties):
    s, t = _data(400, 17, seed=3, ties=ties, partial=True)
    ours = average_precision(s, t, definition=definition)
    for c in range(t.shape[1]):
        assert abs(ours[c].item() - reference(s[:, c], t[:, c])) < 1e-12, c


def test_matches_torchmetrics_when_installed():
    tm = pytest.importorskip("torchmetrics.classification")
    s, t = _data(300, 12, seed=5, ties=True, partial=True)
    metric = tm.MultilabelAveragePrecision(num_labels=12, average=None, ignore_index=-1)
    expected = metric(torch.as_tensor(s), torch.as_tensor(t)).double()
    torch.testing.assert_close(average_precision(s, t, definition="step"), expected, rtol=1e-5, atol=1e-6)


def test_hand_computed_ties_and_interpolation():
    s = np.array([[0.9, 0.9], [0.9, 0.8], [0.1, 0.7]])
    t = np.array([[1, 0], [0, 1], [1, 1]])
    step = average_precision(s, t, definition="step")
    assert step[0].item() == pytest.approx(0.5 * 0.5 + 0.5 * 2 / 3, abs=1e-15)
    ni = average_precision(s, t, definition="noninterpolated")
    assert ni[0].item() == pytest.approx((1 + 2 / 3) / 2, abs=1e-15)
    assert ni[1].item() == pytest.approx((1 / 2 + 2 / 3) / 2, abs=1e-15)
    assert average_precision(s, t, definition="voc")[1].item() == pytest.approx(2 / 3, abs=1e-15)


def test_classes_without_positives_follow_the_policy():
    s, t = _data(50, 4)
    t[:, 2] = 0
    assert math.isnan(average_precision(s, t)[2].item())
    assert math.isnan(mean_average_precision(s, t, empty="nan"))
    assert average_precision(s, t, empty="zero")[2].item() == 0.0
    aps = average_precision(s, t)
    others = torch.cat([aps[:2], aps[3:]])
    assert mean_average_precision(s, t, empty="skip") == pytest.approx(float(others.mean()))
    assert mean_average_precision(s, t, empty="zero") == pytest.approx(float(others.sum() / 4))


def test_ignored_targets_equal_dropping_the_samples():
    s, t = _data(200, 1, partial=True)
    keep = t[:, 0] != -1
    for definition in ("voc", "noninterpolated", "step"):
        assert average_precision(s, t, definition=definition).item() == pytest.approx(
            average_precision(s[keep], t[keep], definition=definition).item(), abs=1e-15
        )


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
@pytest.mark.parametrize("target_dtype", [np.bool_, np.int8, np.int64, np.float32])
def test_input_dtypes_and_containers(dtype, target_dtype):
    s, t = _data(120, 9, seed=1)
    s = s.astype(dtype)
    expected = average_precision(s.astype(np.float64), t)
    t_cast = t.astype(target_dtype)
    np_result = average_precision(s, t_cast)
    torch_result = average_precision(torch.from_numpy(s), torch.from_numpy(t_cast))
    torch.testing.assert_close(np_result, torch_result)
    if dtype != np.float16:
        torch.testing.assert_close(np_result, expected)


def test_threshold_metrics_match_sklearn():
    s, t = _data(300, 10, seed=2, rate=0.3)
    probs = 1 / (1 + np.exp(-s))
    report = threshold_metrics(probs, t, 0.5)
    pred = (probs >= 0.5).astype(int)
    p, r, f, support = sklearn_metrics.precision_recall_fscore_support(t, pred, zero_division=0)
    np.testing.assert_allclose(report["precision"], p, rtol=1e-12)
    np.testing.assert_allclose(report["recall"], r, rtol=1e-12)
    np.testing.assert_allclose(report["f1"], f, rtol=1e-12)
    np.testing.assert_array_equal(report["support"], support)
    assert report["CP"] == pytest.approx(p.mean(), rel=1e-12)
    assert report["CR"] == pytest.approx(r.mean(), rel=1e-12)
    assert report["CF1"] == pytest.approx(2 * p.mean() * r.mean() / (p.mean() + r.mean()), rel=1e-12)
    op = sklearn_metrics.precision_score(t.ravel(), pred.ravel())
    orr = sklearn_metrics.recall_score(t.ravel(), pred.ravel())
    assert report["OP"] == pytest.approx(op, rel=1e-12)
    assert report["OR"] == pytest.approx(orr, rel=1e-12)
    assert report["OF1"] == pytest.approx(2 * op * orr / (op + orr), rel=1e-12)
    per_class = threshold_metrics(probs, t, [0.5] * 10)
    assert per_class["CF1"] == report["CF1"]


def test_topk_predicts_exactly_k_per_sample():
    s, t = _data(100, 8, seed=4, partial=False)
    report = topk_metrics(s, t, k=3)
    assert sum(report["tp"]) + sum(report["fp"]) == 100 * 3
    top = np.argsort(-s, axis=1, kind="stable")[:, :3]
    pred = np.zeros_like(t)
    np.put_along_axis(pred, top, 1, axis=1)
    tp = ((pred == 1) & (t == 1)).sum(0)
    np.testing.assert_array_equal(report["tp"], tp)


def test_best_f1_thresholds_are_optimal_and_reproduce_their_f1():
    s, t = _data(150, 6, seed=7, ties=True)
    thresholds, f1 = best_f1_thresholds(s, t)
    for c in range(6):
        pred = s[:, c] >= thresholds[c].item()
        expected = sklearn_metrics.f1_score(t[:, c], pred)
        assert f1[c].item() == pytest.approx(expected, abs=1e-12)
        for cut in np.unique(s[:, c]):
            assert sklearn_metrics.f1_score(t[:, c], s[:, c] >= cut) <= f1[c].item() + 1e-12


def test_accumulator_over_uneven_batches_equals_one_shot():
    s, t = _data(257, 11, seed=8, partial=True)
    acc = MultilabelMetrics(definition="noninterpolated", threshold=0.0, k=2)
    for lo, hi in [(0, 1), (1, 100), (100, 101), (101, 257)]:
        acc.update(torch.as_tensor(s[lo:hi], dtype=torch.float32), t[lo:hi])
    report = acc.compute()
    s32 = s.astype(np.float32)
    assert acc.num_samples == 257
    torch.testing.assert_close(report["AP"], average_precision(s32, t, definition="noninterpolated"))
    assert report["OF1"] == threshold_metrics(s32, t, 0.0)["OF1"]
    assert report["top2"]["CF1"] == topk_metrics(s32, t, 2)["CF1"]
    acc.reset()
    with pytest.raises(ValueError, match="never called"):
        acc.compute()


def test_accumulator_refuses_a_bad_batch_at_once_and_keeps_the_others():
    s, t = (torch.from_numpy(a) for a in _data(40, 3, seed=1))
    acc = MultilabelMetrics()
    acc.update(s[:20], t[:20])
    with pytest.raises(ValueError, match="holds 3 classes"):
        acc.update(torch.rand(4, 5), torch.ones(4, 5))
    bad_targets = t[20:].clone()
    bad_targets[2, 1] = 2
    with pytest.raises(ValueError, match=r"targets must be 1, 0 or -1 \(ignored\); found 2(\.0)? at index \[2, 1\]"):
        acc.update(s[20:], bad_targets)
    for value in (float("nan"), float("inf")):
        bad_scores = s[20:].clone()
        bad_scores[3, 0] = value
        with pytest.raises(ValueError, match=r"scores must be finite; found a NaN or infinity at index \[3, 0\]"):
            acc.update(bad_scores, t[20:])
    with pytest.raises(ValueError, match="move both to the same device"):
        acc.update(s[20:], t[20:].to("meta"))
    assert acc.num_samples == 20
    acc.update(s[20:], t[20:])
    report = acc.compute()
    assert report["mAP"] == mean_average_precision(s, t)
    torch.testing.assert_close(report["AP"], average_precision(s, t), rtol=0, atol=0)


def test_empty_skip_raises_in_both_routes():
    # No class has a positive: with empty="skip" there is no mAP, for the function and the
    # accumulator alike (they used to disagree: one raised, the other returned NaN).
    s, t = torch.rand(5, 3), torch.zeros(5, 3)
    with pytest.raises(ValueError, match="mAP is undefined"):
        mean_average_precision(s, t, empty="skip")
    acc = MultilabelMetrics(empty="skip")
    acc.update(s, t)
    with pytest.raises(ValueError, match="mAP is undefined"):
        acc.compute()
    acc = MultilabelMetrics(empty="zero")
    acc.update(s, t)
    assert acc.compute()["mAP"] == 0.0 == mean_average_precision(s, t, empty="zero")


@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 60), c=st.integers(1, 40), seed=st.integers(0, 1000), ties=st.booleans())
def test_hypothesis_step_ap_matches_sklearn(n, c, seed, ties):
    s, t = _data(n, c, seed=seed, ties=ties)
    ours = average_precision(s, t, definition="step")
    for j in range(c):
        expected = sklearn_metrics.average_precision_score(t[:, j], s[:, j])
        assert abs(ours[j].item() - expected) < 1e-12


@pytest.mark.parametrize(
    "scores, targets, kwargs, match",
    [
        (np.zeros((3, 4)), np.zeros((3, 5)), {}, r"targets must have the shape of scores \[3, 4\]"),
        (np.zeros(3), np.zeros(3), {}, r"\[num_samples, num_classes\]"),
        (np.zeros((0, 4)), np.zeros((0, 4)), {}, "empty"),
        (np.array([[0.1, np.nan]]), np.array([[1, 0]]), {}, r"NaN, the first at index \[0, 1\]"),
        (np.zeros((2, 2)), np.array([[1, 2], [0, 1]]), {}, r"found 2 at index \[0, 1\]"),
        (np.zeros((2, 2), dtype=np.int64), np.zeros((2, 2)), {}, "scores must be floating point"),
        (np.zeros((2, 2)), np.zeros((2, 2)), {"definition": "11point"}, "definition must be"),
    ],
)
def test_bad_input_raises_value_errors(scores, targets, kwargs, match):
    with pytest.raises(ValueError, match=match):
        average_precision(scores, targets, **kwargs)


@pytest.mark.parametrize(
    "view",
    [
        lambda a: a[::-1],  # negative strides: read in place, where torch.from_numpy refuses
        lambda a: a[::2, ::-1],
        np.asfortranarray,
        lambda a: a.astype(a.dtype.newbyteorder(">")),  # copied once to native byte order
    ],
)
def test_numpy_arrays_of_any_layout_match_contiguous_copies(view):
    s, t = _data(40, 6, seed=3, partial=True)
    vs, vt = view(s), view(t)
    cs, ct = np.ascontiguousarray(vs), np.ascontiguousarray(vt)
    assert torch.equal(average_precision(vs, vt, definition="step"), average_precision(cs, ct, definition="step"))
    assert threshold_metrics(vs, vt) == threshold_metrics(cs, ct)
    assert all(torch.equal(a, b) for a, b in zip(best_f1_thresholds(vs, vt), best_f1_thresholds(cs, ct), strict=True))
    metrics = MultilabelMetrics()
    metrics.update(vs, vt)
    assert metrics.compute()["mAP"] == mean_average_precision(cs, ct)


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
@pytest.mark.parametrize("target_dtype", [np.bool_, np.uint8, np.int8, np.int16, np.int32, np.int64, np.float32])
def test_numpy_dtypes_match_float64(dtype, target_dtype):
    s, t = _data(30, 5, seed=4)
    s = s.astype(dtype)
    expected = average_precision(torch.from_numpy(s.astype(np.float64)), torch.from_numpy(t.astype(np.float64)))
    torch.testing.assert_close(average_precision(s, t.astype(target_dtype)), expected)


def test_bad_threshold_and_k():
    s, t = _data(5, 4)
    with pytest.raises(ValueError, match=r"k must be in \[1, num_classes = 4\], got 5"):
        topk_metrics(s, t, k=5)
    with pytest.raises(ValueError, match="one per class"):
        threshold_metrics(s, t, [0.5, 0.5])
    with pytest.raises(ValueError, match="found 3"):
        threshold_metrics(s, np.full((5, 4), 3), 0.5)
    with pytest.raises(TypeError):
        average_precision([[0.1]], [[1]])


def test_cuda_inputs_give_cpu_results():
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    s, t = _data(64, 5)
    st_, tt = torch.as_tensor(s), torch.as_tensor(t)
    torch.testing.assert_close(average_precision(st_.cuda(), tt.cuda()), average_precision(st_, tt))
    with pytest.raises(ValueError, match="same device"):
        average_precision(st_.cuda(), tt)
