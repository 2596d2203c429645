"""The network a run starts from: its weights, a new head for a new class set, frozen layers.

- **Start.** A registered model's own weights (COCO from torchvision's cache, ``blocks``
  bundled), a local checkpoint (``--weights PATH``, e.g. an earlier run's ``best.pt``), or
  random weights (``--weights none``: the architecture with torch's initialisation).
- **Head.** When the data's class list differs from the start's, the class-specific layers
  are replaced, as torchvision's fine-tuning tutorial does: ``FastRCNNPredictor`` (class
  scores and box deltas) and ``MaskRCNNPredictor`` (here only its last, per-class layer is
  new: the upsampling layer before it is class-agnostic and kept). Rows of classes the start
  already knows by name (and the background's) are copied over, so ``cube`` stays a cube.
- **Freeze.** ``auto`` is torchvision's fine-tuning default: for the ResNet-50 models the stem
  and ``layer1`` are frozen (``trainable_backbone_layers=3``), for ``blocks`` nothing. ``stem``,
  ``backbone`` (every backbone layer below the FPN) and ``none`` say it directly; a
  comma-separated list of parameter-name prefixes freezes exactly those. When fine-tuning,
  batch norms keep their statistics and scales (torchvision's ``FrozenBatchNorm2d`` does the
  same for its pretrained models); from random weights they train.
- **Precision.** ``bf16``/``fp16`` run the dense parts (backbone, RPN head, box and mask heads,
  the same ones :mod:`segcli.models.precision` runs in low precision at inference) under
  autocast; losses, anchors, box coding and RoIAlign stay fp32, and the weights are fp32.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils._pytree import tree_map
from torchvision.models.detection import MaskRCNN

from segcli.core.categories import PLACEHOLDER_CLASSES
from segcli.core.errors import SegcliError, UsageError
from segcli.models.precision import DENSE_PARTS
from segcli.models.registry import ModelSpec
from segcli.train.data import same_classes

FREEZE_CHOICES = ("auto", "none", "stem", "backbone")
_STEM = {
    "maskrcnn_resnet50_fpn": ("backbone.body.conv1.", "backbone.body.bn1.", "backbone.body.layer1."),
    "maskrcnn_resnet50_fpn_v2": ("backbone.body.conv1.", "backbone.body.bn1.", "backbone.body.layer1."),
    "segcli_blocks_maskrcnn": ("backbone.stem.", "backbone.stages.0."),
}
_BACKBONE = {
    "maskrcnn_resnet50_fpn": ("backbone.body.",),
    "maskrcnn_resnet50_fpn_v2": ("backbone.body.",),
    "segcli_blocks_maskrcnn": ("backbone.stem.", "backbone.stages."),
}
_AUTO = {"segcli_blocks_maskrcnn": "none"}


@dataclass
class StartModel:
    module: MaskRCNN
    spec: ModelSpec
    weights: str  # what it started from: a path, "torchvision:...", "bundled:...", "random"
    sha256: str | None
    base_categories: tuple[str, ...]
    head: dict[str, Any]  # {"replaced": bool, "kept": [class names whose rows were copied]}
    pretrained: bool


def start_categories(spec: ModelSpec, weights: str | Path | None) -> tuple[str, ...]:
    """The category list of the start (torch-light: reads only a local checkpoint's names)."""
    if weights is None or str(weights) == "none":
        return spec.categories
    from segcli.models.weights import load_checkpoint

    ckpt = load_checkpoint(Path(weights), mmap=True)
    return ckpt.categories or spec.categories


def build_start(
    spec: ModelSpec,
    weights: str | Path | None,
    categories: Sequence[str],
    *,
    keep_rows: bool = True,
    progress: bool = True,
) -> StartModel:
    """The start network with a head for ``categories`` (on the CPU, eval mode)."""
    from segcli.models.weights import load_model

    if weights is not None and str(weights) == "none":
        module = spec.build(len(categories))
        module.eval()
        return StartModel(
            module, spec, "random", None, tuple(categories), {"replaced": False, "kept": []}, pretrained=False
        )
    loaded = load_model(spec, weights=weights, device="cpu", progress=progress)
    module = loaded.module
    head: dict[str, Any] = {"replaced": False, "kept": []}
    if not same_classes(loaded.categories, categories):
        head = {"replaced": True, "kept": replace_heads(module, loaded.categories, categories, keep_rows)}
    return StartModel(
        module,
        loaded.spec,
        loaded.weights,
        loaded.sha256,
        tuple(loaded.categories),
        head,
        pretrained=True,
    )


def replace_heads(
    module: MaskRCNN, old: Sequence[str], new: Sequence[str], keep_rows: bool = True
) -> list[str]:
    """New class-specific layers for ``new`` (in place); returns the classes whose rows were
    copied from the old layers (with ``keep_rows``; the background row is always copied then)."""
    from torchvision.models.detection.faster_rcnn import FastRCNNPredictor
    from torchvision.models.detection.mask_rcnn import MaskRCNNPredictor

    heads = module.roi_heads
    old_box, old_mask = heads.box_predictor, heads.mask_predictor
    n = len(new)
    box = FastRCNNPredictor(old_box.cls_score.in_features, n)
    conv5 = old_mask.conv5_mask
    mask = MaskRCNNPredictor(conv5.in_channels, conv5.out_channels, n)
    mask.conv5_mask.load_state_dict(conv5.state_dict())
    kept: list[str] = []
    if keep_rows:
        index = {c.casefold(): i for i, c in enumerate(old) if c not in PLACEHOLDER_CLASSES}
        pairs = [(0, 0)] + [
            (j, index[c.casefold()])
            for j, c in enumerate(new)
            if j > 0 and c not in PLACEHOLDER_CLASSES and c.casefold() in index
        ]
        with torch.no_grad():
            for j, i in pairs:
                box.cls_score.weight[j] = old_box.cls_score.weight[i]
                box.cls_score.bias[j] = old_box.cls_score.bias[i]
                box.bbox_pred.weight[4 * j : 4 * j + 4] = old_box.bbox_pred.weight[4 * i : 4 * i + 4]
                box.bbox_pred.bias[4 * j : 4 * j + 4] = old_box.bbox_pred.bias[4 * i : 4 * i + 4]
                mask.mask_fcn_logits.weight[j] = old_mask.mask_fcn_logits.weight[i]
                mask.mask_fcn_logits.bias[j] = old_mask.mask_fcn_logits.bias[i]
        kept = [new[j] for j, _ in pairs[1:]]
    heads.box_predictor = box
    heads.mask_predictor = mask
    return kept


def freeze_prefixes(spec: ModelSpec, freeze: str) -> tuple[str, ...]:
    """Parameter-name prefixes ``--freeze`` freezes (checked against the architecture)."""
    value = freeze.strip()
    if value == "auto":
        value = _AUTO.get(spec.architecture, "stem")
    if value == "none":
        return ()
    if value == "stem":
        return _STEM.get(spec.architecture, ())
    if value == "backbone":
        return _BACKBONE.get(spec.architecture, ("backbone.",))
    prefixes = tuple(p.strip() for p in value.split(",") if p.strip())
    if not prefixes:
        raise UsageError(
            f"--freeze {freeze!r}: choose {', '.join(FREEZE_CHOICES)} or parameter-name prefixes"
        )
    return prefixes


def apply_freeze(module: nn.Module, prefixes: Sequence[str], *, frozen_norms: bool) -> dict[str, int]:
    """Freeze the parameters under ``prefixes``; with ``frozen_norms`` every batch norm's
    scale and shift too (its statistics are frozen by :func:`training_mode`). Returns counts."""
    names = [n for n, _ in module.named_parameters()]
    for prefix in prefixes:
        if not any(n.startswith(prefix) for n in names):
            raise UsageError(
                f"--freeze: no parameter starts with {prefix!r} (e.g. {names[0]!r}); "
                f"choose {', '.join(FREEZE_CHOICES)} or parameter-name prefixes"
            )
    norm_params = set()
    if frozen_norms:
        for mod_name, mod in module.named_modules():
            if isinstance(mod, nn.modules.batchnorm._BatchNorm):
                norm_params |= {f"{mod_name}.{p}" for p, _ in mod.named_parameters(recurse=False)}
    frozen = trainable = 0
    for name, param in module.named_parameters():
        keep = not any(name.startswith(p) for p in prefixes) and name not in norm_params
        param.requires_grad_(keep)
        if keep:
            trainable += param.numel()
        else:
            frozen += param.numel()
    return {"trainable_parameters": trainable, "frozen_parameters": frozen}


def _resize_off(image: Tensor, target: dict[str, Tensor] | None) -> tuple[Tensor, dict[str, Tensor] | None]:
    return image, target


@contextmanager
def training_mode(module: MaskRCNN, *, frozen_norms: bool):
    """``module.train()`` with the transform's resize off (examples come resized) and, with
    ``frozen_norms``, batch norms in eval mode (statistics kept); eval mode again after."""
    module.train()
    if frozen_norms:
        for mod in module.modules():
            if isinstance(mod, nn.modules.batchnorm._BatchNorm):
                mod.eval()
    module.transform.resize = _resize_off  # an instance attribute
    try:
        yield
    finally:
        del module.transform.resize
        module.eval()


def _to_fp32(value: object) -> object:
    if isinstance(value, Tensor) and value.is_floating_point() and value.dtype != torch.float32:
        return value.float()
    return value


def enable_autocast(module: nn.Module, dtype: torch.dtype, device_type: str) -> list[str]:
    """Run the dense parts of ``module`` under autocast (outputs back in fp32); the state dict
    keeps its keys (each part's ``forward`` is wrapped on the instance, not the module tree)."""
    wrapped = []
    for dotted in DENSE_PARTS:
        try:
            part = module.get_submodule(dotted)
        except AttributeError:
            continue
        inner: Callable[..., Any] = part.forward

        def forward(*args: Any, _inner: Callable[..., Any] = inner, **kwargs: Any) -> Any:
            with torch.autocast(device_type, dtype=dtype):
                out = _inner(*args, **kwargs)
            return tree_map(_to_fp32, out)

        part.forward = forward
        wrapped.append(dotted)
    return wrapped


def check_trainable(module: nn.Module) -> None:
    if not any(p.requires_grad for p in module.parameters()):
        raise SegcliError("every parameter is frozen: nothing to train (see --freeze)")
