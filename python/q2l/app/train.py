"""The training loop behind ``q2l train``: one process or many (``torchrun``), CPU or CUDA."""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .. import data
from ..errors import InvalidArgumentError, Q2LError
from ..loss import AsymmetricLoss, PartialAsymmetricLoss
from ..metrics import MultilabelMetrics
from . import build, checkpoint, report
from .config import TrainConfig
from .ema import ModelEma
from .progress import Progress


class TrainingError(Q2LError, RuntimeError):
    """A run that cannot go on (for example a loss that became NaN)."""


def init_distributed(device: torch.device) -> bool:
    """Joins the process group ``torchrun`` describes; False for a single process."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    if not torch.distributed.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        torch.distributed.init_process_group(backend)
    return True


def rank() -> int:
    return torch.distributed.get_rank() if torch.distributed.is_initialized() else 0


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def evaluate(model: nn.Module, loader: data.Loader, device: torch.device, amp: bool = False) -> dict[str, Any]:
    """All metrics of :class:`~q2l.metrics.MultilabelMetrics` over a loader, gathered across ranks.

    The padding a sharded loader adds (``DistributedSampler``'s repeats) is left out, so the
    result equals a single-process evaluation.
    """
    # A class without a positive in the validation set has no AP; the mean is over the
    # others (the official code's NaN would stop the best checkpoint from ever being kept).
    metrics = MultilabelMetrics(definition="voc", empty="skip")
    n, world, r = len(loader.dataset), loader.world_size, loader.rank
    seen = 0
    model.eval()
    with torch.no_grad():
        for images, targets in loader:
            with torch.autocast(device.type, enabled=amp and device.type == "cuda"):
                logits = model(images.to(device, non_blocking=True))
            # Global position of row j of this rank: r + world * (seen + j).
            keep = r + world * (seen + torch.arange(images.shape[0])) < n
            seen += images.shape[0]
            metrics.update(logits.float().sigmoid()[keep.to(logits.device)], targets.to(device)[keep.to(device)])
    return metrics.compute()


def masked_bce(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy that, like the asymmetric loss, ignores targets of -1 (unknown)."""
    known = (targets >= 0).to(logits.dtype)
    loss = nn.functional.binary_cross_entropy_with_logits(logits, targets.clamp(min=0), weight=known, reduction="sum")
    return loss / known.sum().clamp(min=1)


class Trainer:
    """Builds everything from a configuration and runs (or resumes) the training."""

    def __init__(self, cfg: TrainConfig, quiet: bool = False) -> None:
        self.cfg = cfg
        self.device = build.device_of(cfg)
        if self.device.type == "cuda" and "LOCAL_RANK" in os.environ and cfg.device in ("auto", "cuda"):
            # One GPU per process under torchrun.
            self.device = torch.device("cuda", int(os.environ["LOCAL_RANK"]))
            torch.cuda.set_device(self.device)
        self.distributed = init_distributed(self.device)
        self.is_main = rank() == 0
        self.quiet = quiet or not self.is_main
        seed_everything(cfg.seed)
        self.train_set, self.val_set = build.datasets(cfg)
        if self.train_set.classes != self.val_set.classes:
            raise InvalidArgumentError("the training and validation sets have different label tables")
        self.classes = self.train_set.classes
        absent = [c for c, n in zip(self.classes, (self.val_set.targets == 1).sum(0).tolist(), strict=True) if not n]
        if absent:
            shown = ", ".join(absent[:5]) + (", ..." if len(absent) > 5 else "")
            self._say(
                f"note: the validation set has no positive of {len(absent)} classes ({shown}); "
                f"mAP is the mean over the other {len(self.classes) - len(absent)}"
            )
        train_tf, val_tf = build.transforms(cfg)
        threads = cfg.workers or None
        self.train_loader = data.Loader(
            self.train_set,
            train_tf,
            batch_size=cfg.batch_size,
            shuffle=True,
            drop_last=True,
            seed=cfg.seed,
            num_threads=threads,
            pin_memory=self.device.type == "cuda",
        )
        self.val_loader = data.Loader(
            self.val_set,
            val_tf,
            batch_size=max(cfg.batch_size, 64),
            num_threads=threads,
            pin_memory=self.device.type == "cuda",
        )
        # A resumed run's checkpoint holds the backbone: its starting weights are not read again.
        self.model = build.model(cfg, len(self.classes), backbone_weights=not cfg.resume).to(self.device)
        self.ema = ModelEma(self.model, cfg.ema)
        self.net: nn.Module = self.model
        if self.distributed:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.net = nn.parallel.DistributedDataParallel(self.model, device_ids=ids)
        self.criterion: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
        if cfg.partial_labels is not None:
            self.criterion = PartialAsymmetricLoss(cfg.partial_labels)
        else:
            self.criterion = AsymmetricLoss.from_preset(cfg.loss) if cfg.loss != "bce" else masked_bce
        params = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.steps_per_epoch = len(self.train_loader)
        self.scheduler = torch.optim.lr_scheduler.OneCycleLR(
            self.optimizer, max_lr=cfg.lr, total_steps=cfg.epochs * self.steps_per_epoch, pct_start=cfg.pct_start
        )
        self.amp = cfg.amp and self.device.type == "cuda"
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp)
        self.out = Path(cfg.output)
        self.epoch = 0
        self.history: list[dict[str, Any]] = []
        self.best: dict[str, Any] = {"mAP": -1.0, "epoch": -1, "which": None}
        self.stale = 0
        if cfg.resume:
            self._resume(cfg.resume)

    # Checkpoints --------------------------------------------------------------------------

    def _state(self) -> dict[str, Any]:
        return {
            "config": self.cfg.__dict__,
            "architecture": self.cfg.architecture(len(self.classes)),
            "classes": self.classes,
            "model": self.model.state_dict(),
            "ema": self.ema.module.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "epoch": self.epoch,
            "history": self.history,
            "best": self.best,
            "stale": self.stale,
            "rng": checkpoint.rng_state(),
        }

    def _resume(self, path: str) -> None:
        ckpt = checkpoint.load(path)
        checkpoint.check_architecture(ckpt, self.cfg.architecture(len(self.classes)), path)
        planned = ckpt["config"].get("epochs")
        if planned != self.cfg.epochs:
            raise InvalidArgumentError(
                f"checkpoint {path!r} belongs to a run of {planned} epochs, whose one-cycle schedule "
                f"is fixed by that number; resume with --epochs {planned}"
            )
        if ckpt["classes"] != self.classes:
            raise InvalidArgumentError(f"checkpoint {path!r} was trained on other classes than this dataset's")
        checkpoint.load_state(self.model, ckpt["model"], f"{path}: 'model'")
        checkpoint.load_state(self.ema.module, ckpt["ema"], f"{path}: 'ema'")
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.scheduler.load_state_dict(ckpt["scheduler"])
        self.scaler.load_state_dict(ckpt["scaler"])
        self.epoch, self.history, self.best, self.stale = ckpt["epoch"], ckpt["history"], ckpt["best"], ckpt["stale"]
        checkpoint.set_rng_state(ckpt["rng"])
        self._say(f"resumed from {path} after epoch {self.epoch}")

    def _say(self, msg: str) -> None:
        if not self.quiet:
            print(msg, flush=True)

    # The loop -----------------------------------------------------------------------------

    def train_epoch(self) -> float:
        self.net.train()
        self.train_loader.set_epoch(self.epoch)
        bar = Progress(
            self.steps_per_epoch, f"epoch {self.epoch + 1}/{self.cfg.epochs}", not self.quiet, self.cfg.log_every
        )
        total, count = 0.0, 0
        for images, targets in self.train_loader:
            images = images.to(self.device, non_blocking=True)
            targets = targets.to(self.device, non_blocking=True)
            with torch.autocast(self.device.type, enabled=self.amp):
                logits = self.net(images)
            loss = self.criterion(logits.float(), targets)
            if not torch.isfinite(loss):
                raise TrainingError(
                    f"the loss became {loss.item()} at epoch {self.epoch + 1}, step {count + 1}; stopping. "
                    f"The last good checkpoint is {self.out / 'last.pt'} (try a lower --lr or --grad-clip)"
                )
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(loss).backward()
            if self.cfg.grad_clip > 0:
                self.scaler.unscale_(self.optimizer)
                nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip)
            self.scaler.step(self.optimizer)
            self.scaler.update()
            self.scheduler.step()
            self.ema.update(self.model)
            total += loss.item()
            count += 1
            skipped = len(self.train_loader.skipped)
            dropped = self.train_loader.dropped_batches
            bar.step(
                f"loss {loss.item():.3g}"
                + (f", skipped {skipped} images" if skipped else "")
                + (f" ({dropped} empty batches dropped)" if dropped else "")
            )
        return total / max(count, 1)

    def _sync_buffers(self) -> None:
        """BatchNorm statistics drift apart on each rank's own batches; rank 0's win."""
        if self.distributed:
            for module in (self.model, self.ema.module):
                for b in module.buffers():
                    torch.distributed.broadcast(b, 0)

    def fit(self, stop_after: int | None = None) -> dict[str, Any]:
        """Trains the remaining epochs (or up to epoch ``stop_after``); returns the best result."""
        cfg = self.cfg
        if self.is_main:
            self.out.mkdir(parents=True, exist_ok=True)
            (self.out / "config.json").write_text(cfg.to_json())
        self._say(
            f"training on {self.device} ({len(self.train_set)} train / {len(self.val_set)} val images, "
            f"{len(self.classes)} classes) -> {self.out}"
        )
        while self.epoch < cfg.epochs and (stop_after is None or self.epoch < stop_after):
            start = time.perf_counter()
            loss = self.train_epoch()
            self._sync_buffers()
            raw = evaluate(self.net, self.val_loader, self.device, self.amp)
            ema = evaluate(self.ema, self.val_loader, self.device, self.amp)
            self.epoch += 1
            row = {
                "epoch": self.epoch,
                "train_loss": loss,
                "mAP": raw["mAP"],
                "mAP_ema": ema["mAP"],
                "CF1": raw["CF1"],
                "OF1": raw["OF1"],
                "CF1_ema": ema["CF1"],
                "OF1_ema": ema["OF1"],
                "lr": self.optimizer.param_groups[0]["lr"],
                "seconds": time.perf_counter() - start,
            }
            self.history.append(row)
            which, value = ("ema", ema["mAP"]) if ema["mAP"] >= raw["mAP"] else ("model", raw["mAP"])
            improved = value > self.best["mAP"]
            if improved:
                self.best, self.stale = {"mAP": value, "epoch": self.epoch, "which": which}, 0
            else:
                self.stale += 1
            self._say(
                f"epoch {self.epoch}: loss {loss:.4g}, mAP {100 * raw['mAP']:.2f} (EMA {100 * ema['mAP']:.2f}), "
                f"CF1 {100 * raw['CF1']:.2f}, OF1 {100 * raw['OF1']:.2f}, {row['seconds']:.0f}s"
            )
            if self.is_main:
                report.append_log(self.out / "metrics.jsonl", row)
                state = self._state()
                checkpoint.save(self.out / "last.pt", state)
                if improved:
                    checkpoint.save(self.out / "best.pt", state)
                report.plot_curves(self.history, self.out / "curves.png")
            if cfg.early_stop and self.stale >= cfg.early_stop:
                self._say(f"no improvement for {self.stale} epochs: stopping early")
                break
        if stop_after is not None and self.epoch < cfg.epochs:
            return self.best
        if self.is_main and cfg.attention_images > 0 and cfg.head == "query2label":
            self.attention_overlays(cfg.attention_images)
        self._say(
            f"best mAP {100 * self.best['mAP']:.2f} ({self.best['which']}, epoch {self.best['epoch']}); "
            f"outputs in {self.out}"
        )
        return self.best

    def attention_overlays(self, count: int) -> None:
        folder = self.out / "attention"
        folder.mkdir(exist_ok=True)
        model = self.ema.module if self.best["which"] == "ema" else self.model
        model.eval()
        for i in range(min(count, len(self.val_set))):
            image, target = self.val_set[i]
            shown, x = build.prepare(image, self.cfg.img_size)
            with torch.no_grad():
                logits, maps = model(x.to(self.device), return_attention=True)
            report.attention_figure(
                shown,
                maps[-1][0].float().cpu(),
                logits[0].float().sigmoid().cpu(),
                self.classes,
                folder / f"val_{i:03d}.png",
                targets=target,
            )


def train(cfg: TrainConfig, quiet: bool = False) -> dict[str, Any]:
    """Runs ``q2l train`` for a resolved configuration; returns the best result."""
    trainer = Trainer(cfg, quiet=quiet)
    try:
        return trainer.fit()
    finally:
        if trainer.distributed and torch.distributed.is_initialized():
            torch.distributed.barrier()
