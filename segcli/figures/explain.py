"""``segcli explain``: one image through Mask R-CNN stage by stage, recorded from the real forward.

:func:`explain` makes the segmenter's own call on one image and records what the network
computed on the way; no copy of the model runs and nothing is recomputed by hand:

- the RPN's proposals with their objectness (a wrapper around ``rpn.filter_proposals``: the
  RPN returns only the boxes and drops the scores), at most the model's post-NMS proposal
  count (``--proposals``);
- the box branch's class-specific boxes after its NMS (a wrapper around
  ``roi_heads.postprocess_detections``: the real call), and before it (the same torchvision
  function called once more on the same logits with NMS switched off: IoU 1.0, no cap);
- the mask head's logits (a forward hook on ``roi_heads.mask_predictor``) and the boxes it
  ran on (a forward pre-hook on ``roi_heads.mask_roi_pool``).

The chosen instance's raw MxM probabilities are pasted into its box by the function the
segmenter itself uses (:func:`segcli.inference.forward.paste_masks`), and the result is compared with
the mask the segmenter returned (:attr:`MaskStage.matches_output`).

The hooks live only for the duration of the call: do not use the same segmenter from another
thread meanwhile. Drawing (:func:`explain_figure`) and the JSON (:func:`explain_record`) are
separate functions of an :class:`Explanation`.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np
import torch
from torch import Tensor

from segcli.core.errors import SegcliError
from segcli.core.instances import Instances
from segcli.core.masks import rle_encode
from segcli.draw.annotators import (
    BoxAnnotator,
    LabelAnnotator,
    OverlayAnnotator,
    compose,
    draw_label,
    instance_color,
    text_geometry,
)
from segcli.draw.text import cv_text
from segcli.figures.compare.figure import canvas_size, compose_figure, letterbox, panel_image
from segcli.figures.compare.run import FigureResult, run_figure
from segcli.inference.forward import paste_masks
from segcli.io.images import DEFAULT_MAX_PIXELS
from segcli.outputs.records import instances_record

if TYPE_CHECKING:
    from torchvision.models.detection import MaskRCNN

    from segcli.inference.segmenter import Segmenter

SCHEMA = "segcli.explain/1"
PROPOSALS_DRAWN = 50
"""How many of the top proposals the figure draws (all of them are in the JSON)."""

_NO_NMS_IOU = 1.0  # torchvision's NMS drops IoU > threshold: at 1.0 it keeps every box
_NO_CAP = 1_000_000_000


# --------------------------------------------------------------------------- data
@dataclass(frozen=True)
class Proposals:
    """The RPN's output on one image: boxes in image pixels, by objectness, highest first."""

    boxes: np.ndarray  # (P, 4) float32 x1 y1 x2 y2
    objectness: np.ndarray  # (P,) float32 probabilities (sigmoid of the RPN's logit)
    top_n: int  # the model's post-NMS proposal count at test time (--proposals); P <= top_n
    pre_nms_top_n: int  # proposals kept per feature level before the RPN's NMS
    nms_iou: float  # the RPN's own NMS IoU

    def __len__(self) -> int:
        return len(self.objectness)


@dataclass(frozen=True)
class BoxStage:
    """The box branch: class-specific boxes (image pixels) before and after its NMS.

    ``before_*`` are every (proposal, class) pair scoring above the score threshold (and not
    empty), which is what enters NMS; ``after_*`` is what the box branch returns: per-class
    NMS, (for the blocks model) cross-class NMS, at most ``max_detections``.
    """

    proposals: int  # proposals the box head scored
    before_boxes: np.ndarray  # (B, 4) float32
    before_scores: np.ndarray  # (B,)
    before_labels: np.ndarray  # (B,) int64
    after_boxes: np.ndarray  # (A, 4) float32
    after_scores: np.ndarray  # (A,)
    after_labels: np.ndarray  # (A,) int64
    score_threshold: float
    nms_iou: float
    cross_class_iou: float | None  # the blocks model's second NMS across classes
    max_detections: int

    @property
    def before_nms(self) -> int:
        return len(self.before_scores)

    @property
    def after_nms(self) -> int:
        return len(self.after_scores)


