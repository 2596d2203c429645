"""Weights: one loader for every registered model, detection and semantic alike.

A model's weights come from torchvision's weights API and cache (``TORCH_HOME``), from
the file bundled with segcli (``blocks``) or from a local checkpoint (``--weights``,
``--semantic-weights``). Checkpoints are read with ``torch.load(weights_only=True)``, so a
file cannot run code, and checked against the architecture before use.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import os
import socket
import sys
import threading
import urllib.error
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from segcli.core.categories import PLACEHOLDER_CLASSES
from segcli.core.errors import SegcliError, UsageError, first_line
from segcli.core.settings import Settings
from segcli.models.registry import ModelSpec, Task, get_spec
from segcli.models.roi import settle_roi_scales

if TYPE_CHECKING:
    from torchvision.models._api import WeightsEnum  # annotations only: torchvision costs seconds

DOWNLOAD_TIMEOUT_S = 30.0


# --------------------------------------------------------------------------- devices
def resolve_device(text: str = "auto") -> torch.device:
    """``auto`` prefers CUDA, then Apple's MPS, then the CPU; absent devices are errors."""
    text = text.strip().lower()
    if text == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(text)
    except RuntimeError:
        raise UsageError(f"unknown device {text!r}; use auto, cpu, cuda, cuda:N or mps") from None
    if device.type == "cpu":
        return device
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise SegcliError(f"--device {text}: CUDA is not available on this machine")
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise SegcliError(f"--device {text}: this machine has {count} CUDA device(s)")
        return device
    if device.type == "mps":
        if not _mps_available():
            raise SegcliError(f"--device {text}: Apple MPS is not available on this machine")
        return device
    raise UsageError(f"unsupported device {text!r}; use auto, cpu, cuda, cuda:N or mps")


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


# --------------------------------------------------------------------------- files
_SHA_CACHE: dict[tuple[str, int, int], str] = {}


def file_sha256(path: Path) -> str:
    """The file's sha256 (hex), cached by path, size and modification time."""
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _SHA_CACHE:
        digest = hashlib.sha256()
        with path.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
        _SHA_CACHE[key] = digest.hexdigest()
    return _SHA_CACHE[key]


def torchvision_cache_file(weights: WeightsEnum) -> Path:
    """Where torchvision's weights API keeps (or would keep) ``weights``."""
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(weights.url)


def fetch_torchvision_weights(
    weights: WeightsEnum, *, progress: bool = True, option: str = "weights=PATH", name: str = "COCO"
) -> Path:
    """The cached file of a torchvision weights enum member, downloading it if needed.

    Goes through ``weights.get_state_dict`` (torchvision's own download, hash check
    and cache) so the file lands exactly where a plain torchvision user's does.
    ``option`` is what the offline error offers instead (``weights=PATH``: the CLI shows its
    option name, ``--weights PATH``); ``name`` the model the error names. torch prints
    ``Downloading: ...`` on stdout before it tries the network: that line is held back
    (stdout stays the user's, e.g. ``--json -``) and said on stderr only once the download
    has worked.
    """
    cached = torchvision_cache_file(weights)
    if cached.is_file():
        return cached
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)
    held = io.StringIO()
    try:
        with contextlib.redirect_stdout(held):
            weights.get_state_dict(progress=progress, check_hash=True)
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise SegcliError(
            f"the {name} weights {cached.name} are not in the cache ({cached.parent}) and could "
            f"not be downloaded ({reason}). On a connected machine download {weights.url} "
            f"into {cached.parent}/ (set TORCH_HOME to move the cache), or pass "
            f"{option} to a local checkpoint."
        ) from None
    except RuntimeError as exc:  # torchvision's hash check failed
        raise SegcliError(f"downloaded {cached.name} is damaged: {exc}".splitlines()[0]) from None
    finally:
        socket.setdefaulttimeout(previous)
    if progress and held.getvalue():
        sys.stderr.write(held.getvalue())
    return cached


