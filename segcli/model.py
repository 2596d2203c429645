"""Models and weights: the only module that imports torchvision's detection models.

Three architectures are known by name (``coco``, ``coco-v2``, ``blocks``). Weights
come from torchvision's weights API and cache (``TORCH_HOME``), from the file
bundled with segcli (``blocks``) or from a local checkpoint (``--weights``).
:func:`detect` runs the network in stages so that the caller decides which
detections are worth a mask before any mask is computed.
"""

from __future__ import annotations

import hashlib
import os
import socket
import urllib.error
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torchvision.models.detection import (
    MaskRCNN,
    MaskRCNN_ResNet50_FPN_V2_Weights,
    MaskRCNN_ResNet50_FPN_Weights,
    maskrcnn_resnet50_fpn,
    maskrcnn_resnet50_fpn_v2,
)
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.image_list import ImageList
from torchvision.models.detection.roi_heads import RoIHeads, maskrcnn_inference
from torchvision.models.detection.transform import resize_boxes
from torchvision.models.segmentation import (
    DeepLabV3_ResNet50_Weights,
    FCN_ResNet50_Weights,
    LRASPP_MobileNet_V3_Large_Weights,
    deeplabv3_resnet50,
    fcn_resnet50,
    lraspp_mobilenet_v3_large,
)
from torchvision.ops import FeaturePyramidNetwork
from torchvision.ops.feature_pyramid_network import LastLevelMaxPool

from segcli.errors import SegcliError
from segcli.settings import Settings

BLOCKS_CATEGORIES: tuple[str, ...] = ("__background__", "cube", "sphere", "cylinder")
BUNDLED_BLOCKS_WEIGHTS = Path(__file__).parent / "weights" / "blocks.pt"
DOWNLOAD_TIMEOUT_S = 30.0

COCO_DEFAULTS = Settings(
    score_threshold=0.5,
    nms_iou=0.5,
    proposals=300,
    max_detections=100,
    mask_threshold=0.5,
    classes=None,
    min_size=800,
    max_size=1333,
)
BLOCKS_DEFAULTS = Settings(
    score_threshold=0.5,
    nms_iou=0.5,
    proposals=300,
    max_detections=100,
    mask_threshold=0.5,
    classes=None,
    min_size=384,
    max_size=640,
)


# --------------------------------------------------------------------------- blocks
class _ConvBN(nn.Sequential):
    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__(
            nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True),
        )


class _Stage(nn.Module):
    """A stride-2 conv followed by residual conv pairs."""

    def __init__(self, cin: int, cout: int, blocks: int) -> None:
        super().__init__()
        self.down = _ConvBN(cin, cout, stride=2)
        self.blocks = nn.ModuleList(
            nn.Sequential(_ConvBN(cout, cout), _ConvBN(cout, cout)) for _ in range(blocks)
        )

    def forward(self, x: Tensor) -> Tensor:
        x = self.down(x)
        for block in self.blocks:
            x = x + block(x)
        return x


class BlocksBackbone(nn.Module):
    """A small residual CNN with an FPN on top: strides 4, 8, 16, 32 (+ pool)."""

    def __init__(
        self,
        widths: Sequence[int] = (32, 64, 96, 128),
        blocks: Sequence[int] = (1, 2, 2, 1),
        fpn_channels: int = 64,
    ) -> None:
        super().__init__()
        self.stem = nn.Sequential(_ConvBN(3, 24, stride=2), _ConvBN(24, 24))
        chans = [24, *widths]
        self.stages = nn.ModuleList(_Stage(chans[i], chans[i + 1], blocks[i]) for i in range(len(widths)))
        self.fpn = FeaturePyramidNetwork(list(widths), fpn_channels, extra_blocks=LastLevelMaxPool())
        self.out_channels = fpn_channels

    def forward(self, x: Tensor) -> OrderedDict[str, Tensor]:
        x = self.stem(x)
        feats: OrderedDict[str, Tensor] = OrderedDict()
        for i, stage in enumerate(self.stages):
            x = stage(x)
            feats[str(i)] = x
        return self.fpn(feats)