@dataclass(frozen=True)
class MaskStage:
    """One instance's mask as the mask head predicted it, and as it comes out of the paste."""

    index: int  # the instance's index in the detections
    logits: np.ndarray  # (M, M) float32: the head's output for the instance's class
    probabilities: np.ndarray  # (M, M) float32: sigmoid of ``logits``
    threshold: float
    mask: np.ndarray  # bool crop: probabilities resized to the box, > threshold
    mask_box: np.ndarray  # (4,) int64 x0 y0 x1 y1 (end-exclusive) of ``mask`` in the image
    matches_output: bool  # ``mask`` equals the mask the segmenter returned for this instance

    @property
    def size(self) -> tuple[int, int]:
        return int(self.probabilities.shape[0]), int(self.probabilities.shape[1])

    def full_mask(self, image_size: tuple[int, int]) -> np.ndarray:
        out = np.zeros(image_size, dtype=bool)
        x0, y0, x1, y1 = (int(v) for v in self.mask_box)
        out[y0:y1, x0:x1] = self.mask
        return out


@dataclass(frozen=True)
class Explanation:
    """Every stage of one forward pass on one image."""

    image_size: tuple[int, int]  # (H, W)
    input_size: tuple[int, int]  # (H, W) the network saw, after its resize
    proposals: Proposals
    boxes: BoxStage
    detections: Instances  # what the segmenter returned, unchanged
    instance: MaskStage | None  # None when there is no detection


# --------------------------------------------------------------------------- recording
@dataclass
class _Record:
    """What the hooks saw during one call (batch of one image)."""

    input_size: tuple[int, int] | None = None  # (H, W) of the tensor given to the model
    resized: tuple[int, int] | None = None  # (H, W) after the model's resize
    proposals: tuple[Tensor, Tensor] | None = None
    scored: int = 0
    after: tuple[Tensor, Tensor, Tensor] | None = None
    before: tuple[Tensor, Tensor, Tensor] | None = None
    mask_boxes: Tensor | None = None
    mask_logits: Tensor | None = None
    calls: int = 0
    handles: list[Any] = field(default_factory=list)


def _cpu(t: Tensor) -> Tensor:
    return t.detach().float().cpu()


@contextlib.contextmanager
def _wrapped(obj: torch.nn.Module, name: str, wrapper: Callable[..., Any]) -> Iterator[None]:
    """Shadow the method ``name`` of this one module instance by ``wrapper`` for a while."""
    had = name in vars(obj)
    previous = vars(obj).get(name)
    setattr(obj, name, wrapper)
    try:
        yield
    finally:
        if had:
            setattr(obj, name, previous)
        else:
            delattr(obj, name)


@contextlib.contextmanager
def record_forward(module: MaskRCNN) -> Iterator[_Record]:
    """Record the stages of ``module``'s forward passes while the context is open."""
    from torchvision.models.detection.roi_heads import RoIHeads

    rec = _Record()
    rpn, heads = module.rpn, module.roi_heads
    filter_proposals = rpn.filter_proposals
    postprocess = heads.postprocess_detections

    def on_transform(_: torch.nn.Module, args: tuple[Any, ...]) -> None:
        rec.calls += 1
        images = args[0]
        rec.input_size = (int(images[0].shape[-2]), int(images[0].shape[-1]))

    def on_rpn(_: torch.nn.Module, args: tuple[Any, ...]) -> None:
        h, w = args[0].image_sizes[0]
        rec.resized = (int(h), int(w))

    def on_filter(*args: Any, **kwargs: Any) -> tuple[list[Tensor], list[Tensor]]:
        boxes, scores = filter_proposals(*args, **kwargs)
        rec.proposals = (_cpu(boxes[0]), _cpu(scores[0]))
        return boxes, scores

    def on_postprocess(
        class_logits: Tensor, box_regression: Tensor, proposals: list[Tensor], image_shapes: list[Any]
    ) -> tuple[list[Tensor], list[Tensor], list[Tensor]]:
        boxes, scores, labels = postprocess(class_logits, box_regression, proposals, image_shapes)
        rec.scored = int(proposals[0].shape[0])
        rec.after = (_cpu(boxes[0]), _cpu(scores[0]), labels[0].detach().cpu())
        saved = heads.nms_thresh, heads.detections_per_img
        heads.nms_thresh, heads.detections_per_img = _NO_NMS_IOU, _NO_CAP
        try:
            b, s, la = RoIHeads.postprocess_detections(
                heads, class_logits, box_regression, proposals, image_shapes
            )
        finally:
            heads.nms_thresh, heads.detections_per_img = saved
        rec.before = (_cpu(b[0]), _cpu(s[0]), la[0].detach().cpu())
        return boxes, scores, labels

    def on_mask_pool(_: torch.nn.Module, args: tuple[Any, ...]) -> None:
        rec.mask_boxes = _cpu(args[1][0])

    def on_mask_logits(_: torch.nn.Module, args: tuple[Any, ...], output: Tensor) -> None:
        rec.mask_logits = output.detach()  # stays on the device: the sigmoid is taken there too

    rec.handles = [
        module.transform.register_forward_pre_hook(on_transform),
        rpn.register_forward_pre_hook(on_rpn),
        heads.mask_roi_pool.register_forward_pre_hook(on_mask_pool),
        heads.mask_predictor.register_forward_hook(on_mask_logits),
    ]
    try:
        with (
            _wrapped(rpn, "filter_proposals", on_filter),
            _wrapped(heads, "postprocess_detections", on_postprocess),
        ):
            yield rec
    finally:
        for handle in rec.handles:
            handle.remove()