CHECKPOINT_SCHEMA = "segcli.checkpoint/1"
"""What ``segcli train`` writes under a checkpoint's ``segcli`` key (see :class:`CheckpointMeta`)."""


@dataclass(frozen=True)
class CheckpointMeta:
    """What a checkpoint says about itself (``segcli train`` writes it): the registered model
    it was trained as, its input size and how it was trained. Every field may be missing."""

    model: str | None = None  # a registry name: coco, coco-v2, blocks
    architecture: str | None = None
    min_size: int | None = None
    max_size: int | None = None
    train: dict[str, object] | None = None  # settings, data summary, epoch, val AP

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": CHECKPOINT_SCHEMA,
            "model": self.model,
            "architecture": self.architecture,
            "min_size": self.min_size,
            "max_size": self.max_size,
            "train": self.train,
        }


@dataclass(frozen=True)
class Checkpoint:
    """A checkpoint file's contents: the state dict, category names and self-description."""

    state: dict[str, Tensor]
    categories: tuple[str, ...] | None
    meta: CheckpointMeta | None
    raw: dict[str, object] | None  # the whole top-level dict (training state of a last.pt)


def _read_meta(value: object, path: Path) -> CheckpointMeta | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise SegcliError(f"checkpoint {path}: 'segcli' must be a dict")
    model, arch = value.get("model"), value.get("architecture")
    sizes = {k: value.get(k) for k in ("min_size", "max_size")}
    if (model is not None and not isinstance(model, str)) or (arch is not None and not isinstance(arch, str)):
        raise SegcliError(f"checkpoint {path}: 'segcli' model and architecture must be names")
    for key, size in sizes.items():
        if size is not None and (not isinstance(size, int) or isinstance(size, bool) or size < 1):
            raise SegcliError(f"checkpoint {path}: 'segcli' {key} must be a positive whole number")
    train = value.get("train")
    return CheckpointMeta(
        model=model,
        architecture=arch,
        min_size=sizes["min_size"],
        max_size=sizes["max_size"],
        train=train if isinstance(train, dict) else None,
    )


def check_category_names(categories: Sequence[str], spec: ModelSpec, path: Path) -> None:
    """Refuse a checkpoint's class list that gives a real class a name segcli reserves:
    ``__background__`` anywhere but index 0, or ``N/A`` (torchvision's name for COCO's unused
    slots, which exports leave out) unless the list is the architecture's own. Such a class
    would vanish from YOLO-seg exports and from ``--classes``; one line says how to fix it."""
    if tuple(categories) == tuple(spec.categories):
        return
    for index, name in enumerate(categories):
        if index == 0:
            continue
        if name in PLACEHOLDER_CLASSES:
            raise SegcliError(
                f"checkpoint {path}: class {index} is named {name!r}, which segcli keeps for "
                + ("the background (index 0 only)" if name == "__background__" else "unused slots (COCO's)")
                + "; rename it in the checkpoint's 'categories'"
            )


def read_checkpoint(path: Path) -> tuple[dict[str, Tensor], tuple[str, ...] | None]:
    """A state dict (and optional category names) from a checkpoint file (see :func:`load_checkpoint`)."""
    ckpt = load_checkpoint(path)
    return ckpt.state, ckpt.categories


