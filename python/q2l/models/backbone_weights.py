"""Which weights a named backbone starts from: a torchvision weights name, a timm pretrained
tag, or a local file, resolved through torchvision's and timm's own APIs and caches.

The network is reached only to fetch weights the user named that are not in the library's
cache, and never while ``HF_HUB_OFFLINE`` is set. A cached entry loads with no network
attempt: torchvision reads ``$TORCH_HOME/hub/checkpoints`` before it would download, and a
timm tag found in the Hugging Face cache (or torch's) is handed to timm as a file.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from ..errors import InvalidArgumentError, MissingFileError

_FILE_SUFFIXES = (".pth", ".pt", ".bin", ".safetensors", ".ckpt", ".tar")
# torch.hub names its files ``<name>-<first hex digits of the sha256>.<ext>``.
_HASH_PREFIX = re.compile(r"-([a-f0-9]{6,})\.")


@dataclass(frozen=True)
class Pretrained:
    """A backbone's starting weights, as ``config.json`` records them under ``backbone_weights``.

    Args:
        library: ``"torchvision"``, ``"timm"`` or ``"file"``.
        name: The torchvision enum member (``MobileNet_V2_Weights.IMAGENET1K_V1``), the timm
            model and tag (``convnext_tiny.fb_in22k``), or the file's path as given.
        file: The file the weights were read from (torchvision's cache name, a local path).
        sha256: The file's SHA-256 when it was read from a local path.
    """

    library: str
    name: str
    file: str | None = None
    sha256: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in vars(self).items() if v is not None}


def offline() -> bool:
    """``HF_HUB_OFFLINE`` set to a true value, as huggingface_hub reads it."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in ("1", "ON", "YES", "TRUE")


def is_file(weights: Any) -> bool:
    """Whether ``weights`` names a local file rather than a weights name."""
    if isinstance(weights, os.PathLike):
        return True
    if not isinstance(weights, str):
        return False
    return os.sep in weights or "/" in weights or weights.lower().endswith(_FILE_SUFFIXES) or os.path.exists(weights)


def _sha256(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def file_record(path: str | os.PathLike) -> Pretrained:
    """A local file's record, with its hash when it can be read."""
    name = os.fspath(path)
    return Pretrained("file", name, sha256=_sha256(name) if os.path.isfile(name) else None)


def _not_cached(what: str, why: str, fix: str) -> MissingFileError:
    return MissingFileError(f"{what} are not in the cache and {why}: {fix}")


def _failed(err: Exception) -> str:
    text = str(err).split(". ")[0]
    return f"the download failed ({type(err).__name__}: {text[:160]})"


def _put_file(folder: Path, filename: str) -> str:
    return f"put {filename!r} in {os.fspath(folder)!r}, or pass the file itself as weights=PATH"


# torchvision ----------------------------------------------------------------------------


def torchvision_weights(name: str, weights: Any) -> Any:
    """The torchvision ``WeightsEnum`` member that ``weights`` names for backbone ``name``:
    the member itself, its name (``"IMAGENET1K_V1"``, ``"MobileNet_V2_Weights.IMAGENET1K_V1"``)
    or ``"DEFAULT"``."""
    from torchvision.models import get_model_weights

    try:
        enum = get_model_weights(name)
    except ValueError:
        raise InvalidArgumentError(f"torchvision has no pretrained weights for {name!r}") from None
    valid = [m.name for m in enum] + ["DEFAULT"]
    if isinstance(weights, enum):
        return weights
    if isinstance(weights, str):
        key = weights.removeprefix(enum.__name__ + ".")
        if key in valid:
            return enum[key]
    raise InvalidArgumentError(
        f"unknown weights {weights!r} for torchvision backbone {name!r}; valid: {', '.join(valid)} (or a local file)"
    )


def torchvision_cache_file(member: Any) -> Path:
    """Where torchvision keeps (or will download) the file of a weights member."""
    import torch.hub

    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(urlparse(member.url).path)


def check_cached_hash(path: Path) -> None:
    """A cached torch.hub file must hash to the prefix its name carries; a damaged or
    substituted file is refused before it is read."""
    match = _HASH_PREFIX.search(path.name)
    if match is None:
        return
    if not _sha256(path).startswith(match.group(1)):
        raise InvalidArgumentError(
            f"cached weights {os.fspath(path)!r} do not match the hash in their name "
            f"({match.group(1)}...): the file is damaged or another one; delete it"
        )


def torchvision_record(member: Any) -> Pretrained:
    return Pretrained("torchvision", f"{type(member).__name__}.{member.name}", torchvision_cache_file(member).name)


def load_torchvision(builder: Any, name: str, member: Any) -> Any:
    """``builder(weights=member)``, reading torchvision's cache; downloads only when the file
    is missing and the machine is not offline."""
    path = torchvision_cache_file(member)
    what = f"torchvision weights {type(member).__name__}.{member.name} for {name!r}"
    if path.is_file():
        check_cached_hash(path)
    elif offline():
        raise _not_cached(what, "HF_HUB_OFFLINE is set", _put_file(path.parent, path.name))
    try:
        return builder(weights=member, progress=True)
    except OSError as err:  # URLError, DNS and socket errors
        raise _not_cached(what, _failed(err), _put_file(path.parent, path.name)) from None


# timm -----------------------------------------------------------------------------------


def _timm_cfg_or_none(name: str) -> Any:
    """timm's pretrained config of ``arch`` or ``arch.tag``, ``None`` where there is none
    (timm raises for an unknown tag and returns ``None`` for a model without weights)."""
    from timm.models import get_pretrained_cfg

    try:
        return get_pretrained_cfg(name)
    except RuntimeError:
        return None


def timm_pretrained_cfg(name: str) -> Any:
    """timm's pretrained config of ``arch`` or ``arch.tag``; an unknown tag names the model,
    the tag and the tags that exist."""
    import timm
    from timm.models import split_model_name_tag

    arch, tag = split_model_name_tag(name)
    cfg = _timm_cfg_or_none(name)
    if cfg is None:
        tags = [t.split(".", 1)[1] for t in timm.list_pretrained(f"{arch}.*")]
        what = f"pretrained tag {tag!r}" if tag else "pretrained weights"
        raise InvalidArgumentError(
            f"timm model {arch!r} has no {what}; its tags: {', '.join(tags) or 'none'} (use timm:{arch}.<tag>)"
        )
    return cfg


def timm_classifiers(name: str) -> tuple[str, ...]:
    """The module names of a timm model's classifier, as its pretrained config lists them
    (prefixes of the keys a feature extractor leaves out)."""
    cfg = _timm_cfg_or_none(name)
    names = (getattr(cfg, "classifier", None) or ()) if cfg is not None else ()
    return tuple(f"{n}." for n in ((names,) if isinstance(names, str) else names))


def _hub_files(cfg: Any) -> list[str]:
    """The files timm tries on the Hugging Face hub, safetensors first."""
    name = cfg.hf_hub_filename or "pytorch_model.bin"
    safe = {"pytorch_model.bin": "model.safetensors", "open_clip_pytorch_model.bin": "open_clip_model.safetensors"}
    return [safe[name], name] if name in safe else [name]


def timm_cached_file(cfg: Any) -> tuple[str | None, str]:
    """The cached file of a timm pretrained config (``None`` if absent), and what to do
    when it is absent and cannot be fetched."""
    import torch.hub

    if cfg.hf_hub_id:
        from huggingface_hub import constants, try_to_load_from_cache

        repo, _, revision = cfg.hf_hub_id.partition("@")
        files = _hub_files(cfg)
        for filename in files:
            found = try_to_load_from_cache(repo, filename, revision=revision or None)
            if isinstance(found, str):
                return found, ""
        return None, (
            f"fetch them once with network (into {constants.HF_HUB_CACHE!r}), or pass {files[0]!r} of "
            f"the Hugging Face repo {repo!r} as weights=PATH"
        )
    folder = Path(torch.hub.get_dir()) / "checkpoints"
    filename = os.path.basename(urlparse(cfg.url or "").path) or "<weights file>"
    path = folder / filename
    return (os.fspath(path) if cfg.url and path.is_file() else None), _put_file(folder, filename)


def timm_weights_file(name: str) -> tuple[str | None, Pretrained]:
    """For ``timm:name`` with ``pretrained=True``: the cached file to load (``None`` when
    timm must fetch it) and the record; offline, a missing entry is an error."""
    cfg = timm_pretrained_cfg(name)
    found, fix = timm_cached_file(cfg)
    source = _timm_record(cfg)
    if found is None and offline():
        raise _not_cached(f"timm weights {source.name!r}", "HF_HUB_OFFLINE is set", fix)
    return found, source


def _timm_record(cfg: Any) -> Pretrained:
    return Pretrained("timm", f"{cfg.architecture}.{cfg.tag}" if cfg.tag else cfg.architecture)


def timm_fetch_error(name: str, err: Exception) -> MissingFileError:
    """The error of a failed timm download of ``name``'s weights."""
    cfg = timm_pretrained_cfg(name)
    return _not_cached(f"timm weights {_timm_record(cfg).name!r}", _failed(err), timm_cached_file(cfg)[1])


def record(backbone: str, weights: Any, pretrained: bool) -> Pretrained | None:
    """What a named backbone built with these arguments starts from, without loading it."""
    if weights is not None and is_file(weights):
        return file_record(weights)
    if backbone.startswith("timm:") and pretrained:
        return _timm_record(timm_pretrained_cfg(backbone[5:]))
    if weights is not None:
        return torchvision_record(torchvision_weights(backbone, weights))
    return None


def check_weights_file(weights: Any) -> None:
    """A weights argument that names a file must name an existing one."""
    if weights is not None and is_file(weights) and not os.path.exists(os.fspath(weights)):
        raise MissingFileError(f"no weights file at {os.fspath(weights)!r}")