def _subsequence(part: Sequence[Any], whole: Sequence[Any], same: Callable[[Any, Any], bool]) -> list[int]:
    """Index into ``whole`` of each item of ``part``, which is ``whole`` with items left out."""
    out, j = [], 0
    for item in part:
        while j < len(whole) and not same(item, whole[j]):
            j += 1
        if j == len(whole):
            raise RuntimeError("the recorded stages do not line up with the segmenter's output")
        out.append(j)
        j += 1
    return out


# --------------------------------------------------------------------------- explain
def explain(segmenter: Segmenter, image: np.ndarray, *, instance: int | None = None) -> Explanation:
    """Segment ``image`` (RGB uint8) with ``segmenter`` and record every stage.

    ``instance`` picks the detection whose mask is followed through the mask head (an index
    into the detections, which are sorted by score); by default the top-scoring one.
    """
    from torchvision.models.detection.transform import resize_boxes

    if instance is not None and instance < 0:
        raise SegcliError(f"--instance must be 0 or more, got {instance}")
    from segcli.inference.segmenter import SAMPLED_INPUT_PIXELS

    pad_h, pad_w = segmenter._padding(int(image.shape[0]), int(image.shape[1]))
    if (image.shape[0] + pad_h) * (image.shape[1] + pad_w) > SAMPLED_INPUT_PIXELS:
        raise SegcliError(
            f"explain records torchvision's own preprocessing, used for images up to "
            f"{SAMPLED_INPUT_PIXELS / 1e6:g} MP; this one is {image.shape[1]}x{image.shape[0]}"
            + (" after padding" if pad_h or pad_w else "")
            + ": downscale it first"
        )
    module = segmenter.module
    settings = segmenter.settings
    with record_forward(module) as rec:
        [detections] = segmenter([image])
    if rec.calls != 1 or rec.input_size is None or rec.resized is None:
        raise RuntimeError(f"expected one forward pass of one image, saw {rec.calls}")
    if rec.proposals is None or rec.after is None or rec.before is None:
        raise RuntimeError("the RPN or the box branch did not run")
    h, w = detections.image_size

    def to_image(boxes: Tensor) -> np.ndarray:
        out = resize_boxes(boxes, rec.resized, rec.input_size)
        out[:, 0::2] = out[:, 0::2].clamp(0, w)
        out[:, 1::2] = out[:, 1::2].clamp(0, h)
        return out.numpy().astype(np.float32)

    p_boxes, p_scores = rec.proposals
    order = torch.argsort(p_scores, descending=True, stable=True)
    rpn = module.rpn
    proposals = Proposals(
        boxes=to_image(p_boxes[order]),
        objectness=p_scores[order].numpy().astype(np.float32),
        top_n=int(rpn.post_nms_top_n()),  # the model is in eval mode: the test-time limits
        pre_nms_top_n=int(rpn.pre_nms_top_n()),
        nms_iou=float(rpn.nms_thresh),
    )
    heads = module.roi_heads
    cross = getattr(heads, "cross_class_iou", None)
    boxes = BoxStage(
        proposals=rec.scored,
        before_boxes=to_image(rec.before[0]),
        before_scores=rec.before[1].numpy().astype(np.float32),
        before_labels=rec.before[2].numpy().astype(np.int64),
        after_boxes=to_image(rec.after[0]),
        after_scores=rec.after[1].numpy().astype(np.float32),
        after_labels=rec.after[2].numpy().astype(np.int64),
        score_threshold=float(heads.score_thresh),
        nms_iou=float(heads.nms_thresh),
        cross_class_iou=None if cross is None or cross >= 1.0 else float(cross),
        max_detections=int(settings.max_detections or 100),
    )
    if instance is not None and instance >= len(detections):
        numbered = f", numbered 0 to {len(detections) - 1}" if len(detections) else ""
        raise SegcliError(f"--instance {instance}: the image has {len(detections)} detection(s){numbered}")
    mask_stage = None
    if len(detections):
        k = int(np.argmax(detections.scores)) if instance is None else instance
        threshold = 0.5 if settings.mask_threshold is None else float(settings.mask_threshold)
        mask_stage = _mask_stage(rec, detections, k, threshold)
    return Explanation(
        image_size=(h, w),
        input_size=rec.resized,
        proposals=proposals,
        boxes=boxes,
        detections=detections,
        instance=mask_stage,
    )