def load_checkpoint(path: Path, *, mmap: bool = False) -> Checkpoint:
    """A checkpoint file: its state dict, optional category names and ``segcli`` description.

    Accepted: a state dict, or a dict holding one under ``model`` or ``state_dict``,
    optionally beside ``categories`` (a list of names, index 0 the background) and
    ``segcli`` (:class:`CheckpointMeta`, written by ``segcli train``). The file is loaded with
    ``weights_only=True``: it cannot run code. ``mmap``: map the tensors instead of reading
    them (for a look at the description only).
    """
    import pickle
    import zipfile

    if not path.exists():
        raise SegcliError(f"checkpoint {path} does not exist")
    if not path.is_file():
        raise SegcliError(f"checkpoint {path} is not a file")
    with path.open("rb") as fh:
        head = fh.read(len(LEGACY_TORCH_MAGIC))
    if not (head.startswith(ZIP_MAGIC) or head.startswith(LEGACY_TORCH_MAGIC)):
        raise SegcliError(f"checkpoint {path} is not a PyTorch checkpoint ({describe_format(head)})")
    try:
        extra = {"mmap": True} if mmap and head.startswith(ZIP_MAGIC) else {}
        obj = torch.load(path, map_location="cpu", weights_only=True, **extra)
    except pickle.UnpicklingError as exc:
        if "weights_only" in str(exc) or "global" in str(exc).lower():
            raise SegcliError(
                f"checkpoint {path} was refused: it holds Python objects that could run code, "
                "and segcli only loads plain tensors (torch.load weights_only=True)"
            ) from None
        raise SegcliError(f"checkpoint {path} is not a readable PyTorch file ({first_line(exc)})") from None
    except (RuntimeError, EOFError, ValueError, zipfile.BadZipFile, OSError, KeyError) as exc:
        raise SegcliError(
            f"checkpoint {path} is not a readable PyTorch file (truncated or another format?): "
            f"{first_line(exc)}"
        ) from None
    categories: tuple[str, ...] | None = None
    meta: CheckpointMeta | None = None
    raw = obj if isinstance(obj, dict) else None
    if isinstance(obj, dict):
        if "categories" in obj:
            cats = obj["categories"]
            if not isinstance(cats, (list, tuple)) or not all(isinstance(c, str) for c in cats):
                raise SegcliError(f"checkpoint {path}: 'categories' must be a list of names")
            categories = tuple(cats)
        meta = _read_meta(obj.get("segcli"), path)
        for key in ("model", "state_dict"):
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not obj:
        raise SegcliError(
            f"checkpoint {path} holds a {type(obj).__name__}, not a state dict "
            "(expected a dict of tensors, or one under 'model' or 'state_dict')"
        )
    bad = [k for k, v in obj.items() if not isinstance(v, Tensor)]
    if bad:
        raise SegcliError(
            f"checkpoint {path} is not a state dict: {len(bad)} entries are not tensors (e.g. {bad[0]!r})"
        )
    return Checkpoint(obj, categories, meta, raw)


def checkpoint_spec(
    meta: CheckpointMeta | None, requested: str | ModelSpec | None, path: Path, task: Task = "instance"
) -> ModelSpec:
    """The registered model a checkpoint runs as: ``requested`` (a name or spec) if given, else
    the one the checkpoint names (``segcli train`` records it), else ``coco``. A checkpoint
    trained as another architecture than the requested one is a :class:`UsageError`."""
    named = meta.model if meta is not None else None
    if requested is None:
        return get_spec(named or DEFAULT_MODEL, task)
    spec = requested if isinstance(requested, ModelSpec) else get_spec(requested, task)
    if meta is not None and meta.architecture is not None and meta.architecture != spec.architecture:
        trained = f"--model {named}" if named else meta.architecture
        raise UsageError(
            f"checkpoint {path} was trained as {trained} ({meta.architecture}), not "
            f"{spec.model_option} {spec.name} ({spec.architecture}); leave {spec.model_option} out "
            "(the checkpoint says which model it is) or name that one"
        )
    return spec


DEFAULT_MODEL = "coco"
"""The model segcli runs when none is named (and no checkpoint names one)."""


ZIP_MAGIC = b"PK\x03\x04"
"""``torch.save`` files (since torch 1.6) are zip archives."""
LEGACY_TORCH_MAGIC = b"\x80\x02\x8a\x0al\xfc\x9cF\xf9 j\xa8P\x19"
"""Older ``torch.save`` files: a pickle that starts with torch's magic number 0x1950a86a20f9469cfc6c."""
_FORMATS = {
    b"\xff\xd8\xff": "a JPEG image",
    b"\x89PNG": "a PNG image",
    b"GIF8": "a GIF image",
    b"\x80": "a plain Python pickle",
    b"\x89HDF": "an HDF5 file (Keras?)",
    b"\x08": "perhaps an ONNX or TensorFlow protobuf",
}


