"""Model folders: ``config.json`` (architecture, classes, preprocessing) + ``model.safetensors``.

The layout of a Hugging Face hub model folder, read and written locally. Weights go through
safetensors, which stores raw tensors and nothing else: loading a model never runs code
from the file, unlike unpickling.
"""

import json
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .. import _native
from .._files import load_state_checked, read_json
from .._validate import class_names
from ..data.transforms import eval_transform
from ..errors import InvalidArgumentError, MissingFileError, OutOfMemoryError

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
FORMAT = "q2l-rs/query2label"
FORMAT_VERSION = 1

_MODEL_KEYS = ("backbone", "channels_last", "freeze_stem", "frozen_bn", "head")
_OPTIONAL_KEYS = ("backbone_weights", "classes", "head_type", "preprocessing", "q2l_version")
#: The model class of each ``head_type`` (each subclass of ``BackboneModel`` adds itself).
MODEL_CLASSES: dict[str, Any] = {}
#: The ``head_type`` of folders written before there was more than one.
DEFAULT_HEAD_TYPE = "query2label"
_PREPROCESSING_KEYS = ("img_size", "mean", "std")


def _atomic_write(path: Path, write) -> None:
    tmp = path.with_name(path.name + ".tmp")
    write(tmp)
    os.replace(tmp, path)


def save_pretrained(
    model: Any,
    directory: str | os.PathLike,
    *,
    classes: list[str] | None = None,
    img_size: int | None = None,
    mean=None,
    std=None,
) -> None:
    """Writes ``config.json`` and ``model.safetensors`` into ``directory``, the layout of a
    Hugging Face hub model folder (nothing is uploaded or downloaded).

    Args:
        directory: Created if missing; both files are replaced atomically.
        classes: Label names, in logit order (``len == num_classes``).
        img_size: Input side the model was trained at (preprocessing).
        mean: Normalisation mean (default ImageNet's, when ``img_size`` is given).
        std: Normalisation std (default ImageNet's).
    """
    from safetensors.torch import save_file

    from ..data.transforms import IMAGENET_MEAN, IMAGENET_STD

    config: dict[str, Any] = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "q2l_version": _native.__version__,
        **model.config(),
    }
    num_classes = config["head"]["num_classes"]
    if classes is not None:
        classes = [str(c) for c in classes]
        if len(classes) != num_classes:
            raise InvalidArgumentError(f"classes has {len(classes)} names but the model has {num_classes} classes")
        config["classes"] = class_names(classes, num_classes, "classes")
    if img_size is not None:
        if not isinstance(img_size, int) or isinstance(img_size, bool) or img_size < 1:
            raise InvalidArgumentError(f"img_size must be a positive int, got {img_size!r}")
        config["preprocessing"] = {
            "img_size": img_size,
            "mean": [float(v) for v in (IMAGENET_MEAN if mean is None else mean)],
            "std": [float(v) for v in (IMAGENET_STD if std is None else std)],
        }
        pre = config["preprocessing"]
        eval_transform(img_size, normalize=(pre["mean"], pre["std"]))  # what loading will check
    elif mean is not None or std is not None:
        raise InvalidArgumentError("mean and std are preprocessing: give img_size with them")
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    _atomic_write(folder / WEIGHTS_NAME, lambda p: save_file(state, os.fspath(p), metadata={"format": "pt"}))
    text = json.dumps(config, indent=2) + "\n"
    _atomic_write(folder / CONFIG_NAME, lambda p: p.write_text(text))