class BlocksRoIHeads(RoIHeads):
    """RoI heads that also suppress duplicates *across* classes.

    torchvision's NMS is per class, so one block the classifier is unsure about
    (a cylinder that looks a little like a cube) can come out twice, once per class.
    A block has exactly one class: after the usual per-class NMS, a detection whose
    box overlaps a higher-scoring one of another class by IoU > ``cross_class_iou``
    is dropped. Set it to 1.0 to turn this off.
    """

    cross_class_iou: float = 0.7

    def postprocess_detections(
        self,
        class_logits: Tensor,
        box_regression: Tensor,
        proposals: list[Tensor],
        image_shapes: list[tuple[int, int]],
    ) -> tuple[list[Tensor], list[Tensor], list[Tensor]]:
        boxes, scores, labels = super().postprocess_detections(
            class_logits, box_regression, proposals, image_shapes
        )
        if self.cross_class_iou >= 1.0:
            return boxes, scores, labels
        from torchvision.ops import nms

        for i, (b, s) in enumerate(zip(boxes, scores)):
            keep = nms(b, s, self.cross_class_iou)[: self.detections_per_img]
            boxes[i], scores[i], labels[i] = b[keep], s[keep], labels[i][keep]
        return boxes, scores, labels


def build_blocks_maskrcnn(*, num_classes: int = len(BLOCKS_CATEGORIES), **kwargs: Any) -> MaskRCNN:
    """The bundled blocks model's architecture (about 2.3 M parameters)."""
    from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
    from torchvision.models.detection.mask_rcnn import MaskRCNNHeads, MaskRCNNPredictor
    from torchvision.ops import MultiScaleRoIAlign

    backbone = BlocksBackbone()
    ch = backbone.out_channels
    anchors = AnchorGenerator(
        sizes=((20,), (40,), (80,), (160,), (320,)), aspect_ratios=((0.5, 1.0, 2.0),) * 5
    )
    box_pool = MultiScaleRoIAlign(["0", "1", "2", "3"], output_size=7, sampling_ratio=2)
    mask_pool = MultiScaleRoIAlign(["0", "1", "2", "3"], output_size=14, sampling_ratio=2)
    kwargs.setdefault("min_size", BLOCKS_DEFAULTS.min_size)
    kwargs.setdefault("max_size", BLOCKS_DEFAULTS.max_size)
    # Fewer proposals and RoI samples than torchvision's defaults: scenes hold at
    # most 10 objects, and this keeps a training step cheap on a CPU.
    kwargs.setdefault("rpn_pre_nms_top_n_train", 1000)
    kwargs.setdefault("rpn_post_nms_top_n_train", 500)
    kwargs.setdefault("rpn_pre_nms_top_n_test", 500)
    kwargs.setdefault("box_batch_size_per_image", 128)
    model = MaskRCNN(
        backbone,
        num_classes=None,
        rpn_anchor_generator=anchors,
        box_roi_pool=box_pool,
        box_head=TwoMLPHead(ch * 7 * 7, 256),
        box_predictor=FastRCNNPredictor(256, num_classes),
        mask_roi_pool=mask_pool,
        mask_head=MaskRCNNHeads(ch, (64, 64, 64, 64), 1),
        mask_predictor=MaskRCNNPredictor(64, 64, num_classes),
        **kwargs,
    )
    # Same modules and state dict; only postprocess_detections differs.
    model.roi_heads.__class__ = BlocksRoIHeads
    return model


# --------------------------------------------------------------------------- specs
@dataclass(frozen=True)
class ModelSpec:
    """One named model: its architecture, where its weights come from, its defaults."""

    name: str
    architecture: str
    build: Callable[..., MaskRCNN]
    categories: tuple[str, ...]
    defaults: Settings
    torchvision_weights: Any = None  # a torchvision WeightsEnum member, or None
    bundled_weights: Path | None = None