def _mask_stage(
    rec: _Record,
    detections: Instances,
    k: int,
    threshold: float,
) -> MaskStage:
    if rec.mask_logits is None or rec.mask_boxes is None or rec.after is None:
        raise RuntimeError("the mask head did not run")
    after_boxes, after_scores, after_labels = rec.after
    # Mask rows are the box branch's output, perhaps class-filtered and capped; the
    # detections are those rows, perhaps less the ones lying in padding only.
    rows = _subsequence(list(rec.mask_boxes), list(after_boxes), lambda a, b: bool(torch.equal(a, b)))
    row_keys = [(float(after_scores[j]), int(after_labels[j])) for j in rows]
    inst_keys = [(float(s), int(c)) for s, c in zip(detections.scores, detections.class_ids)]
    row = _subsequence(inst_keys, row_keys, lambda a, b: a == b)[k]
    label = int(detections.class_ids[k])
    # As maskrcnn_inference: sigmoid, then the channel of the detection's class.
    # On the model's device, like the segmenter, so that the paste is bit for bit the same.
    probs = rec.mask_logits.sigmoid()[row, label]
    logits = rec.mask_logits[row, label].float().cpu().numpy()
    box = torch.from_numpy(detections.boxes[k : k + 1].copy()).to(probs.device)
    crops, mask_boxes = paste_masks(probs[None, None].float(), box, detections.image_size, threshold)
    crop, mask_box = crops[0], mask_boxes[0]
    matches = bool(
        np.array_equal(mask_box, detections.mask_boxes[k]) and np.array_equal(crop, detections.masks[k])
    )
    return MaskStage(
        index=k,
        logits=logits,
        probabilities=probs.float().cpu().numpy(),
        threshold=threshold,
        mask=crop,
        mask_box=np.asarray(mask_box, dtype=np.int64),
        matches_output=matches,
    )


# --------------------------------------------------------------------------- JSON
def _box(b: np.ndarray) -> list[float]:
    return [round(float(v), 2) for v in b]