def describe_format(head: bytes) -> str:
    """What the first bytes of a file that is no PyTorch checkpoint suggest it is."""
    for magic, what in _FORMATS.items():
        if head.startswith(magic):
            return f"it looks like {what}"
    if head and all(32 <= b < 127 or b in b"\t\r\n" for b in head):
        return "it looks like text"
    return "empty" if not head else "unknown format"


def check_fits(
    module: nn.Module,
    state: dict[str, Tensor],
    path: Path,
    spec: ModelSpec,
    checkpoint_categories: tuple[str, ...] | None = None,
) -> None:
    """Raise a one-line :class:`SegcliError` unless ``state`` loads into ``module`` strictly.

    ``module`` was built with ``checkpoint_categories`` when the checkpoint names its own
    categories, else with the spec's: a class-count mismatch is told against the right one.
    """
    own = module.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    mismatched = [k for k in own if k in state and own[k].shape != state[k].shape]
    if not (missing or unexpected or mismatched):
        return
    option = spec.model_option
    cls_key = "roi_heads.box_predictor.cls_score.weight"
    if not missing and not unexpected and cls_key in mismatched:
        weights_n = state[cls_key].shape[0]
        if checkpoint_categories is not None:
            raise SegcliError(
                f"checkpoint {path} names {len(checkpoint_categories)} categories (background "
                f"included) but its weights have {weights_n} classes; fix its 'categories' list"
            )
        raise SegcliError(
            f"checkpoint {path} has {weights_n} classes (background included) but {option} "
            f"{spec.name} has {len(spec.categories)}; save {{'model': state_dict, 'categories': "
            "[...]} so segcli knows the class names"
        )
    example = (missing or unexpected or mismatched)[0]
    raise SegcliError(
        f"checkpoint {path} does not fit {spec.architecture} ({option} {spec.name}): "
        f"{len(missing)} missing keys, {len(unexpected)} unexpected keys, "
        f"{len(mismatched)} of another shape (first: {example})"
    )


# --------------------------------------------------------------------------- loading
@dataclass(frozen=True)
class Loaded:
    """A registered model, built, with its weights loaded, in eval mode on ``device``."""

    module: nn.Module
    spec: ModelSpec
    categories: tuple[str, ...]  # index = class id, 0 the background
    weights: str  # a path, "torchvision:<weights name>" or "bundled:<file name>"
    sha256: str
    device: torch.device
    defaults: Settings | None = None  # the spec's, with a checkpoint's own input size

    @property
    def settings_defaults(self) -> Settings:
        """What fills the settings a user leaves unset."""
        return self.defaults if self.defaults is not None else self.spec.defaults

    def info(self) -> dict[str, str]:
        """What run files record about the model."""
        return {
            "name": self.spec.name,
            "architecture": self.spec.architecture,
            "weights": self.weights,
            "sha256": self.sha256,
        }


def weights_hint(spec: ModelSpec) -> str:
    """How a user passes a local checkpoint, named by the library's field (``weights=PATH``,
    ``semantic_weights=PATH``); the CLI shows its option instead (``--weights PATH``)."""
    return f"{spec.weights_field}=PATH"


def _weights_file(spec: ModelSpec, weights: str | Path | None, progress: bool) -> tuple[Path, str]:
    """The checkpoint to read and how run files name it."""
    if weights is not None:
        path = Path(weights).expanduser()
        return path, str(path)
    tv_weights = spec.torchvision_weights
    if tv_weights is not None:
        path = fetch_torchvision_weights(
            tv_weights, progress=progress, option=weights_hint(spec), name=spec.name
        )
        return path, f"torchvision:{tv_weights}"
    if spec.bundled_weights is not None:
        if not spec.bundled_weights.is_file():
            raise SegcliError(
                f"the bundled weights of {spec.model_option} {spec.name} are missing "
                f"({spec.bundled_weights}); reinstall segcli or pass {weights_hint(spec)}"
            )
        return spec.bundled_weights, f"bundled:{spec.bundled_weights.name}"
    raise SegcliError(f"{spec.model_option} {spec.name} has no weights; pass {weights_hint(spec)}")


