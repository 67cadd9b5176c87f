"""The smallest training run the app tests share: its configuration, and the same as flags
of the ``q2l train`` command."""

from typing import Any

#: A run of a few seconds on 2 CPU cores (generated scenes, a tiny head, no attention figures).
TINY: dict[str, Any] = dict(
    train_size=64,
    val_size=32,
    img_size=32,
    batch_size=16,
    d_model=32,
    dim_feedforward=64,
    workers=1,
    attention_images=0,
)


def flags(config: dict[str, Any]) -> list[str]:
    """``config`` as ``q2l train`` flags: ``img_size=32`` is ``--img-size 32``."""
    out = []
    for name, value in config.items():
        out += [f"--{name.replace('_', '-')}", str(value)]
    return out
