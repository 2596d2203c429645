"""The forward pass, in stages: the caller decides which detections are worth a mask.

:func:`detect` equals ``module(images)`` of a torchvision Mask R-CNN in eval mode, except
that a class filter runs before the mask head and masks stay at the mask head's
resolution; :func:`paste_masks` then pastes each into its box only (never a full frame).
:func:`semantic_segment` is the forward of a semantic model (``compare --semantic``).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torchvision.models.detection import MaskRCNN
from torchvision.models.detection.image_list import ImageList
from torchvision.models.detection.roi_heads import maskrcnn_inference
from torchvision.models.detection.transform import resize_boxes

from segcli.core.errors import SegcliError
from segcli.core.settings import Settings

if TYPE_CHECKING:
    from segcli.models.weights import Loaded

_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


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


def clip_to_image(raw: RawDetections, image_size: tuple[int, int]) -> RawDetections:
    """Drop detections that lie in padding only; clip the rest to the real image."""
    h, w = image_size
    boxes = raw.boxes.clone()
    boxes[:, 0::2] = boxes[:, 0::2].clamp(0, w)
    boxes[:, 1::2] = boxes[:, 1::2].clamp(0, h)
    keep = ((boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])).nonzero().flatten()
    return RawDetections(
        boxes=boxes[keep], scores=raw.scores[keep], labels=raw.labels[keep], mask_probs=raw.mask_probs[keep]
    )


def paste_masks(
    mask_probs: Tensor, boxes: Tensor, image_size: tuple[int, int], threshold: float, padding: int = 1
) -> tuple[list[np.ndarray], np.ndarray]:
    """Paste each (1, M, M) mask into its box, returning bool crops and their boxes.

    Follows torchvision's ``paste_masks_in_image`` step for step (pad by one pixel,
    expand the box to match, bilinear resize to the box) but never allocates a full
    frame: each result covers only its box, clipped to the image.
    """
    im_h, im_w = image_size
    n = int(mask_probs.shape[0])
    if n == 0:
        return [], np.zeros((0, 4), dtype=np.int64)
    m = int(mask_probs.shape[-1])
    scale = float(m + 2 * padding) / m
    padded = F.pad(mask_probs, (padding,) * 4)
    w_half = (boxes[:, 2] - boxes[:, 0]) * 0.5 * scale
    h_half = (boxes[:, 3] - boxes[:, 1]) * 0.5 * scale
    x_c = (boxes[:, 2] + boxes[:, 0]) * 0.5
    y_c = (boxes[:, 3] + boxes[:, 1]) * 0.5
    expanded = torch.stack([x_c - w_half, y_c - h_half, x_c + w_half, y_c + h_half], dim=1)
    corners = expanded.to(torch.int64).cpu().tolist()
    crops: list[np.ndarray] = []
    mask_boxes = np.zeros((n, 4), dtype=np.int64)
    for i, (bx0, by0, bx1, by1) in enumerate(corners):
        w = max(bx1 - bx0 + 1, 1)
        h = max(by1 - by0 + 1, 1)
        x0, x1 = max(bx0, 0), min(bx1 + 1, im_w)
        y0, y1 = max(by0, 0), min(by1 + 1, im_h)
        if x1 <= x0 or y1 <= y0:
            crops.append(np.zeros((0, 0), dtype=bool))
            continue
        resized = F.interpolate(padded[i : i + 1], size=(h, w), mode="bilinear", align_corners=False)[0, 0]
        crop = resized[y0 - by0 : y1 - by0, x0 - bx0 : x1 - bx0] > threshold
        crops.append(crop.cpu().numpy())
        mask_boxes[i] = (x0, y0, x1, y1)
    return crops, mask_boxes


def semantic_segment(loaded: Loaded, image: np.ndarray, *, size: int | None = None) -> np.ndarray:
    """The (H, W) int32 map of class indices (into ``loaded.categories``) of one RGB image.

    Preprocessing follows the weights' own transforms: the short side resized to ``size``
    (default: the spec's ``input_size``; antialiased bilinear), ImageNet normalisation. The
    per-pixel argmax at that size is brought back to the image's own size by
    nearest-neighbour sampling.
    """
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise SegcliError(f"semantic_segment expects an (H, W, 3) uint8 RGB image, got {image.shape}")
    size = loaded.spec.input_size if size is None else size
    if size < 1:
        raise SegcliError(f"the semantic model's input size must be at least 1, got {size}")
    h, w = int(image.shape[0]), int(image.shape[1])
    scale = size / min(h, w)
    in_size = (max(1, round(h * scale)), max(1, round(w * scale)))
    dev = loaded.device
    with torch.inference_mode():
        x = torch.from_numpy(np.ascontiguousarray(image)).to(dev).permute(2, 0, 1)[None].float() / 255.0
        x = F.interpolate(x, size=in_size, mode="bilinear", align_corners=False, antialias=True)
        mean = torch.tensor(_IMAGENET_MEAN, device=dev).view(1, 3, 1, 1)
        std = torch.tensor(_IMAGENET_STD, device=dev).view(1, 3, 1, 1)
        logits = loaded.module((x - mean) / std)["out"]
        labels = logits.argmax(dim=1, keepdim=True).to(torch.float32)
        labels = F.interpolate(labels, size=(h, w), mode="nearest")
        return labels[0, 0].to(torch.int32).cpu().numpy()
