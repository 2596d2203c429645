"""``segcli compare proposals``: the same image at several RPN proposal counts N.

Faster R-CNN kept N = 2000 proposals; its authors found N in {10, 100, 200, 300} "still
obtains good results", and the Mask R-CNN paper uses 300. :func:`compare_proposals` runs one
image at each N and reports, per N, the detections, the seconds per image and how well they
agree with the largest N's detections.

Agreement (:func:`agreement`) is COCOeval's matching rule with the largest N as the ground
truth: the detections at N, in descending score, are each matched to the still unmatched
detection of the largest N of the same class with the highest mask IoU, if that IoU is at
least 0.5 (greedy, not Hungarian). ``share`` is the fraction of the largest N's detections
that got a match; ``mean_iou`` the mean mask IoU of the matched pairs.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from segcli.core.errors import SegcliError, UsageError
from segcli.core.instances import Instances
from segcli.draw.annotators import Color, OverlayAnnotator, instance_color
from segcli.figures.compare.figure import canvas_size, compose_figure, letterbox, panel_image
from segcli.figures.compare.run import FigureResult, run_figure
from segcli.io.images import DEFAULT_MAX_PIXELS
from segcli.outputs.records import instances_record

if TYPE_CHECKING:
    from segcli.inference.segmenter import Segmenter

SCHEMA = "segcli.compare-proposals/1"
DEFAULT_NS: tuple[int, ...] = (10, 100, 300, 1000)
MATCH_IOU = 0.5
MATCHING = "greedy by score within class (COCOeval's rule), mask IoU >= 0.5, against the largest N"
MAX_N = 100_000

SegmenterFactory = Callable[[int], "Segmenter"]
"""Makes a segmenter whose RPN keeps ``n`` proposals (e.g. ``Segmenter(settings=Settings(proposals=n))``)."""


# --------------------------------------------------------------------------- the N list
def parse_ns(text: str) -> tuple[int, ...]:
    """``"10,100,300,1000"`` -> ``(10, 100, 300, 1000)``: positive, distinct, ascending."""
    parts = [p.strip() for p in text.split(",")]
    if not any(parts):
        raise UsageError("--n names no proposal count: give e.g. --n 10,100,300,1000")
    values = []
    for part in parts:
        if not part:
            raise UsageError(f"--n {text!r} has an empty entry")
        try:
            value = int(part)
        except ValueError:
            raise UsageError(f"--n {text!r}: {part!r} is not a whole number") from None
        if not 1 <= value <= MAX_N:
            raise UsageError(f"--n {text!r}: {value} is outside 1..{MAX_N}")
        values.append(value)
    if len(set(values)) != len(values):
        raise UsageError(f"--n {text!r} repeats a value")
    return tuple(sorted(values))


# --------------------------------------------------------------------------- agreement
def mask_iou(a: Instances, b: Instances) -> np.ndarray:
    """(len(a), len(b)) mask IoU, computed on the crops where their boxes overlap."""
    if a.image_size != b.image_size:
        raise ValueError(f"instances of images {a.image_size} and {b.image_size} cannot be compared")
    out = np.zeros((len(a), len(b)), dtype=np.float64)
    area_a, area_b = a.areas, b.areas
    for i in range(len(a)):
        ax0, ay0, ax1, ay1 = (int(v) for v in a.mask_boxes[i])
        for j in range(len(b)):
            bx0, by0, bx1, by1 = (int(v) for v in b.mask_boxes[j])
            x0, y0, x1, y1 = max(ax0, bx0), max(ay0, by0), min(ax1, bx1), min(ay1, by1)
            inter = 0
            if x1 > x0 and y1 > y0:
                ca = a.masks[i][y0 - ay0 : y1 - ay0, x0 - ax0 : x1 - ax0]
                cb = b.masks[j][y0 - by0 : y1 - by0, x0 - bx0 : x1 - bx0]
                inter = int(np.count_nonzero(ca & cb))
            union = int(area_a[i]) + int(area_b[j]) - inter
            out[i, j] = inter / union if union else 0.0
    return out


@dataclass(frozen=True)
class Agreement:
    """How many of the reference's detections the other detections find again."""

    matched: int
    reference: int  # detections of the reference (the largest N)
    share: float | None  # matched / reference; None when the reference found nothing
    mean_iou: float | None  # mean mask IoU of the matched pairs; None when none matched


