"""The ``q2l`` command: ``train``, ``evaluate``, ``predict``, ``visualize``, ``export``.

``q2l train`` with no arguments trains the demo on generated scenes (CPU, a few minutes).
Launch with ``torchrun --nproc-per-node N -m q2l train ...`` for data-parallel training.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import types
import typing

from .. import __version__
from .config import DATASETS, TrainConfig, field_names

HELP = {
    "dataset": f"one of {', '.join(DATASETS)} (default: scenes, the generated demo data)",
    "root": "dataset folder (COCO root with annotations/, a VOC20xx folder, NUS-WIDE release, image folder)",
    "train_split": "training split (COCO train2014, VOC trainval, NUS-WIDE train)",
    "val_split": "validation split (COCO val2014, VOC test, NUS-WIDE test)",
    "train_list": "training list (csv: image,labels; openimages: labels CSV; shards: a shard pattern)",
    "val_list": "validation list (shards: a shard pattern)",
    "train_size": "number of generated training scenes",
    "val_size": "number of generated validation scenes",
    "img_size": "input side in pixels",
    "cell_labels": "fashion scenes: a label per class and grid cell (40 labels on the 2x2 grid), a many-label "
    "set for --num-groups",
    "hide_annotations": "hide this fraction of the training annotations at random (seeded by --seed) to simulate "
    "partial annotation, e.g. with --partial-labels",
    "cutout": "Cutout hole factor (0.5 in the paper); omit for none",
    "randaugment": "RandAugment (2 ops, magnitude 9)",
    "flip": "random horizontal flips",
    "workers": "data threads (default: all CPUs)",
    "head": "query2label (default), ml-decoder (group queries, or zero-shot with --label-embeddings), or linear "
    "(global average pooling + linear, the paper's baseline)",
    "backbone": "tiny, a torchvision name (resnet101, mobilenet_v2, efficientnet_b0, ...) or timm:<name>",
    "weights": "backbone weights: a torchvision weights name (IMAGENET1K_V1, DEFAULT; read from $TORCH_HOME's "
    "cache, downloaded only if missing and HF_HUB_OFFLINE is unset) or a local file",
    "pretrained": "start a timm backbone from timm's weights of its tag (--backbone timm:convnext_tiny.fb_in22k)",
    "d_model": "head width",
    "nhead": "attention heads",
    "enc_layers": "encoder layers (query2label head)",
    "dec_layers": "decoder layers",
    "dim_feedforward": "feed-forward width",
    "dropout": "dropout",
    "pre_norm": "pre-norm Transformer layers (query2label head)",
    "num_groups": "group queries, at most the number of classes (ML-Decoder's group decoding); omit for one per "
    "label (query2label) or ML-Decoder's min(100, classes)",
    "label_embeddings": "a .npy or .safetensors file of one embedding per class (in the dataset's class order): "
    "trains a zero-shot ML-Decoder (--head ml-decoder) whose predict scores any labels given their embeddings",
    "freeze_stem": "freeze a ResNet's stem and layer1",
    "epochs": "epochs",
    "batch_size": "images per step per process",
    "lr": "peak learning rate (OneCycle)",
    "weight_decay": "AdamW weight decay",
    "pct_start": "OneCycle warm-up fraction",
    "ema": "EMA decay of the weights (both raw and EMA are evaluated)",
    "loss": "loss preset: query2label, asl, mmpretrain, or bce",
    "partial_labels": "train with CSL's partial-label loss in this mode (negative, ignore, ignore_normalize_classes, "
    "selective) instead of the --loss preset; unknown labels (-1) are what the mode says",
    "amp": "mixed precision on CUDA",
    "early_stop": "stop after this many epochs without improvement (0: never)",
    "grad_clip": "clip the gradient norm (0: no clipping)",
    "seed": "seed of data order, augmentation and init",
    "device": "auto, cpu or cuda[:N]",
    "output": "output folder",
    "resume": "checkpoint to resume from",
    "attention_images": "validation images to draw attention overlays for",
    "log_every": "steps between progress lines",
}


DATA_HELP = (
    "WebDataset tar shards, e.g. shards:'train-{000..015}.tar' (labels in .cls or .json members; the "
    "label table is classes.txt beside the training shards, as q2l.data.write_shards leaves it)"
)


def _add_data_args(p: argparse.ArgumentParser, train: bool) -> None:
    if train:
        p.add_argument("--data", help=f"training data: {DATA_HELP}")
    p.add_argument("--val-data", dest="val_data", help="validation data, as --data")


def _data_overrides(args: argparse.Namespace) -> dict[str, str]:
    """``--data shards:P`` / ``--val-data shards:P`` as the options they stand for."""
    from ..errors import InvalidArgumentError

    out: dict[str, str] = {}
    for flag, key in (("data", "train_list"), ("val_data", "val_list")):
        value = getattr(args, flag, None)
        if value is None:
            continue
        kind, sep, pattern = value.partition(":")
        if kind != "shards" or not sep or not pattern:
            raise InvalidArgumentError(f"--{flag.replace('_', '-')} takes shards:PATTERN, got {value!r}")
        out |= {"dataset": "shards", key: pattern}
    return out


MODEL_HELP = "a checkpoint of q2l train (.pt) or a model folder (config.json + model.safetensors)"


def _add_train_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="JSON file of options (flags override it)")
    hints = typing.get_type_hints(TrainConfig)
    for f in dataclasses.fields(TrainConfig):
        flag = "--" + f.name.replace("_", "-")
        kind = hints[f.name]
        base = typing.get_args(kind)[0] if typing.get_origin(kind) in (typing.Union, types.UnionType) else kind
        if base is bool:
            p.add_argument(
                flag, dest=f.name, action=argparse.BooleanOptionalAction, default=None, help=HELP.get(f.name)
            )
        else:
            p.add_argument(flag, dest=f.name, type=base, default=None, help=HELP.get(f.name))


class _Parser(argparse.ArgumentParser):
    """Usage errors as one line, ``q2l <command>: error: ...``, exit code 2 (no usage dump)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message}\n")