def explain_record(
    ex: Explanation, *, image_path: str, model: dict[str, Any], settings: dict[str, Any], **extra: Any
) -> dict[str, Any]:
    """The ``segcli.explain/1`` JSON object: the figure's numbers and the arrays behind them."""
    h, w = ex.image_size
    p, b = ex.proposals, ex.boxes
    detections = instances_record(ex.detections, image_path=image_path, model=model, settings=settings)
    record: dict[str, Any] = {
        "schema": SCHEMA,
        "image": {"path": image_path, "width": w, "height": h},
        "model": model,
        "settings": settings,
        "input": {"width": ex.input_size[1], "height": ex.input_size[0]},
        "proposals": {
            "top_n": p.top_n,
            "count": len(p),
            "drawn": min(PROPOSALS_DRAWN, len(p)),
            "pre_nms_top_n": p.pre_nms_top_n,
            "nms_iou": p.nms_iou,
            "boxes": [_box(x) for x in p.boxes],
            "objectness": [round(float(s), 4) for s in p.objectness],
        },
        "box_branch": {
            "proposals": b.proposals,
            "score_threshold": b.score_threshold,
            "before_nms": b.before_nms,
            "nms_iou": b.nms_iou,
            "cross_class_iou": b.cross_class_iou,
            "max_detections": b.max_detections,
            "after_nms": b.after_nms,
        },
        "detections": detections["instances"],
        "instance": None,
    }
    if ex.instance is not None:
        m = ex.instance
        k = m.index
        x0, y0, x1, y1 = (int(v) for v in m.mask_box)
        record["instance"] = {
            "id": k,
            "label": ex.detections.class_names[k],
            "score": round(float(ex.detections.scores[k]), 4),
            "box": _box(ex.detections.boxes[k]),
            "mask_head": {
                "size": list(m.size),
                "probabilities": [[round(float(v), 4) for v in r] for r in m.probabilities],
            },
            "resized": {
                "box": [x0, y0, x1, y1],
                "width": x1 - x0,
                "height": y1 - y0,
                "threshold": m.threshold,
                "area": int(m.mask.sum()),
                "mask": rle_encode(m.mask, m.mask_box, ex.image_size),
                "matches_output": m.matches_output,
            },
        }
    record.update({k: v for k, v in extra.items() if v is not None})
    return record


# --------------------------------------------------------------------------- figure
PANEL_MAX_SIDE = 512
PANEL_MIN_SIDE = 384
PANEL_BACKGROUND = (246, 246, 246)
INK = (30, 30, 30)


def objectness_colors(scores: np.ndarray) -> np.ndarray:
    """(N, 3) uint8 RGB: objectness 0 -> dark blue ... 1 -> red (OpenCV's TURBO map)."""
    levels = np.clip(np.round(np.asarray(scores, dtype=np.float64) * 255), 0, 255).astype(np.uint8)
    bgr = cv2.applyColorMap(levels.reshape(-1, 1), cv2.COLORMAP_TURBO).reshape(-1, 3)
    return np.ascontiguousarray(bgr[:, ::-1])


def _put(img: np.ndarray, text: str, org: tuple[int, int], scale: float, color: tuple[int, int, int]) -> None:
    thickness = max(1, round(scale * 1.6))
    cv2.putText(img, cv_text(text), org, cv2.FONT_HERSHEY_SIMPLEX, scale, color, thickness, cv2.LINE_AA)