def _coco_categories(weights: Any) -> tuple[str, ...]:
    return tuple(weights.meta["categories"])


def _build_coco(num_classes: int) -> MaskRCNN:
    return maskrcnn_resnet50_fpn(weights=None, weights_backbone=None, num_classes=num_classes)


def _build_coco_v2(num_classes: int) -> MaskRCNN:
    return maskrcnn_resnet50_fpn_v2(weights=None, weights_backbone=None, num_classes=num_classes)


def _build_blocks(num_classes: int) -> MaskRCNN:
    return build_blocks_maskrcnn(num_classes=num_classes)


MODELS: dict[str, ModelSpec] = {
    "coco": ModelSpec(
        name="coco",
        architecture="maskrcnn_resnet50_fpn",
        build=_build_coco,
        categories=_coco_categories(MaskRCNN_ResNet50_FPN_Weights.COCO_V1),
        defaults=COCO_DEFAULTS,
        torchvision_weights=MaskRCNN_ResNet50_FPN_Weights.COCO_V1,
    ),
    "coco-v2": ModelSpec(
        name="coco-v2",
        architecture="maskrcnn_resnet50_fpn_v2",
        build=_build_coco_v2,
        categories=_coco_categories(MaskRCNN_ResNet50_FPN_V2_Weights.COCO_V1),
        defaults=COCO_DEFAULTS,
        torchvision_weights=MaskRCNN_ResNet50_FPN_V2_Weights.COCO_V1,
    ),
    "blocks": ModelSpec(
        name="blocks",
        architecture="segcli_blocks_maskrcnn",
        build=_build_blocks,
        categories=BLOCKS_CATEGORIES,
        defaults=BLOCKS_DEFAULTS,
        bundled_weights=BUNDLED_BLOCKS_WEIGHTS,
    ),
}


def get_spec(name: str) -> ModelSpec:
    try:
        return MODELS[name]
    except KeyError:
        raise SegcliError(f"unknown model {name!r}; choose one of: {', '.join(MODELS)}") from None


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
        raise SegcliError(f"unknown device {text!r}; use auto, cpu, cuda, cuda:N or mps") from None
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
    raise SegcliError(f"unsupported device {text!r}; use auto, cpu, cuda, cuda:N or mps")


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


# --------------------------------------------------------------------------- weights
@dataclass(frozen=True)
class LoadedModel:
    module: MaskRCNN
    spec: ModelSpec
    categories: tuple[str, ...]
    weights: str  # a path or a torchvision weights name
    sha256: str
    device: torch.device

    def info(self) -> dict[str, str]:
        return {
            "name": self.spec.name,
            "architecture": self.spec.architecture,
            "weights": self.weights,
            "sha256": self.sha256,
        }


_SHA_CACHE: dict[tuple[str, int, int], str] = {}


def file_sha256(path: Path) -> str:
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _SHA_CACHE:
        digest = hashlib.sha256()
        with path.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
        _SHA_CACHE[key] = digest.hexdigest()
    return _SHA_CACHE[key]


def torchvision_cache_file(weights: Any) -> Path:
    """Where torchvision's weights API keeps (or would keep) ``weights``."""
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(weights.url)


def fetch_torchvision_weights(weights: Any, *, progress: bool = True, option: str = "--weights") -> Path:
    """The cached file of a torchvision weights enum member, downloading it if needed.

    Goes through ``weights.get_state_dict`` (torchvision's own download, hash check
    and cache) so the file lands exactly where a plain torchvision user's does.
    ``option`` is the command-line option that the offline error offers instead.
    """
    cached = torchvision_cache_file(weights)
    if cached.is_file():
        return cached
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)
    try:
        weights.get_state_dict(progress=progress, check_hash=True)
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise SegcliError(
            f"the COCO weights {cached.name} are not in the cache ({cached.parent}) and could "
            f"not be downloaded ({reason}). On a connected machine download {weights.url} "
            f"into {cached.parent}/ (set TORCH_HOME to move the cache), or pass "
            f"{option} PATH to a local checkpoint."
        ) from None
    except RuntimeError as exc:  # torchvision's hash check failed
        raise SegcliError(f"downloaded {cached.name} is damaged: {exc}".splitlines()[0]) from None
    finally:
        socket.setdefaulttimeout(previous)
    return cached