def parser() -> argparse.ArgumentParser:
    root = _Parser(prog="q2l", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    root.add_argument("--debug", action="store_true", help="show the full traceback of an error")
    root.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = root.add_subparsers(dest="command", required=True)
    # --debug also after the command; SUPPRESS keeps a --debug given before it.
    common = _Parser(add_help=False)
    common.add_argument(
        "--debug", action="store_true", default=argparse.SUPPRESS, help="show the full traceback of an error"
    )
    tr = sub.add_parser("train", parents=[common], help="train a model (no arguments: the generated-scenes demo)")
    _add_train_args(tr)
    _add_data_args(tr, train=True)
    ev = sub.add_parser("evaluate", parents=[common], help="all metrics of a checkpoint on its validation set, as JSON")
    ev.add_argument("checkpoint", help=MODEL_HELP)
    ev.add_argument("--which", default="best", choices=["best", "model", "ema"])
    ev.add_argument("--dataset"), ev.add_argument("--root"), ev.add_argument("--val-split", dest="val_split")
    ev.add_argument("--val-list", dest="val_list"), ev.add_argument("--val-size", dest="val_size", type=int)
    ev.add_argument("--cell-labels", dest="cell_labels", action="store_true", default=None, help=HELP["cell_labels"])
    _add_data_args(ev, train=False)
    ev.add_argument("--device", default="auto")
    ev.add_argument("--output", help="write the JSON report here as well")
    pr = sub.add_parser("predict", parents=[common], help="labels and scores of images")
    pr.add_argument("checkpoint", help=MODEL_HELP)
    pr.add_argument("images", nargs="+")
    pr.add_argument("--threshold", type=float, default=0.5)
    pr.add_argument("--thresholds", help="JSON file: a list of per-class thresholds or {class: threshold}")
    pr.add_argument("--format", choices=["json", "table"], default="table")
    pr.add_argument("--which", default="best", choices=["best", "model", "ema"])
    pr.add_argument(
        "--label-names",
        dest="label_names",
        help="zero-shot models: a file of label names, one per line, to score instead of the training labels",
    )
    pr.add_argument(
        "--label-embeddings",
        dest="label_embeddings",
        help="zero-shot models: a .npy or .safetensors file of one embedding per --label-names line",
    )
    vi = sub.add_parser("visualize", parents=[common], help="per-label attention overlays as PNG")
    vi.add_argument("checkpoint", help=MODEL_HELP)
    vi.add_argument("images", nargs="+")
    vi.add_argument("--output", default="q2l-attention")
    vi.add_argument("--labels", type=int, default=4, help="how many top labels per image")
    vi.add_argument("--which", default="best", choices=["best", "model", "ema"])
    ex = sub.add_parser(
        "export", parents=[common], help="ONNX (checked in onnxruntime) or a model folder (safetensors)"
    )
    ex.add_argument("checkpoint", help=MODEL_HELP)
    ex.add_argument(
        "--format",
        dest="fmt",
        choices=["onnx", "safetensors"],
        default="onnx",
        help="onnx: one .onnx file; safetensors: a folder with config.json and model.safetensors",
    )
    ex.add_argument("--output", help="default: q2l.onnx, or the folder q2l-model for safetensors")
    ex.add_argument("--which", default="best", choices=["best", "model", "ema"])
    return root


def _one_line(err: BaseException) -> str:
    text = " ".join(str(err).split()) or type(err).__name__
    # Errors the user can act on read as they are; anything else says what it was.
    if isinstance(err, (ValueError, OSError, TypeError, KeyError)):
        return text
    return f"{type(err).__name__}: {text}"


def main(argv: list[str] | None = None) -> int:
    """The ``q2l`` console script. Every failure is one line on stderr, ``q2l <command>: error:
    ...``, and exit code 2 (3 for a training run that had to stop, 130 for Ctrl-C); ``--debug``
    shows the traceback instead."""
    args = parser().parse_args(argv)
    try:
        return _run(args)
    except KeyboardInterrupt:
        print(f"q2l {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as err:
        if args.debug:
            raise
        print(f"q2l {args.command}: error: {_one_line(err)}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace) -> int:
    from . import commands

    if args.command == "train":
        from .config import resolve
        from .train import TrainingError, train

        cfg = resolve({k: getattr(args, k) for k in field_names()} | _data_overrides(args), args.config)
        try:
            train(cfg)
        except TrainingError as err:
            print(f"q2l train: {err}", file=sys.stderr)
            return 3
        return 0
    if args.command == "evaluate":
        keys = ("dataset", "root", "val_split", "val_list", "val_size", "cell_labels")
        overrides = {k: getattr(args, k) for k in keys}
        overrides |= _data_overrides(args)
        report = commands.evaluate(args.checkpoint, args.which, overrides, args.device)
        text = json.dumps(report, indent=2)
        if args.output:
            with open(args.output, "w") as f:
                f.write(text + "\n")
        print(text)
        return 0
    if args.command == "predict":
        results = commands.predict(
            args.checkpoint,
            args.images,
            args.threshold,
            args.thresholds,
            args.which,
            label_names=args.label_names,
            label_embeddings=args.label_embeddings,
        )
        print(json.dumps(results, indent=2) if args.format == "json" else commands.format_table(results))
        return 0
    if args.command == "visualize":
        for path in commands.visualize(args.checkpoint, args.images, args.output, args.labels, args.which):
            print(path)
        return 0
    if args.command == "export":
        output = args.output or ("q2l-model" if args.fmt == "safetensors" else "q2l.onnx")
        print(json.dumps(commands.export(args.checkpoint, output, args.which, fmt=args.fmt), indent=2))
        return 0
    return 2


if __name__ == "__main__":
    sys.exit(main())
