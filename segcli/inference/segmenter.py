"""``Segmenter``: a plain callable from a batch of RGB images to ``list[Instances]``."""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TypeGuard, cast, overload

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torchvision.models.detection import MaskRCNN
from torchvision.models.detection.image_list import ImageList

from segcli.core.categories import PLACEHOLDER_CLASSES
from segcli.core.errors import SegcliError
from segcli.core.instances import Instances
from segcli.core.settings import Settings
from segcli.inference.forward import RawDetections, clip_to_image, configure, detect_preprocessed, paste_masks
from segcli.inference.tiles import (
    MergeStats,
    Part,
    TiledInstances,
    TileGrid,
    merge_parts,
    place,
    tile_grid,
    tile_pixels,
    top_detections,
)
from segcli.io.images import LoadedImage, read_image
from segcli.models.precision import prepare_model, resolve_precision
from segcli.models.registry import check_classes
from segcli.models.weights import Loaded, load_model, resolve_device

ImageInput = np.ndarray | str | Path | LoadedImage
"""One image for :class:`Segmenter`: an (H, W, 3) uint8 RGB array, a path (read like the CLI
reads it, EXIF orientation applied) or a :class:`~segcli.io.images.LoadedImage`."""

EXPECTED = "an (H, W, 3) uint8 RGB array, a path, or a list of them"

MIN_MODEL_SIDE = 32
"""Images so elongated that a side would shrink below this many model pixels are padded."""

SAMPLED_INPUT_PIXELS = 50_000_000
"""Above this many (padded) pixels the model input is computed by sampling (see
:func:`sampled_model_input`) instead of from full-size float copies of the image (12 bytes a
pixel, twice): at most (2 x model input) pixels are read and converted, so a 1x100000 strip or
a 144 MP image costs what the model sees. At or below it the input is torchvision's own
(``module.transform``), bit for bit; a 50 MP image costs about 1.2 GB there."""