def read_checkpoint(path: Path) -> tuple[dict[str, Tensor], tuple[str, ...] | None]:
    """A state dict (and optional category names) from a checkpoint file.

    Accepted: a state dict, or a dict holding one under ``model`` or ``state_dict``,
    optionally beside ``categories`` (a list of names, index 0 the background).
    The file is loaded with ``weights_only=True``: it cannot run code.
    """
    import pickle
    import zipfile

    if not path.exists():
        raise SegcliError(f"checkpoint {path} does not exist")
    if not path.is_file():
        raise SegcliError(f"checkpoint {path} is not a file")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if "weights_only" in str(exc) or "global" in str(exc).lower():
            raise SegcliError(
                f"checkpoint {path} was refused: it holds Python objects that could run code, "
                "and segcli only loads plain tensors (torch.load weights_only=True)"
            ) from None
        raise SegcliError(f"checkpoint {path} is not a readable PyTorch file ({first})") from None
    except (RuntimeError, EOFError, ValueError, zipfile.BadZipFile, OSError, KeyError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise SegcliError(
            f"checkpoint {path} is not a readable PyTorch file (truncated or another format?): {first}"
        ) from None
    categories: tuple[str, ...] | None = None
    if isinstance(obj, dict):
        if "categories" in obj:
            cats = obj["categories"]
            if not isinstance(cats, (list, tuple)) or not all(isinstance(c, str) for c in cats):
                raise SegcliError(f"checkpoint {path}: 'categories' must be a list of names")
            categories = tuple(cats)
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
    return obj, categories


def _check_fits(
    module: nn.Module,
    state: dict[str, Tensor],
    path: Path,
    spec: ModelSpec | SemanticSpec,
    option: str = "--model",
) -> None:
    own = module.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    mismatched = [k for k in own if k in state and own[k].shape != state[k].shape]
    if not (missing or unexpected or mismatched):
        return
    cls_key = "roi_heads.box_predictor.cls_score.weight"
    if not missing and not unexpected and cls_key in mismatched:
        raise SegcliError(
            f"checkpoint {path} has {state[cls_key].shape[0]} classes but {option} {spec.name} "
            f"has {own[cls_key].shape[0]}; save {{'model': state_dict, 'categories': [...]}} "
            "so segcli knows the class names"
        )
    example = (missing or unexpected or mismatched)[0]
    raise SegcliError(
        f"checkpoint {path} does not fit {spec.architecture} ({option} {spec.name}): "
        f"{len(missing)} missing keys, {len(unexpected)} unexpected keys, "
        f"{len(mismatched)} of another shape (first: {example})"
    )


def load_model(
    name: str = "coco",
    *,
    weights: str | Path | None = None,
    device: str | torch.device = "auto",
    progress: bool = True,
) -> LoadedModel:
    """Build the named architecture and load its weights; eval mode, on ``device``."""
    spec = get_spec(name)
    dev = device if isinstance(device, torch.device) else resolve_device(device)
    categories = spec.categories
    if weights is not None:
        path = Path(weights).expanduser()
        state, ckpt_categories = read_checkpoint(path)
        if ckpt_categories is not None:
            categories = ckpt_categories
        source = str(path)
    elif spec.torchvision_weights is not None:
        path = fetch_torchvision_weights(spec.torchvision_weights, progress=progress)
        state, _ = read_checkpoint(path)
        source = f"torchvision:{spec.torchvision_weights}"
    elif spec.bundled_weights is not None:
        path = spec.bundled_weights
        if not path.is_file():
            raise SegcliError(
                f"the bundled weights of --model {spec.name} are missing ({path}); "
                "reinstall segcli or pass --weights PATH"
            )
        state, ckpt_categories = read_checkpoint(path)
        categories = ckpt_categories or categories
        source = f"bundled:{path.name}"
    else:  # pragma: no cover - every spec has a weights source
        raise SegcliError(f"--model {spec.name} has no weights; pass --weights PATH")
    module = spec.build(num_classes=len(categories))
    state = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
    _check_fits(module, state, path, spec)
    module.load_state_dict(state)
    module.eval().to(dev)
    return LoadedModel(
        module=module,
        spec=spec,
        categories=categories,
        weights=source,
        sha256=file_sha256(path),
        device=dev,
    )


# --------------------------------------------------------------------------- running
def configure(module: MaskRCNN, settings: Settings, *, class_filter: bool) -> None:
    """Apply the detector knobs of ``settings`` (all filled in) to ``module``."""
    assert settings.proposals is not None and settings.max_detections is not None
    rpn = module.rpn
    rpn._post_nms_top_n["testing"] = settings.proposals
    rpn._pre_nms_top_n["testing"] = max(rpn._pre_nms_top_n["testing"], settings.proposals)
    heads = module.roi_heads
    heads.score_thresh = settings.score_threshold
    heads.nms_thresh = settings.nms_iou
    # With a class filter the cap is applied after filtering (NMS is per class, so
    # filtering after NMS equals filtering before it).
    heads.detections_per_img = 1_000_000 if class_filter else settings.max_detections
    module.transform.min_size = (settings.min_size,)
    module.transform.max_size = settings.max_size


@dataclass
class RawDetections:
    """One image's detections before masks are pasted: boxes in original pixels."""

    boxes: Tensor  # (N, 4) float, original image coordinates
    scores: Tensor  # (N,)
    labels: Tensor  # (N,) int64 category index
    mask_probs: Tensor  # (N, 1, M, M) float probabilities in box coordinates


def preprocess(module: MaskRCNN, images: list[Tensor]) -> tuple[ImageList, list[tuple[int, int]]]:
    """Normalise, resize and batch ``images`` exactly as ``module(images)`` would."""
    original_sizes = [(int(im.shape[-2]), int(im.shape[-1])) for im in images]
    image_list, _ = module.transform(images)
    return image_list, original_sizes


def detect(
    module: MaskRCNN,
    images: list[Tensor],
    *,
    keep_labels: Tensor | None,
    max_detections: int,
) -> list[RawDetections]:
    """Run Mask R-CNN in eval mode, computing mask logits only for kept detections.

    Equals ``module(images)`` except that masks are left at the mask head's
    resolution (the caller pastes them) and ``keep_labels`` filters classes before
    the mask head runs.
    """
    image_list, original_sizes = preprocess(module, images)
    return detect_preprocessed(
        module, image_list, original_sizes, keep_labels=keep_labels, max_detections=max_detections
    )


def detect_preprocessed(
    module: MaskRCNN,
    image_list: ImageList,
    original_sizes: list[tuple[int, int]],
    *,
    keep_labels: Tensor | None,
    max_detections: int,
) -> list[RawDetections]:
    """Backbone, RPN and ROI heads on an already preprocessed batch (see :func:`detect`)."""
    features = module.backbone(image_list.tensors)
    if isinstance(features, Tensor):
        features = OrderedDict([("0", features)])
    proposals, _ = module.rpn(image_list, features)
    heads = module.roi_heads
    sizes = image_list.image_sizes
    box_features = heads.box_head(heads.box_roi_pool(features, proposals, sizes))
    class_logits, box_regression = heads.box_predictor(box_features)
    boxes, scores, labels = heads.postprocess_detections(class_logits, box_regression, proposals, sizes)
    if keep_labels is not None:
        keep = [torch.isin(lab, keep_labels).nonzero().flatten()[:max_detections] for lab in labels]
        boxes = [b[k] for b, k in zip(boxes, keep)]
        scores = [s[k] for s, k in zip(scores, keep)]
        labels = [la[k] for la, k in zip(labels, keep)]
    if sum(len(b) for b in boxes):
        mask_features = heads.mask_head(heads.mask_roi_pool(features, boxes, sizes))
        mask_probs = maskrcnn_inference(heads.mask_predictor(mask_features), labels)
    else:
        m = 28
        mask_probs = [b.new_zeros((0, 1, m, m)) for b in boxes]
    return [
        RawDetections(
            boxes=resize_boxes(b, size, orig),
            scores=s,
            labels=la,
            mask_probs=mp,
        )
        for b, s, la, mp, size, orig in zip(boxes, scores, labels, mask_probs, sizes, original_sizes)
    ]


# --------------------------------------------------------------------------- semantic models
# ``segcli compare semantic-vs-instance --semantic deeplabv3|fcn|lraspp``: torchvision's
# semantic segmentation models with their COCO_WITH_VOC_LABELS_V1 weights (21 PASCAL VOC
# classes, index 0 the background). Weights are resolved like the instance model's:
# torchvision's cache (downloaded once), or a local checkpoint (--semantic-weights), loaded
# with weights_only=True and checked against the architecture before use.

SEMANTIC_INPUT_SIZE = 520  # short side, as torchvision's weights.transforms() resize
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


def _build_deeplabv3(num_classes: int, aux_loss: bool) -> nn.Module:
    return deeplabv3_resnet50(weights=None, weights_backbone=None, num_classes=num_classes, aux_loss=aux_loss)


def _build_fcn(num_classes: int, aux_loss: bool) -> nn.Module:
    return fcn_resnet50(weights=None, weights_backbone=None, num_classes=num_classes, aux_loss=aux_loss)


def _build_lraspp(num_classes: int, aux_loss: bool) -> nn.Module:
    if aux_loss:
        raise SegcliError("lraspp_mobilenet_v3_large has no auxiliary classifier")
    return lraspp_mobilenet_v3_large(weights=None, weights_backbone=None, num_classes=num_classes)


@dataclass(frozen=True)
class SemanticSpec:
    """One named semantic segmentation model (``--semantic NAME``).

    ``build(num_classes=, aux_loss=)`` makes the bare architecture; with the torchvision
    weights, ``aux_loss=True`` for DeepLabV3 and FCN (their checkpoints hold the
    ``aux_classifier`` keys), exactly as torchvision's own ``weights=`` path builds them.
    """

    name: str
    architecture: str
    build: Callable[..., nn.Module]
    torchvision_weights: Any
    aux_loss: bool

    @property
    def categories(self) -> tuple[str, ...]:
        return tuple(self.torchvision_weights.meta["categories"])


SEMANTIC_MODELS: dict[str, SemanticSpec] = {
    "deeplabv3": SemanticSpec(
        name="deeplabv3",
        architecture="deeplabv3_resnet50",
        build=_build_deeplabv3,
        torchvision_weights=DeepLabV3_ResNet50_Weights.COCO_WITH_VOC_LABELS_V1,
        aux_loss=True,
    ),
    "fcn": SemanticSpec(
        name="fcn",
        architecture="fcn_resnet50",
        build=_build_fcn,
        torchvision_weights=FCN_ResNet50_Weights.COCO_WITH_VOC_LABELS_V1,
        aux_loss=True,
    ),
    "lraspp": SemanticSpec(
        name="lraspp",
        architecture="lraspp_mobilenet_v3_large",
        build=_build_lraspp,
        torchvision_weights=LRASPP_MobileNet_V3_Large_Weights.COCO_WITH_VOC_LABELS_V1,
        aux_loss=False,
    ),
}


def get_semantic_spec(name: str) -> SemanticSpec:
    try:
        return SEMANTIC_MODELS[name]
    except KeyError:
        raise SegcliError(
            f"unknown semantic model {name!r}; choose one of: {', '.join(SEMANTIC_MODELS)}"
        ) from None


@dataclass(frozen=True)
class LoadedSemanticModel:
    module: nn.Module
    spec: SemanticSpec
    categories: tuple[str, ...]  # index 0 the background
    weights: str  # a path or a torchvision weights name
    sha256: str
    device: torch.device

    def info(self) -> dict[str, str]:
        return {
            "name": self.spec.name,
            "architecture": self.spec.architecture,
            "weights": self.weights,
            "sha256": self.sha256,
        }


def load_semantic_model(
    name: str,
    *,
    weights: str | Path | None = None,
    device: str | torch.device = "auto",
    progress: bool = True,
) -> LoadedSemanticModel:
    """Build the named semantic model and load its weights; eval mode, on ``device``.

    A local checkpoint may leave out the ``aux_classifier`` keys (a model trained
    without the auxiliary loss); it is never used for inference anyway.
    """
    spec = get_semantic_spec(name)
    dev = device if isinstance(device, torch.device) else resolve_device(device)
    categories = spec.categories
    if weights is not None:
        path = Path(weights).expanduser()
        state, ckpt_categories = read_checkpoint(path)
        categories = ckpt_categories or categories
        source = str(path)
        aux = spec.aux_loss and any(k.startswith("aux_classifier.") for k in state)
    else:
        path = fetch_torchvision_weights(
            spec.torchvision_weights, progress=progress, option="--semantic-weights"
        )
        state, _ = read_checkpoint(path)
        source = f"torchvision:{spec.torchvision_weights}"
        aux = spec.aux_loss
    module = spec.build(num_classes=len(categories), aux_loss=aux)
    state = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
    _check_fits(module, state, path, spec, option="--semantic")
    module.load_state_dict(state)
    if aux:
        module.aux_classifier = None  # only the main head's output is used
    module.eval().to(dev)
    return LoadedSemanticModel(
        module=module,
        spec=spec,
        categories=categories,
        weights=source,
        sha256=file_sha256(path),
        device=dev,
    )


def semantic_segment(
    loaded: LoadedSemanticModel, image: np.ndarray, *, size: int = SEMANTIC_INPUT_SIZE
) -> np.ndarray:
    """The (H, W) int32 map of class indices (into ``loaded.categories``) of one RGB image.

    Preprocessing follows the weights' own transforms: the short side resized to ``size``
    (antialiased bilinear), ImageNet normalisation. The per-pixel argmax at that size is
    brought back to the image's own size by nearest-neighbour sampling.
    """
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise SegcliError(f"semantic_segment expects an (H, W, 3) uint8 RGB image, got {image.shape}")
    if size < 1:
        raise SegcliError(f"the semantic model's input size must be at least 1, got {size}")
    h, w = int(image.shape[0]), int(image.shape[1])
    scale = size / min(h, w)
    in_size = (max(1, round(h * scale)), max(1, round(w * scale)))
    dev = loaded.device
    with torch.inference_mode():
        x = torch.from_numpy(np.ascontiguousarray(image)).to(dev).permute(2, 0, 1)[None].float() / 255.0
        x = nn.functional.interpolate(x, size=in_size, mode="bilinear", align_corners=False, antialias=True)
        mean = torch.tensor(_IMAGENET_MEAN, device=dev).view(1, 3, 1, 1)
        std = torch.tensor(_IMAGENET_STD, device=dev).view(1, 3, 1, 1)
        logits = loaded.module((x - mean) / std)["out"]
        labels = logits.argmax(dim=1, keepdim=True).to(torch.float32)
        labels = nn.functional.interpolate(labels, size=(h, w), mode="nearest")
        return labels[0, 0].to(torch.int32).cpu().numpy()
