"""``--precision``: the number format of the detector's forward pass, resolved per device.

- ``fp32``: the reference path, bit-exact with torchvision's own ``model(images)``.
- ``bf16``: bfloat16 on the dense layers only (every convolution and linear layer of the
  backbone, FPN, RPN head, box head and mask head), on CPUs with native bf16 (AVX-512 BF16
  or AMX) and on CUDA GPUs that support it. Batch norms are folded into the convolutions
  and the convolutions run channels-last, which is what oneDNN's bf16 kernels want.
  Everything geometric stays in fp32: anchors, box decoding, NMS, RoIAlign, the mask
  sigmoid, pasting and encoding.
- ``fp16``: the same on CUDA, in float16.
- ``auto``: the fastest mode this device runs natively (see :func:`native_precisions`).

A mode the device cannot run natively is a :class:`SegcliError` (the CLI exits 2 with it
before any model loads); emulated bf16 on a CPU without the instructions is many times
slower than fp32, so segcli refuses it rather than run it.

Why only the dense layers: under a whole-forward ``torch.autocast``, torchvision's box
decoder casts the anchors to the regression's dtype (``BoxCoder.decode_single``), so
proposals and final boxes would be computed in bf16, whose 8-bit mantissa spaces
representable coordinates 4-8 px apart near x = 1000. Measured in ``bench/roofline.py``.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn
from torch.utils._pytree import tree_map

from segcli.core.errors import SegcliError
from segcli.core.settings import PRECISION_CHOICES as CHOICES

PRECISIONS: tuple[str, ...] = tuple(c for c in CHOICES if c != "auto")
_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


# --------------------------------------------------------------------------- detection
def _cpuinfo_flags() -> set[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def cpu_bf16_feature() -> str | None:
    """The CPU feature that makes bf16 native here (``"AMX"`` or ``"AVX-512 BF16"``), or ``None``.

    Asks torch's own CPU detection (cpuinfo, the same that picks oneDNN's kernels;
    ``torch.cpu._is_amx_tile_supported`` also checks that the OS lets the process use
    the AMX tiles) and falls back to the ``/proc/cpuinfo`` flags on an older torch.
    """
    cpu = getattr(torch, "cpu", None)
    amx = getattr(cpu, "_is_amx_tile_supported", None)
    avx512_bf16 = getattr(cpu, "_is_avx512_bf16_supported", None)
    if amx is not None and avx512_bf16 is not None:
        if amx():
            return "AMX"
        return "AVX-512 BF16" if avx512_bf16() else None
    flags = _cpuinfo_flags()
    if "amx_bf16" in flags:
        return "AMX"
    return "AVX-512 BF16" if "avx512_bf16" in flags else None


def native_precisions(device: torch.device) -> tuple[str, ...]:
    """The modes ``device`` runs natively, fastest first (``auto`` takes the first).

    CPU: bf16 (only with AVX-512 BF16 or AMX; 2.7x faster than fp32 on the network in
    ``bench/roofline.py``), then fp32. CUDA: fp16 (tensor cores on every CUDA GPU since
    Volta; bf16 only from Ampere on, at the same speed), bf16 where
    ``torch.cuda.is_bf16_supported()``, then fp32. Other devices (MPS): fp32 only.
    """
    if device.type == "cpu":
        return ("bf16", "fp32") if cpu_bf16_feature() else ("fp32",)
    if device.type == "cuda":
        with_bf16 = torch.cuda.is_bf16_supported(including_emulation=False)
        return ("fp16", "bf16", "fp32") if with_bf16 else ("fp16", "fp32")
    return ("fp32",)


def resolve_precision(requested: str, device: torch.device) -> str:
    """``fp32``, ``bf16`` or ``fp16`` for ``requested`` on ``device``; one-line error if not native."""
    name = requested.strip().lower()
    if name not in CHOICES:
        raise SegcliError(f"--precision must be one of {', '.join(CHOICES)}; got {requested!r}")
    native = native_precisions(device)
    if name == "auto":
        return native[0]
    if name in native:
        return name
    if device.type == "cpu" and name == "bf16":
        raise SegcliError(
            "--precision bf16 needs a CPU with AVX-512 BF16 or AMX (this one has neither; "
            "emulated bf16 is slower than fp32) or a CUDA GPU; use --precision fp32"
        )
    if device.type == "cpu":
        raise SegcliError(f"--precision {name} runs on CUDA only; on this CPU use {' or '.join(native)}")
    if device.type == "cuda":
        raise SegcliError(
            f"--precision {name}: {torch.cuda.get_device_name(device)} has no native {name}; "
            f"use {' or '.join(native)}"
        )
    raise SegcliError(f"--precision {name} is not supported on {device.type}; use fp32")


# --------------------------------------------------------------------------- running
class DenseAutocast(nn.Module):
    """Runs ``inner`` under autocast (channels-last inputs) and hands fp32 tensors back.

    Wraps the dense sub-networks of a Mask R-CNN, so that everything between them (box
    decoding, NMS, RoIAlign) sees fp32 exactly as in the fp32 path.
    """

    def __init__(
        self, inner: nn.Module, dtype: torch.dtype, device_type: str, *, channels_last: bool = True
    ) -> None:
        super().__init__()
        self.inner = inner
        self.dtype = dtype
        self.device_type = device_type
        self.channels_last = channels_last

    def forward(self, *args: object) -> object:
        if self.channels_last:
            args = tree_map(_channels_last, args)
        with torch.autocast(self.device_type, dtype=self.dtype):
            out = self.inner(*args)
        return tree_map(_to_fp32, out)


def _channels_last(value: object) -> object:
    if isinstance(value, Tensor) and value.dim() == 4:
        return value.contiguous(memory_format=torch.channels_last)
    return value


def _to_fp32(value: object) -> object:
    if isinstance(value, Tensor) and value.is_floating_point():
        return value.float().contiguous()
    return value


DENSE_PARTS: tuple[str, ...] = (
    "backbone",
    "rpn.head",
    "roi_heads.box_head",
    "roi_heads.box_predictor",
    "roi_heads.mask_head",
    "roi_heads.mask_predictor",
)


def fold_batch_norms(module: nn.Module) -> int:
    """Fold every eval-mode batch norm that directly follows a convolution into it; in place.

    A pair is folded only where the norm is known to consume nothing but the
    convolution's output: consecutive children of an ``nn.Sequential`` or of
    torchvision's ``IntermediateLayerGetter`` (which run their children in order), and
    ``convN``/``bnN`` of torchvision's ResNet blocks. Returns the number folded.
    """
    from torchvision.models._utils import IntermediateLayerGetter
    from torchvision.models.resnet import BasicBlock, Bottleneck
    from torchvision.ops.misc import FrozenBatchNorm2d

    folded = 0
    for parent in list(module.modules()):
        children = dict(parent.named_children())
        pairs: list[tuple[str, str]] = []
        if isinstance(parent, (nn.Sequential, IntermediateLayerGetter)):
            names = list(children)
            pairs = list(itertools.pairwise(names))
        elif isinstance(parent, (Bottleneck, BasicBlock)):
            pairs = [(f"conv{i}", f"bn{i}") for i in (1, 2, 3)]
        for conv_name, bn_name in pairs:
            conv, bn = children.get(conv_name), children.get(bn_name)
            if not isinstance(conv, nn.Conv2d) or not isinstance(bn, (nn.BatchNorm2d, FrozenBatchNorm2d)):
                continue
            if bn.training or bn.running_mean is None or bn.running_var is None:
                continue
            weight = bn.weight if bn.weight is not None else torch.ones_like(bn.running_var)
            bias = bn.bias if bn.bias is not None else torch.zeros_like(bn.running_mean)
            scale = weight * (bn.running_var + bn.eps).rsqrt()
            new_bias = bias - bn.running_mean * scale
            if conv.bias is not None:
                new_bias = new_bias + conv.bias.detach() * scale
            with torch.no_grad():
                conv.weight.mul_(scale.reshape(-1, 1, 1, 1))
            conv.bias = nn.Parameter(new_bias.detach().clone(), requires_grad=False)
            setattr(parent, bn_name, nn.Identity())
            folded += 1
    return folded


def replace_submodule(root: nn.Module, dotted: str, new: nn.Module) -> None:
    *path, last = dotted.split(".")
    parent = root
    for part in path:
        parent = getattr(parent, part)
    setattr(parent, last, new)


@dataclass(frozen=True)
class PreparedPrecision:
    """What :func:`prepare_model` did to a model (for the record and the tests)."""

    precision: str
    folded_norms: int
    wrapped: tuple[str, ...]


def prepare_model(module: nn.Module, precision: str, device: torch.device) -> PreparedPrecision:
    """Set ``module`` (a Mask R-CNN in eval mode, on ``device``) up to run in ``precision``; in place.

    ``fp32`` leaves it untouched. ``bf16``/``fp16`` fold the batch norms into the
    convolutions, make the convolutions channels-last and wrap each dense part in
    :class:`DenseAutocast`. The module's forward and the staged forward work unchanged.
    """
    if precision not in PRECISIONS:
        raise SegcliError(f"unknown precision {precision!r}; resolve it with resolve_precision first")
    if precision == "fp32":
        return PreparedPrecision(precision, 0, ())
    folded = fold_batch_norms(module)
    module.to(memory_format=torch.channels_last)
    wrapped = []
    for dotted in DENSE_PARTS:
        part = module.get_submodule(dotted) if _has(module, dotted) else None
        if part is None or isinstance(part, DenseAutocast):
            continue
        replace_submodule(module, dotted, DenseAutocast(part, _DTYPES[precision], device.type))
        wrapped.append(dotted)
    return PreparedPrecision(precision, folded, tuple(wrapped))


def _has(module: nn.Module, dotted: str) -> bool:
    try:
        module.get_submodule(dotted)
    except AttributeError:
        return False
    return True