_INIT_LOCK = threading.Lock()


@contextlib.contextmanager
def uninitialised_weights() -> Iterator[None]:
    """Build modules without running ``torch.nn.init`` (random weights about to be replaced).

    A model's constructor draws random values for every weight: ~1 s for ResNet-50 on 2 CPU
    cores, paid on every start although a strict ``load_state_dict`` then overwrites every
    parameter and buffer. Inside this block ``torch.nn.init``'s functions return their
    tensor untouched (it holds whatever memory it was allocated with), process-wide and under
    a lock, so only build modules here whose every tensor is loaded afterwards.
    """
    names = [n for n in vars(torch.nn.init) if n.endswith("_") and not n.startswith("_")]
    with _INIT_LOCK:
        saved = {name: getattr(torch.nn.init, name) for name in names}

        def untouched(tensor: Tensor, *args: object, **kwargs: object) -> Tensor:
            return tensor

        for name in names:
            setattr(torch.nn.init, name, untouched)
        try:
            yield
        finally:
            for name, function in saved.items():
                setattr(torch.nn.init, name, function)


def load_model(
    model: str | ModelSpec | None = None,
    *,
    task: Task = "instance",
    weights: str | Path | None = None,
    device: str | torch.device = "auto",
    progress: bool = True,
) -> Loaded:
    """Build a registered model and load its weights; eval mode, on ``device``.

    ``model`` is a spec or a name looked up in the registry for ``task``; ``None`` is the
    model a ``weights`` checkpoint names (``segcli train`` records it), else ``coco``. Category
    names come from the checkpoint when it holds them, else from the spec; so does the input
    size (``min_size``/``max_size`` defaults). A local checkpoint of a model with an auxiliary
    classifier may leave out the ``aux_classifier`` keys; that head is never used for
    inference anyway.
    """
    dev = device if isinstance(device, torch.device) else resolve_device(device)
    if weights is None:
        spec = model if isinstance(model, ModelSpec) else get_spec(model or DEFAULT_MODEL, task)
        path, source = _weights_file(spec, None, progress)
        ckpt = load_checkpoint(path)
    else:
        path = Path(weights).expanduser()
        source = str(path)
        ckpt = load_checkpoint(path)
        spec = checkpoint_spec(ckpt.meta, model, path, task)
    state, ckpt_categories = ckpt.state, ckpt.categories
    if ckpt_categories is not None:
        check_category_names(ckpt_categories, spec, path)
    categories = ckpt_categories or spec.categories
    aux = spec.aux_loss and any(k.startswith("aux_classifier.") for k in state)
    with uninitialised_weights():  # the strict load below replaces every one of them
        module = spec.build(len(categories), aux)
    state = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
    check_fits(module, state, path, spec, ckpt_categories)
    module.load_state_dict(state)
    if aux:
        # only the main head's output is used; what `module.aux_classifier = None` does, typed
        module.register_module("aux_classifier", None)
    module.eval().to(dev)
    if spec.task == "instance":
        settle_roi_scales(module)  # from the strides, not from whatever image comes first
    return Loaded(
        module=module,
        spec=spec,
        categories=categories,
        weights=source,
        sha256=file_sha256(path),
        device=dev,
        defaults=checkpoint_defaults(spec, ckpt.meta),
    )


def checkpoint_defaults(spec: ModelSpec, meta: CheckpointMeta | None) -> Settings:
    """``spec``'s defaults with the input size a checkpoint was trained at."""
    if meta is None or (meta.min_size is None and meta.max_size is None):
        return spec.defaults
    min_size = meta.min_size or spec.defaults.min_size
    max_size = meta.max_size or spec.defaults.max_size
    if min_size is not None and max_size is not None and min_size > max_size:
        max_size = min_size
    return dataclasses.replace(spec.defaults, min_size=min_size, max_size=max_size)