def _linear_taps(in_size: int, out_size: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Source indices and weights of a bilinear resize ``in_size -> out_size`` along one axis
    (align_corners=False, scale = in / out, as ``interpolate`` with a recomputed scale)."""
    scale = torch.tensor(float(in_size), dtype=torch.float32) / out_size
    src = (scale * (torch.arange(out_size, dtype=torch.float32) + 0.5) - 0.5).clamp(min=0)
    i0 = src.floor().to(torch.int64).clamp(max=in_size - 1)
    lam1 = (src - i0).clamp(0, 1)
    i1 = i0 + (i0 < in_size - 1).to(torch.int64)
    return i0, i1, 1 - lam1, lam1


def sampled_model_input(
    image: np.ndarray,
    padded: tuple[int, int],
    out_size: tuple[int, int],
    mean: Sequence[float],
    std: Sequence[float],
) -> Tensor:
    """The normalised bilinear resize of ``image`` zero-padded to ``padded``, at ``out_size``.

    Equals ``interpolate(normalize(pad(image / 255)))`` (torchvision's transform) up to float
    rounding (measured: at most 3e-4 in normalised units, < 0.02 of one 8-bit level), but
    only the rows and columns the resize reads are gathered (in uint8) and converted:
    memory is O(out_size), whatever the image's size.
    """
    h, w = int(image.shape[0]), int(image.shape[1])
    r0, r1, hw0, hw1 = _linear_taps(padded[0], out_size[0])
    c0, c1, ww0, ww1 = _linear_taps(padded[1], out_size[1])
    rows = torch.unique(torch.cat([r0, r1]))
    cols = torch.unique(torch.cat([c0, c1]))
    rows_np, cols_np = rows.numpy(), cols.numpy()
    sub = np.zeros((len(rows_np), len(cols_np), 3), np.uint8)  # padding reads zeros
    real_r, real_c = rows_np < h, cols_np < w
    sub[np.ix_(real_r, real_c)] = image[np.ix_(rows_np[real_r], cols_np[real_c])]
    x = torch.from_numpy(sub).permute(2, 0, 1).float().div_(255.0)
    m = torch.tensor(list(mean), dtype=torch.float32)[:, None, None]
    s = torch.tensor(list(std), dtype=torch.float32)[:, None, None]
    x = (x - m) / s
    ir0, ir1 = torch.searchsorted(rows, r0), torch.searchsorted(rows, r1)
    ic0, ic1 = torch.searchsorted(cols, c0), torch.searchsorted(cols, c1)
    top, bottom = x[:, ir0], x[:, ir1]
    w0, w1 = ww0[None, None, :], ww1[None, None, :]
    t0 = top[:, :, ic0] * w0 + top[:, :, ic1] * w1
    t1 = bottom[:, :, ic0] * w0 + bottom[:, :, ic1] * w1
    return (t0 * hw0[None, :, None] + t1 * hw1[None, :, None]).contiguous()


class Segmenter:
    """Loads a model once; each call segments one image or a batch of images.

    >>> seg = Segmenter("blocks")                             # doctest: +SKIP
    >>> inst = seg("scene.png")                               # one image -> Instances
    >>> a, b = seg(["a.jpg", rgb_uint8])                      # a list -> list[Instances]

    An image is an (H, W, 3) uint8 RGB array, a path (read with :func:`segcli.io.images.read_image`,
    EXIF orientation applied, as the CLI reads it) or a ``LoadedImage``. Results are in each
    image's own pixels. The object holds no per-call state, so one instance may serve a
    worker loop. ``cli``: errors name command-line options (``--weights``), not arguments.
    """

    def __init__(
        self,
        model: str | None = None,
        *,
        weights: str | Path | None = None,
        device: str | torch.device = "auto",
        settings: Settings | None = None,
        half: bool = False,
        progress: bool = True,
        tile_batch_size: int = 1,
    ) -> None:
        """``settings.tile`` slices each image into tiles (see :meth:`segment_tiled`), run
        ``tile_batch_size`` at a time. ``settings.precision`` picks the number format (``fp32``
        when unset; ``auto`` the fastest this device runs natively; see
        :mod:`segcli.models.precision`); ``half=True`` is the older spelling of ``fp16``. A mode
        the device cannot run natively raises ``SegcliError`` before the model loads.
        ``self.settings.precision`` records the mode that runs. ``model`` ``None``: the model a
        ``weights`` checkpoint names (``segcli train`` records it, with its input size), else
        ``coco``."""
        dev = device if isinstance(device, torch.device) else resolve_device(device)
        settings = settings or Settings()
        requested = settings.precision or ("fp16" if half else "fp32")
        if half and requested != "fp16":
            raise SegcliError(f"half=True is precision fp16; it conflicts with precision {requested}")
        self.precision: str = resolve_precision(requested, dev)
        self.loaded: Loaded = load_model(model, weights=weights, device=dev, progress=progress)
        self.module = cast(MaskRCNN, self.loaded.module)
        settings = dataclasses.replace(settings, precision=self.precision)
        settings = settings.with_defaults(self.loaded.settings_defaults)
        if settings.tile is not None and settings.tile.size is None:  # auto: the model's input side
            size = max(int(settings.min_size or 800), 32)
            settings = dataclasses.replace(settings, tile=dataclasses.replace(settings.tile, size=size))
        self.settings: Settings = settings
        if tile_batch_size < 1:
            raise SegcliError(f"the tile batch size must be at least 1, got {tile_batch_size}")
        self.tile_batch_size = tile_batch_size
        self._keep_labels = self._class_filter(self.settings.classes)
        configure(self.module, self.settings, class_filter=self._keep_labels is not None)
        prepare_model(self.module, self.precision, dev)

    @property
    def half(self) -> bool:
        """Whether the network runs in fp16 (the older ``--half``)."""
        return self.precision == "fp16"

    def __repr__(self) -> str:
        classes = ",".join(self.settings.classes) if self.settings.classes else "all"
        return (
            f"Segmenter(model={self.loaded.spec.name!r}, weights={self.loaded.weights!r}, "
            f"device={self.device}, classes={classes}"
            f"{'' if self.precision == 'fp32' else f', precision={self.precision}'}"
            f"{'' if self.settings.tile is None else f', tile={self.settings.tile.size}'})"
        )

    @property
    def device(self) -> torch.device:
        return self.loaded.device

    @property
    def categories(self) -> tuple[str, ...]:
        return self.loaded.categories

    @property
    def class_names(self) -> list[str]:
        """The names a user may pass to ``--classes``."""
        return [c for c in self.categories if c not in PLACEHOLDER_CLASSES]

    def model_info(self) -> dict[str, str]:
        return self.loaded.info()

    def _class_filter(self, classes: tuple[str, ...] | None) -> Tensor | None:
        if classes is None:
            return None
        ids = check_classes(classes, self.categories, self.loaded.spec.name)
        return torch.tensor(sorted(set(ids.values())), device=self.device)

    def to_tensor(self, image: np.ndarray) -> Tensor:
        """One (H, W, 3) uint8 RGB image as the model's input: CHW float in [0, 1] on the
        device, zero-padded at the bottom/right if it is too elongated (see ``_padding``)."""
        check_image(image)
        tensor = torch.from_numpy(image if image.flags.writeable else image.copy())
        if self.device.type == "cuda":
            tensor = tensor.pin_memory().to(self.device, non_blocking=True)
        else:
            tensor = tensor.to(self.device)
        tensor = tensor.permute(2, 0, 1).float().div_(255.0)
        pad_h, pad_w = self._padding(int(image.shape[0]), int(image.shape[1]))
        if pad_h or pad_w:
            tensor = F.pad(tensor, (0, pad_w, 0, pad_h))
        return tensor

    def _padding(self, h: int, w: int) -> tuple[int, int]:
        """Bottom/right zero padding that keeps both sides >= MIN_MODEL_SIDE after resizing.

        torchvision's resize would scale the short side of a 4000x3 image to zero pixels
        and fail; padding leaves the coordinates of the real pixels unchanged.
        """
        min_size, max_size = int(self.settings.min_size or 800), int(self.settings.max_size or 1333)
        # Padding cannot lift the short side above min_size or max_size: aim no higher.
        target = min(MIN_MODEL_SIDE, min_size, max_size)
        scale = min(min_size / min(h, w), max_size / max(h, w))
        if min(h, w) * scale >= target:
            return 0, 0
        need = math.ceil(target * max(h, w) / max_size)
        return max(need - h, 0), max(need - w, 0)

    # A str is a Sequence[str] too, so the overloads overlap; the first wins, as at run time.
    @overload
    def __call__(self, images: np.ndarray | str | Path | LoadedImage) -> Instances: ...  # type: ignore[overload-overlap]

    @overload
    def __call__(self, images: Sequence[ImageInput]) -> list[Instances]: ...

    def __call__(self, images: ImageInput | Sequence[ImageInput]) -> Instances | list[Instances]:
        """Segment one image (-> ``Instances``) or a list of images (-> ``list[Instances]``)."""
        if _is_single(images):
            return self.segment_arrays([as_array(images)])[0]
        if not isinstance(images, (list, tuple)) and not (
            isinstance(images, np.ndarray) and images.ndim == 4
        ):
            raise TypeError(f"Segmenter takes {EXPECTED}; got {_describe(images)}")
        return self.segment_arrays([as_array(im) for im in images])

    def segment_arrays(self, images: Sequence[np.ndarray]) -> list[Instances]:
        """The batch call on checked (H, W, 3) uint8 RGB arrays (what engines use): each image
        whole, or in tiles when ``settings.tile`` is set (:meth:`segment_tiled`)."""
        if self.settings.tile is None:
            return self.segment_whole(images)
        return [self.segment_tiled(image) for image in images]

    def segment_tiled(self, image: np.ndarray) -> TiledInstances:
        """One image in tiles (``settings.tile``): the tiles go through the network
        ``tile_batch_size`` at a time (one forward pass per batch: every tile has one size),
        each tile's detections are placed in the image, the whole image runs once more if
        ``tile.full``, and detections shared across tile borders are merged on their masks
        (:func:`segcli.inference.tiles.merge_parts`); ``max_detections`` applies to the merged
        result. Only one tile's pixels are copied at a time, so an image held in a memory map
        costs a tile. An image that is a single tile gives the untiled result, exactly.
        ``result.tiling`` says what was done (tile count, grid, seconds per stage)."""
        tile = self.settings.tile
        assert tile is not None and tile.size is not None
        check_image(image)
        h, w = int(image.shape[0]), int(image.shape[1])
        grid = tile_grid((h, w), tile.size, tile.overlap)
        seconds = {"tiles_read": 0.0, "tiles_model": 0.0, "full_image": 0.0, "merge": 0.0}
        stats = MergeStats()
        if grid.covers_image:
            t0 = time.perf_counter()
            merged = self.segment_whole([image])[0]
            seconds["tiles_model"] = time.perf_counter() - t0
            stats.detections = stats.instances = len(merged)
            full = False
        else:
            parts = self.tile_parts(image, grid, seconds)
            full = tile.full
            t0 = time.perf_counter()
            merged = merge_parts(
                parts,
                (h, w),
                merge=tile.merge,
                match=tile.match,
                threshold=tile.match_threshold,
                class_agnostic=tile.class_agnostic,
                stats=stats,
            )
            merged = top_detections(merged, self.settings.max_detections)
            seconds["merge"] = time.perf_counter() - t0
        tiling = {
            "tiles": len(grid),
            "grid": grid.to_dict(),
            "full_image_pass": full,
            "detections_before_merge": stats.detections,
            "merged_groups": stats.merged_groups,
            "seconds": {k: round(v, 4) for k, v in seconds.items()},
        }
        return TiledInstances(
            image_size=merged.image_size,
            boxes=merged.boxes,
            scores=merged.scores,
            class_ids=merged.class_ids,
            class_names=merged.class_names,
            masks=merged.masks,
            mask_boxes=merged.mask_boxes,
            tiling=tiling,
        )

    def tile_parts(self, image: np.ndarray, grid: TileGrid, seconds: dict[str, float]) -> list[Part]:
        """Every tile's detections placed in the image (and first, with ``tile.full``, the whole
        image's), before merging; the seconds each stage took are added to ``seconds``."""
        tile = self.settings.tile
        assert tile is not None
        h, w = grid.image_size
        parts: list[Part] = []
        windows = grid.windows
        for start in range(0, len(windows), self.tile_batch_size):
            chunk = windows[start : start + self.tile_batch_size]
            t0 = time.perf_counter()
            pixels = [tile_pixels(image, window) for window in chunk]
            t1 = time.perf_counter()
            found = self.segment_whole(pixels)
            seconds["tiles_read"] = seconds.get("tiles_read", 0.0) + t1 - t0
            seconds["tiles_model"] = seconds.get("tiles_model", 0.0) + time.perf_counter() - t1
            parts.extend(Part(win, place(inst, win, (h, w))) for win, inst in zip(chunk, found))
            del pixels
        if tile.full:
            t0 = time.perf_counter()
            parts.insert(0, Part((0, 0, w, h), self.segment_whole([image])[0]))
            seconds["full_image"] = seconds.get("full_image", 0.0) + time.perf_counter() - t0
        return parts

    def segment_whole(self, images: Sequence[np.ndarray]) -> list[Instances]:
        """Each image whole, as the network sees it (no tiling).

        Each result is independent of the others in the batch: images go through the network
        together only when they have the same model input size (so no image is padded for
        another's sake), and on the CPU one at a time (batching gains nothing there, and
        batched kernels need not round alike).
        """
        if not len(images):
            return []
        results: list[Instances | None] = [None] * len(images)
        with torch.inference_mode():
            groups: dict[tuple[int, ...], list[tuple[int, Tensor, tuple[int, int]]]] = {}
            for i, image in enumerate(images):
                tensor, before = self.model_input(image)
                key = (i,) if self.device.type == "cpu" else tuple(tensor.shape)
                groups.setdefault(key, []).append((i, tensor, before))
            for group in groups.values():
                transform = self.module.transform
                batched = transform.batch_images([t for _, t, _ in group], transform.size_divisible)
                image_list = ImageList(batched, [(int(t.shape[-2]), int(t.shape[-1])) for _, t, _ in group])
                raws = detect_preprocessed(
                    self.module,
                    image_list,
                    [before for _, _, before in group],
                    keep_labels=self._keep_labels,
                    max_detections=int(self.settings.max_detections or 100),
                )
                for (i, _, _), raw in zip(group, raws):
                    image = images[i]
                    results[i] = self.to_instances(raw, (int(image.shape[0]), int(image.shape[1])))
        return [r for r in results if r is not None]

    def model_input(self, image: np.ndarray) -> tuple[Tensor, tuple[int, int]]:
        """What the network sees of ``image``: the normalised, resized CHW float tensor, and the
        (padded) size it was resized from -- what ``module.transform`` makes of
        :meth:`to_tensor`'s output.

        Images whose padded size exceeds :data:`SAMPLED_INPUT_PIXELS` take the sampled path
        (:func:`sampled_model_input`): the same bilinear resize computed from the only pixels
        it reads, so memory is bounded by the model's input, not by the file.
        """
        check_image(image)
        h, w = int(image.shape[0]), int(image.shape[1])
        pad_h, pad_w = self._padding(h, w)
        before = (h + pad_h, w + pad_w)
        transform = self.module.transform
        if before[0] * before[1] <= SAMPLED_INPUT_PIXELS:
            # module.transform itself (its hooks fire: segcli explain records them); one image,
            # so the batch holds it alone: crop the size-divisible padding back off.
            image_list, _ = transform([self.to_tensor(image)])
            rh, rw = image_list.image_sizes[0]
            return image_list.tensors[0, :, :rh, :rw], before
        scale = min(float(transform.min_size[-1]) / min(before), float(transform.max_size) / max(before))
        out_size = (max(int(before[0] * scale), 1), max(int(before[1] * scale), 1))
        tensor = sampled_model_input(image, before, out_size, transform.image_mean, transform.image_std)
        return tensor.to(self.device), before

    def to_instances(self, raw: RawDetections, image_size: tuple[int, int]) -> Instances:
        """One image's raw detections as ``Instances``: masks pasted and thresholded, in
        the image's own pixels (``image_size`` = (H, W) before any padding)."""
        if raw.boxes.shape[0] and self._padding(*image_size) != (0, 0):
            raw = clip_to_image(raw, image_size)
        threshold = float(self.settings.mask_threshold if self.settings.mask_threshold is not None else 0.5)
        crops, mask_boxes = paste_masks(raw.mask_probs.float(), raw.boxes.float(), image_size, threshold)
        labels = raw.labels.cpu().numpy().astype(np.int64)
        return Instances(
            image_size=image_size,
            boxes=raw.boxes.float().cpu().numpy(),
            scores=raw.scores.float().cpu().numpy(),
            class_ids=labels,
            class_names=tuple(self.categories[i] for i in labels),
            masks=tuple(crops),
            mask_boxes=mask_boxes,
        )


def _describe(obj: object) -> str:
    if isinstance(obj, np.ndarray):
        return f"an array of shape {obj.shape} and dtype {obj.dtype}"
    return f"a {type(obj).__name__}"


def _is_single(obj: object) -> TypeGuard[ImageInput]:
    return isinstance(obj, (str, Path, LoadedImage)) or (isinstance(obj, np.ndarray) and obj.ndim != 4)


def check_image(image: np.ndarray) -> None:
    """Raise a ``SegcliError`` saying exactly what is expected unless ``image`` is (H, W, 3) uint8."""
    if image.ndim == 2 or (image.ndim == 3 and image.shape[2] in (1, 4)):
        raise SegcliError(
            f"Segmenter needs RGB images, (H, W, 3) uint8; got shape {image.shape} (grayscale or RGBA?). "
            "Pass the file's path, or segcli.read_image(path).pixels, which convert it"
        )
    if image.ndim != 3 or image.shape[2] != 3:
        raise SegcliError(f"Segmenter takes {EXPECTED}; got {_describe(image)}")
    if image.dtype != np.uint8:
        hint = (
            " (floats in [0, 1]? use (img * 255).round().astype(np.uint8))" if image.dtype.kind == "f" else ""
        )
        raise SegcliError(f"Segmenter needs uint8 pixels (0-255), got {image.dtype}{hint}")
    if image.shape[0] < 1 or image.shape[1] < 1:
        raise SegcliError(f"Segmenter got an empty image of shape {image.shape}")


def as_array(image: ImageInput) -> np.ndarray:
    """One image input as a checked (H, W, 3) uint8 RGB array; paths are read as the CLI reads them."""
    if isinstance(image, LoadedImage):
        return image.pixels
    if isinstance(image, (str, Path)):
        return read_image(image).pixels
    if isinstance(image, np.ndarray):
        check_image(image)
        return image
    raise TypeError(f"Segmenter takes {EXPECTED}; got {_describe(image)} in the list")