def read_config(directory: str | os.PathLike) -> dict[str, Any]:
    """The checked ``config.json`` of a model folder; errors name the file and the key."""
    path = Path(directory) / CONFIG_NAME
    if not Path(directory).is_dir():
        raise MissingFileError(f"no model folder at {os.fspath(directory)!r}")
    if not path.is_file():
        raise MissingFileError(f"{os.fspath(path)!r} is missing: not a q2l model folder")
    config = read_json(path)
    if not isinstance(config, dict):
        raise InvalidArgumentError(f"{os.fspath(path)}: expected a JSON object, got {type(config).__name__}")
    if config.get("format") != FORMAT:
        raise InvalidArgumentError(f"{os.fspath(path)}: key 'format' must be {FORMAT!r}, got {config.get('format')!r}")
    if config.get("format_version") != FORMAT_VERSION:
        raise InvalidArgumentError(
            f"{os.fspath(path)}: key 'format_version' {config.get('format_version')!r} is not "
            f"supported (this q2l-rs reads version {FORMAT_VERSION})"
        )
    known = {"format", "format_version", *_MODEL_KEYS, *_OPTIONAL_KEYS}
    unknown = sorted(set(config) - known)
    if unknown:
        raise InvalidArgumentError(f"{os.fspath(path)}: unknown key {unknown[0]!r}")
    missing = [k for k in _MODEL_KEYS if k not in config]
    if missing:
        raise InvalidArgumentError(f"{os.fspath(path)}: missing key {missing[0]!r}")
    head = config["head"]
    if not isinstance(head, dict):
        raise InvalidArgumentError(f"{os.fspath(path)}: key 'head' must be an object")
    try:
        model_class(config).check_head_config(head)
    except InvalidArgumentError as err:
        raise InvalidArgumentError(f"{os.fspath(path)}: {err}") from None
    source = config.get("backbone_weights")
    if source is not None and not (
        isinstance(source, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in source.items())
    ):
        raise InvalidArgumentError(f"{os.fspath(path)}: key 'backbone_weights' must be an object of strings or null")
    if config.get("classes") is not None:
        class_names(config["classes"], head["num_classes"], f"{os.fspath(path)}: key 'classes'")
    pre = config.get("preprocessing")
    if pre is not None:
        if not isinstance(pre, dict) or sorted(pre) != sorted(_PREPROCESSING_KEYS):
            raise InvalidArgumentError(
                f"{os.fspath(path)}: key 'preprocessing' must hold exactly {list(_PREPROCESSING_KEYS)}"
            )
        size = pre["img_size"]
        if not isinstance(size, int) or isinstance(size, bool):
            raise InvalidArgumentError(f"{os.fspath(path)}: key 'preprocessing.img_size' must be a positive int")
        for key in ("mean", "std"):
            v = pre[key]
            if not isinstance(v, list) or len(v) != 3 or not all(_is_number(x) for x in v):
                raise InvalidArgumentError(f"{os.fspath(path)}: key 'preprocessing.{key}' must be 3 numbers")
        # The values are checked by the pipeline they describe: the size and its pixel
        # limit, then the normalisation (std > 0); each error names its key.
        for keys, build in (
            ("img_size", lambda: eval_transform(size, normalize=None)),
            ("mean/std", lambda: eval_transform(1, normalize=(pre["mean"], pre["std"]))),
        ):
            try:
                build()
            except InvalidArgumentError as err:
                raise InvalidArgumentError(f"{os.fspath(path)}: key 'preprocessing.{keys}': {err}") from None
    return config


def model_class(config: dict[str, Any]) -> Any:
    """The model class of a config's ``head_type``; an unknown one names the known ones."""
    head_type = config.get("head_type", DEFAULT_HEAD_TYPE)
    if head_type not in MODEL_CLASSES:
        raise InvalidArgumentError(f"key 'head_type' must be one of {sorted(MODEL_CLASSES)}, got {head_type!r}")
    return MODEL_CLASSES[head_type]


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def load_weights(model: nn.Module, path: Path, map_location) -> None:
    """Loads a safetensors file into ``model``; errors name the first missing, unexpected or
    misshaped key."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    if not path.is_file():
        raise MissingFileError(f"{os.fspath(path)!r} is missing")
    try:
        state = load_file(os.fspath(path), device=str(map_location))
    except (SafetensorError, OSError, ValueError, RuntimeError) as err:
        raise InvalidArgumentError(f"{os.fspath(path)}: not a readable safetensors file ({err})") from None
    load_state_checked(model, state, os.fspath(path))


def from_pretrained(
    cls: Any,
    directory: str | os.PathLike,
    *,
    backbone: nn.Module | None = None,
    map_location: str | torch.device = "cpu",
) -> Any:
    """Rebuilds a model written by :meth:`save_pretrained`, with identical outputs.

    Args:
        directory: A folder with ``config.json`` and ``model.safetensors``.
        backbone: The backbone module, required when the model was saved with a backbone
            given as a module (its config says ``"backbone": null``).
        map_location: Device the weights are loaded to.

    Returns:
        The model in eval mode, with ``classes`` and ``preprocessing`` attributes from
        the config (``None`` where it has none).
    """
    config = read_config(directory)
    where = os.fspath(Path(directory) / CONFIG_NAME)
    name = config["backbone"]
    if name is None and backbone is None:
        raise InvalidArgumentError(
            f"{where}: the model was saved with a custom backbone module ('backbone': null); "
            f"pass backbone=<the same module>"
        )
    if name is not None and backbone is not None:
        raise InvalidArgumentError(f"{where}: names backbone {name!r}; do not pass backbone= as well")
    if name is not None and not isinstance(name, str):
        raise InvalidArgumentError(f"{where}: key 'backbone' must be a name or null, got {name!r}")
    kind = model_class(config)
    if cls.HEAD_TYPE and cls is not kind:
        raise InvalidArgumentError(
            f"{where}: holds a model of head_type {kind.HEAD_TYPE!r} ({kind.__name__}), not a {cls.__name__}; "
            f"load it with {kind.__name__}.from_pretrained or q2l.load_pretrained"
        )
    try:
        model = kind.from_config(
            backbone if backbone is not None else name,
            config["head"],
            channels_last=config["channels_last"],
            freeze_stem=config["freeze_stem"],
            frozen_bn=config["frozen_bn"],
        )
    except TypeError as err:
        raise InvalidArgumentError(f"{where}: {err}") from None
    except OutOfMemoryError as err:
        raise OutOfMemoryError(f"{where}: {err}") from None
    # The folder holds the trained backbone: its starting weights are a record, never fetched.
    load_weights(model, Path(directory) / WEIGHTS_NAME, map_location)
    model.backbone_weights = config.get("backbone_weights")
    model.classes = config.get("classes")
    model.preprocessing = config.get("preprocessing")
    return model.to(map_location).eval()
