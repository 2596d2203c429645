"""One training example: image and masks resized, flipped and padded together, as tensors.

The resize happens here, on the uint8 image with OpenCV (bilinear, the output size computed
as torchvision's ``GeneralizedRCNNTransform`` computes it), and polygons are drawn straight
at the output size; the model's own resize is switched off while training (see
:func:`segcli.train.model.training_mode`). So a 12 MP photo never becomes a 12 MP float
tensor, a mask is never held at full size, and all randomness comes from the example's own
generator (scale and flip depend only on the seed, the epoch and the image's index: a resumed
run draws what the uninterrupted one drew).

Scale jitter: the short-side target ``min_size`` (and the long-side cap) is multiplied by a
factor drawn uniformly from ``[1 - j, 1 + j]``. Horizontal flip: with probability ``hflip``.
Images too elongated to keep a 32-pixel short side at the model's size are zero-padded at
the bottom/right (as the segmenter pads them), never stretched.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
import torch
from torch import Tensor

from segcli.core.errors import SegcliError
from segcli.train.data import Sample, render_mask

MIN_SIDE = 32
"""Shortest side handed to the network (smaller ones are zero-padded)."""


@dataclass(frozen=True)
class Augment:
    min_size: int
    max_size: int
    scale_jitter: float = 0.0
    hflip: float = 0.0


def output_size(height: int, width: int, min_size: float, max_size: float) -> tuple[int, int]:
    """(H, W) torchvision's transform resizes an image to (``floor(side * scale)``, at least 1)."""
    scale = min(min_size / min(height, width), max_size / max(height, width))
    return max(1, math.floor(height * scale)), max(1, math.floor(width * scale))


def example_rng(seed: int, epoch: int, index: int) -> np.random.Generator:
    return np.random.default_rng([int(seed), int(epoch), int(index), 0xA06])


def load_pixels(sample: Sample) -> tuple[np.ndarray, object]:
    """The sample's RGB pixels (EXIF applied) and, for a generated scene, the scene."""
    if sample.seed is not None:
        from segcli.models.blocks.scenes import render_scene

        scene = render_scene(sample.seed)
        return scene.image, scene
    from segcli.io.images import read_image

    assert sample.path is not None
    pixels = read_image(sample.path).pixels
    if pixels.shape[:2] != (sample.height, sample.width):
        raise SegcliError(
            f"{sample.where}: image {sample.path} decodes to {pixels.shape[1]}x{pixels.shape[0]}, "
            f"not the {sample.width}x{sample.height} its header declares"
        )
    return pixels, None


def make_example(
    sample: Sample,
    aug: Augment,
    rng: np.random.Generator,
    *,
    pixels: np.ndarray | None = None,
    scene: object = None,
) -> tuple[Tensor, dict[str, Tensor]]:
    """(image CHW float in [0, 1], Mask R-CNN target) for one sample."""
    if pixels is None:
        pixels, scene = load_pixels(sample)
    factor = 1.0 + float(rng.uniform(-aug.scale_jitter, aug.scale_jitter)) if aug.scale_jitter > 0 else 1.0
    flip = bool(rng.random() < aug.hflip) if aug.hflip > 0 else False
    h, w = sample.height, sample.width
    oh, ow = output_size(h, w, aug.min_size * factor, aug.max_size * factor)
    image = pixels if (oh, ow) == (h, w) else cv2.resize(pixels, (ow, oh), interpolation=cv2.INTER_LINEAR)
    masks: list[np.ndarray] = []
    labels: list[int] = []
    for obj in sample.objects:
        m = render_mask(obj.geometry, sample, oh, ow, scene)
        if m.any():
            masks.append(m)
            labels.append(obj.label)
    if flip:
        image = image[:, ::-1]
        masks = [m[:, ::-1] for m in masks]
    pad_h, pad_w = max(0, MIN_SIDE - oh), max(0, MIN_SIDE - ow)
    if pad_h or pad_w:
        image = np.pad(image, ((0, pad_h), (0, pad_w), (0, 0)))
        masks = [np.pad(m, ((0, pad_h), (0, pad_w))) for m in masks]
    stack = np.stack(masks) if masks else np.zeros((0, *image.shape[:2]), bool)
    boxes = np.zeros((len(masks), 4), np.float32)
    for i, m in enumerate(masks):
        ys = np.flatnonzero(m.any(axis=1))
        xs = np.flatnonzero(m.any(axis=0))
        boxes[i] = (xs[0], ys[0], xs[-1] + 1, ys[-1] + 1)
    tensor = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float().div_(255.0)
    target = {
        "boxes": torch.from_numpy(boxes),
        "labels": torch.tensor(labels, dtype=torch.int64),
        "masks": torch.from_numpy(np.ascontiguousarray(stack).astype(np.uint8)),
    }
    return tensor, target