def match(
    instances: Instances, reference: Instances, *, iou: float = MATCH_IOU
) -> list[tuple[int, int, float]]:
    """Greedy matches (index in ``instances``, index in ``reference``, mask IoU); see the module doc."""
    ious = mask_iou(instances, reference)
    taken = np.zeros(len(reference), dtype=bool)
    pairs = []
    order = np.argsort(-instances.scores, kind="stable")
    for i in order:
        same = (reference.class_ids == instances.class_ids[i]) & ~taken
        if not same.any():
            continue
        candidates = np.where(same, ious[i], -1.0)
        j = int(np.argmax(candidates))
        if candidates[j] >= iou:
            taken[j] = True
            pairs.append((int(i), j, float(candidates[j])))
    return pairs


def agreement(instances: Instances, reference: Instances, *, iou: float = MATCH_IOU) -> Agreement:
    pairs = match(instances, reference, iou=iou)
    n_ref = len(reference)
    return Agreement(
        matched=len(pairs),
        reference=n_ref,
        share=len(pairs) / n_ref if n_ref else None,
        mean_iou=float(np.mean([p[2] for p in pairs])) if pairs else None,
    )


# --------------------------------------------------------------------------- running
@dataclass(frozen=True)
class ProposalsRun:
    """One N: its detections, its time and its agreement with the largest N."""

    n: int
    seconds: float  # median seconds per image over the timed calls
    samples: tuple[float, ...]  # every timed call, in seconds
    instances: Instances
    agreement: Agreement


@dataclass(frozen=True)
class ProposalsComparison:
    image_size: tuple[int, int]
    runs: tuple[ProposalsRun, ...]  # ascending N
    repeats: int

    @property
    def reference_n(self) -> int:
        return self.runs[-1].n


@contextlib.contextmanager
def proposals_set(segmenter: Segmenter, n: int) -> Iterator[None]:
    """``segmenter`` keeps ``n`` RPN proposals while the context is open, as if built with them.

    The model's RPN limits are put back afterwards, so one N never leaks into the next.
    """
    from segcli.inference.forward import configure

    rpn = segmenter.module.rpn
    pre, post = dict(rpn._pre_nms_top_n), dict(rpn._post_nms_top_n)
    try:
        configure(
            segmenter.module,
            dataclasses.replace(segmenter.settings, proposals=n),
            class_filter=segmenter.settings.classes is not None,
        )
        yield
    finally:
        rpn._pre_nms_top_n.clear()
        rpn._pre_nms_top_n.update(pre)
        rpn._post_nms_top_n.clear()
        rpn._post_nms_top_n.update(post)


def compare_proposals(
    segmenter: Segmenter | SegmenterFactory,
    image: np.ndarray,
    ns: Sequence[int] = DEFAULT_NS,
    *,
    repeats: int = 3,
) -> ProposalsComparison:
    """Segment ``image`` at every N in ``ns``; time each N and match it against the largest.

    ``segmenter`` is either one segmenter (its RPN is set to each N in turn, then restored)
    or a factory ``n -> Segmenter``. Each segmenter is run once untimed (the cold first pass),
    then the N are timed in ``repeats`` interleaved rounds (10, 100, ..., 10, 100, ...), so a
    change in machine load hits every N alike; the time of an N is its median.
    """
    from segcli.inference.segmenter import Segmenter

    ns = tuple(sorted(set(int(n) for n in ns)))
    if not ns or ns[0] < 1:
        raise SegcliError("compare proposals needs at least one N >= 1")
    if repeats < 1:
        raise SegcliError(f"--repeats must be at least 1, got {repeats}")
    runners: dict[int, tuple[Segmenter, Callable[[], contextlib.AbstractContextManager[None]]]]
    if isinstance(segmenter, Segmenter):
        seg = segmenter
        runners = {n: (seg, functools.partial(proposals_set, seg, n)) for n in ns}
    else:
        runners = {n: (segmenter(n), contextlib.nullcontext) for n in ns}
    batch = [image]
    warmed: set[int] = set()
    for n in reversed(ns):
        seg_n, context = runners[n]
        if id(seg_n) not in warmed:
            with context():
                seg_n(batch)
            warmed.add(id(seg_n))
    samples: dict[int, list[float]] = {n: [] for n in ns}
    results: dict[int, Instances] = {}
    for _ in range(repeats):
        for n in ns:
            seg_n, context = runners[n]
            with context():
                start = time.perf_counter()
                [results[n]] = seg_n(batch)
                samples[n].append(time.perf_counter() - start)
    reference = results[ns[-1]]
    runs = tuple(
        ProposalsRun(
            n=n,
            seconds=statistics.median(samples[n]),
            samples=tuple(samples[n]),
            instances=results[n],
            agreement=agreement(results[n], reference),
        )
        for n in ns
    )
    return ProposalsComparison(image_size=reference.image_size, runs=runs, repeats=repeats)


# --------------------------------------------------------------------------- JSON
def _round(x: float | None, digits: int = 4) -> float | None:
    return None if x is None else round(x, digits)