def _scale_bar(
    panel: np.ndarray,
    colors: np.ndarray,
    labels: tuple[str, str],
    caption: str,
    *,
    origin: tuple[int, int] | None = None,
) -> None:
    """A horizontal colour bar (``colors`` from left to right) with end labels, in place."""
    ph, pw = panel.shape[:2]
    scale, _ = text_geometry((ph, pw))
    (cw, th), _ = cv2.getTextSize(
        cv_text(caption), cv2.FONT_HERSHEY_SIMPLEX, scale, max(1, round(scale * 1.6))
    )
    bar_w, bar_h, pad = max(pw // 4, 60), max(th, 8), 6
    lw = max(cv2.getTextSize(cv_text(t), cv2.FONT_HERSHEY_SIMPLEX, scale, 1)[0][0] for t in labels)
    box_w = pad + cw + pad + lw + 4 + bar_w + 4 + lw + pad
    box_h = bar_h + 2 * pad
    if box_w > pw or box_h > ph:
        return  # no room (a very thin image)
    x0, y0 = origin if origin is not None else (pw - box_w - 4, ph - box_h - 4)
    x0, y0 = max(x0, 0), max(y0, 0)
    region = panel[y0 : y0 + box_h, x0 : x0 + box_w]
    region[:] = (region.astype(np.float32) * 0.2 + 255 * 0.8).astype(np.uint8)
    text_y = y0 + pad + (bar_h + th) // 2
    _put(panel, caption, (x0 + pad, text_y), scale, INK)
    x = x0 + pad + cw + pad
    _put(panel, labels[0], (x, text_y), scale, INK)
    bx = x + lw + 4
    idx = np.linspace(0, len(colors) - 1, bar_w).round().astype(int)
    panel[y0 + pad : y0 + pad + bar_h, bx : bx + bar_w] = colors[idx][None, :, :]
    _put(panel, labels[1], (bx + bar_w + 4, text_y), scale, INK)


def proposals_panel(small: np.ndarray, proposals: Proposals, scale_xy: tuple[float, float]) -> np.ndarray:
    """The first ``PROPOSALS_DRAWN`` proposals on the faded image, coloured by objectness."""
    out = (small.astype(np.float32) * 0.55 + 255 * 0.45).astype(np.uint8)
    n = min(PROPOSALS_DRAWN, len(proposals))
    boxes = proposals.boxes[:n] * np.array([*scale_xy, *scale_xy], dtype=np.float32)
    colors = objectness_colors(proposals.objectness[:n])
    _, thickness = text_geometry(out.shape[:2])
    for i in range(n - 1, -1, -1):  # the highest objectness is drawn last, on top
        x0, y0, x1, y1 = (round(float(v)) for v in boxes[i])
        cv2.rectangle(out, (x0, y0), (x1, y1), tuple(int(c) for c in colors[i]), thickness, cv2.LINE_AA)
    _scale_bar(out, objectness_colors(np.linspace(0, 1, 256)), ("0", "1"), "objectness")
    return out


def boxes_panel(small: np.ndarray, ex: Explanation, small_instances: Instances) -> np.ndarray:
    """Boxes entering NMS (thin grey) and the detections kept (coloured, labelled)."""
    sy = small.shape[0] / ex.image_size[0]
    sx = small.shape[1] / ex.image_size[1]
    out = np.ascontiguousarray(small).copy()
    for x0, y0, x1, y1 in ex.boxes.before_boxes * np.array([sx, sy, sx, sy], dtype=np.float32):
        cv2.rectangle(out, (round(x0), round(y0)), (round(x1), round(y1)), (90, 90, 90), 1, cv2.LINE_AA)
    return compose((BoxAnnotator(), LabelAnnotator())).annotate(out, small_instances)


def raw_mask_panel(probabilities: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """The MxM probabilities as grey levels (0 black, 1 white), enlarged by nearest neighbour."""
    ph, pw = shape
    out = np.empty((ph, pw, 3), dtype=np.uint8)
    out[:] = PANEL_BACKGROUND
    m_h, m_w = probabilities.shape
    scale, _ = text_geometry((ph, pw))
    (_, th), base = cv2.getTextSize(cv_text("0"), cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    legend = th + base + 24
    cell = max(1, min((ph - legend - 16) // m_h, (pw - 16) // m_w))
    grey = np.clip(np.round(probabilities * 255), 0, 255).astype(np.uint8)
    big = np.repeat(np.repeat(grey, cell, axis=0), cell, axis=1)
    y0, x0 = max((ph - legend - big.shape[0]) // 2, 4), (pw - big.shape[1]) // 2
    out[y0 : y0 + big.shape[0], x0 : x0 + big.shape[1]] = big[..., None]
    cv2.rectangle(out, (x0 - 1, y0 - 1), (x0 + big.shape[1], y0 + big.shape[0]), (120, 120, 120), 1)
    grey_bar = np.repeat(np.arange(256, dtype=np.uint8)[:, None], 3, axis=1)
    _scale_bar(out, grey_bar, ("0", "1"), "probability", origin=(x0, y0 + big.shape[0] + 8))
    return out


def resized_mask_panel(ex: Explanation, shape: tuple[int, int]) -> np.ndarray:
    """The instance's thresholded mask in the image frame (white on black) and its box."""
    assert ex.instance is not None
    m, k = ex.instance, ex.instance.index
    full = m.full_mask(ex.image_size).astype(np.uint8) * 255
    small = cv2.resize(full, (shape[1], shape[0]), interpolation=cv2.INTER_NEAREST)
    out = np.ascontiguousarray(np.repeat(small[..., None], 3, axis=2))
    sy, sx = shape[0] / ex.image_size[0], shape[1] / ex.image_size[1]
    x0, y0, x1, y1 = (round(float(v)) for v in ex.detections.boxes[k] * np.array([sx, sy, sx, sy]))
    color = instance_color(k)
    _, thickness = text_geometry(shape)
    cv2.rectangle(out, (x0, y0), (x1, y1), color, thickness)
    draw_label(out, f"{ex.detections.class_names[k]} {ex.detections.scores[k]:.2f}", (x0, y0), color)
    return out


def _note_panel(shape: tuple[int, int], text: str) -> np.ndarray:
    out = np.empty((*shape, 3), dtype=np.uint8)
    out[:] = PANEL_BACKGROUND
    scale, _ = text_geometry(shape)
    _put(out, text, (12, shape[0] // 2), scale * 1.3, INK)
    return out


def explain_panels(image: np.ndarray, ex: Explanation) -> list[tuple[str, np.ndarray]]:
    """The six titled panels, in the order the network computes them."""
    h, w = ex.image_size
    if image.shape[:2] != (h, w):
        raise ValueError(f"image {image.shape[:2]} does not fit the explanation's {ex.image_size}")
    small = panel_image(image, max_side=PANEL_MAX_SIDE, min_side=PANEL_MIN_SIDE)
    size = (small.shape[0], small.shape[1])
    small_instances = ex.detections.resized(size)
    canvas = canvas_size(size)
    p, b = ex.proposals, ex.boxes
    drawn = min(PROPOSALS_DRAWN, len(p))
    in_h, in_w = ex.input_size
    panels = [
        (f"1. Input {w}x{h} (network sees {in_w}x{in_h})", small),
        (
            f"2. RPN: top {len(p)} proposals, {drawn} drawn",
            proposals_panel(small, p, (size[1] / w, size[0] / h)),
        ),
        (
            f"3. Box branch + NMS: {b.before_nms} -> {b.after_nms} boxes",
            boxes_panel(small, ex, small_instances),
        ),
    ]
    if ex.instance is None:
        panels += [
            ("4. Mask head", _note_panel(canvas, "no detection: no mask")),
            ("5. Resized to box", _note_panel(canvas, "no detection: no mask")),
        ]
    else:
        m = ex.instance
        x0, y0, x1, y1 = (int(v) for v in m.mask_box)
        label = ex.detections.class_names[m.index]
        panels += [
            (
                f"4. Mask head: {m.size[0]}x{m.size[1]} probabilities, {label} #{m.index}",
                raw_mask_panel(m.probabilities, canvas),
            ),
            (f"5. Resized to its box {x1 - x0}x{y1 - y0}, p > {m.threshold:g}", resized_mask_panel(ex, size)),
        ]
    panels.append(
        (f"6. Overlay: {len(ex.detections)} instances", OverlayAnnotator().annotate(small, small_instances))
    )
    return [(title, letterbox(pixels, canvas, PANEL_BACKGROUND)) for title, pixels in panels]


def explain_figure(image: np.ndarray, ex: Explanation) -> np.ndarray:
    """The 3x2 figure of :func:`explain_panels`; RGB uint8."""
    return compose_figure(explain_panels(image, ex), cols=3)


# --------------------------------------------------------------------------- one image, end to end
@dataclass(frozen=True)
class ExplainResult(FigureResult):
    """What :func:`run_explain` wrote, and the explanation behind it."""

    explanation: Explanation


def run_explain(
    segmenter: Segmenter,
    image_path: Path,
    out_dir: Path,
    *,
    instance: int | None = None,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
) -> ExplainResult:
    """Explain one image file: write the figure, then the JSON (atomically, each)."""
    analyse = functools.partial(explain, segmenter, instance=instance)
    draw, record = explain_figure, explain_record
    return ExplainResult(
        *run_figure(segmenter, image_path, out_dir, "explain", max_pixels, analyse, record, draw)
    )


__all__ = [
    "PROPOSALS_DRAWN",
    "SCHEMA",
    "BoxStage",
    "ExplainResult",
    "Explanation",
    "MaskStage",
    "Proposals",
    "explain",
    "explain_figure",
    "explain_panels",
    "explain_record",
    "objectness_colors",
    "record_forward",
    "run_explain",
]