def proposals_record(
    comparison: ProposalsComparison,
    *,
    image_path: str,
    model: dict[str, Any],
    settings: dict[str, Any],
    **extra: Any,
) -> dict[str, Any]:
    """The ``segcli.compare-proposals/1`` JSON object; ``extra`` keys follow."""
    h, w = comparison.image_size
    settings = {**settings, "proposals": [r.n for r in comparison.runs]}
    runs = []
    for run in comparison.runs:
        items = instances_record(run.instances, image_path=image_path, model=model, settings=settings)
        a = run.agreement
        runs.append(
            {
                "n": run.n,
                "seconds_per_image": round(run.seconds, 4),
                "seconds": [round(s, 4) for s in run.samples],
                "detections": len(run.instances),
                "matched": a.matched,
                "agreement": _round(a.share),
                "mean_iou": _round(a.mean_iou),
                "instances": items["instances"],
            }
        )
    record: dict[str, Any] = {
        "schema": SCHEMA,
        "image": {"path": image_path, "width": w, "height": h},
        "model": model,
        "settings": settings,
        "reference_n": comparison.reference_n,
        "matching": {"method": "greedy by score within class", "iou": "mask", "threshold": MATCH_IOU},
        "repeats": comparison.repeats,
        "runs": runs,
    }
    record.update({k: v for k, v in extra.items() if v is not None})
    return record


# --------------------------------------------------------------------------- figure
def run_title(run: ProposalsRun) -> str:
    return f"N = {run.n}: {run.seconds:.3f} s/image, {len(run.instances)} detections"


def proposals_panels(
    image: np.ndarray, comparison: ProposalsComparison, *, max_side: int = 512, min_side: int = 320
) -> list[tuple[str, np.ndarray]]:
    """One titled panel per N: the detections kept, in segcli's overlay style."""
    h, w = comparison.image_size
    if image.shape[:2] != (h, w):
        raise ValueError(f"image {image.shape[:2]} does not fit the comparison's {comparison.image_size}")
    small = panel_image(image, max_side=max_side, min_side=min_side)
    size = (small.shape[0], small.shape[1])
    canvas = canvas_size(size)
    annotator = OverlayAnnotator()
    reference = comparison.runs[-1].instances
    return [
        (
            run_title(run),
            letterbox(
                annotator.annotate(small, run.instances.resized(size), colors=match_colors(run, reference)),
                canvas,
            ),
        )
        for run in comparison.runs
    ]


def match_colors(run: ProposalsRun, reference: Instances) -> list[Color]:
    """One colour per detection of ``run``: a detection matched to the reference's detection
    ``j`` gets that one's colour (``instance_color(j)``), so an object keeps its colour across
    the panels; the unmatched ones get colours after the reference's.
    """
    colors: list[Color | None] = [None] * len(run.instances)
    for i, j, _ in match(run.instances, reference):
        colors[i] = instance_color(j)
    extra = len(reference)
    for i in np.argsort(-run.instances.scores, kind="stable"):
        if colors[int(i)] is None:
            colors[int(i)] = instance_color(extra)
            extra += 1
    return [c for c in colors if c is not None]


def proposals_figure(image: np.ndarray, comparison: ProposalsComparison) -> np.ndarray:
    panels = proposals_panels(image, comparison)
    cols = 2 if len(panels) in (2, 4) else min(3, len(panels))
    return compose_figure(panels, cols=cols)


# --------------------------------------------------------------------------- one image, end to end
@dataclass(frozen=True)
class ProposalsResult(FigureResult):
    """What :func:`run_compare_proposals` wrote, and the comparison behind it."""

    comparison: ProposalsComparison


def run_compare_proposals(
    segmenter: Segmenter,
    image_path: Path,
    out_dir: Path,
    ns: Sequence[int] = DEFAULT_NS,
    *,
    repeats: int = 3,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
) -> ProposalsResult:
    """Compare one image file at every N: write the figure, then the JSON (atomically, each)."""
    analyse = functools.partial(compare_proposals, segmenter, ns=ns, repeats=repeats)
    draw, record = proposals_figure, proposals_record
    return ProposalsResult(
        *run_figure(segmenter, image_path, out_dir, "proposals", max_pixels, analyse, record, draw)
    )


__all__ = [
    "DEFAULT_NS",
    "MATCHING",
    "MATCH_IOU",
    "SCHEMA",
    "Agreement",
    "ProposalsComparison",
    "ProposalsResult",
    "ProposalsRun",
    "agreement",
    "compare_proposals",
    "mask_iou",
    "match",
    "match_colors",
    "parse_ns",
    "proposals_figure",
    "proposals_panels",
    "proposals_record",
    "proposals_set",
    "run_compare_proposals",
    "run_title",
]
