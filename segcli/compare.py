"""``segcli compare semantic-vs-instance``: one image as classification, detection, semantic and
instance segmentation, and the numbers that tell the last two apart.

Everything here is a pure function of an RGB image, its ``Instances`` and a semantic map (an
(H, W) array of class indices, 0 the background); no torch. The semantic map comes either from
the instances themselves (:func:`derived_semantic_map`) or from a torchvision semantic model
(``segcli.model.semantic_segment``, VOC class indices, named with :func:`voc_names_as_coco`).

Classes of the semantic map and of the instances are matched by name, so a VOC semantic model
and a COCO instance model meet on ``airplane``, ``motorcycle``, ``tv`` and the rest.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from segcli.errors import SegcliError
from segcli.imageio import DEFAULT_MAX_PIXELS, atomic_write_bytes, read_image
from segcli.instances import Instances
from segcli.registry import SEMANTIC_MODELS
from segcli.render import OverlayAnnotator, text_geometry
from segcli.writers import dumps, encode_image

if TYPE_CHECKING:
    from segcli.predictor import Segmenter
    from segcli.weights import Loaded

SCHEMA = "segcli.compare/1"
SEMANTIC_SOURCES: tuple[str, ...] = ("derived", *SEMANTIC_MODELS)
"""``--semantic`` choices: ``derived`` from the instances, the others torchvision models."""

CONNECTIVITY = 8
"""Semantic regions are 8-connected: pixels touching at a corner belong to one region."""

BACKGROUND = 0

VOC_TO_COCO: dict[str, str] = {
    "aeroplane": "airplane",
    "diningtable": "dining table",
    "motorbike": "motorcycle",
    "pottedplant": "potted plant",
    "sofa": "couch",
    "tvmonitor": "tv",
}
"""PASCAL VOC class names that COCO spells differently; the other 14 VOC names are COCO's."""


# --------------------------------------------------------------------------- names
def coco_name(voc_name: str) -> str:
    """COCO's spelling of a PASCAL VOC class name (``aeroplane`` -> ``airplane``)."""
    return VOC_TO_COCO.get(voc_name, voc_name)


def voc_names_as_coco(voc_categories: Sequence[str]) -> dict[int, str]:
    """Index -> COCO spelling for a VOC model's categories (index 0 the background)."""
    return {i: coco_name(name) for i, name in enumerate(voc_categories)}


def _key(name: str) -> str:
    return " ".join(name.lower().split())


def check_semantic_source(source: str, weights: Path | None = None) -> str:
    """Validate ``--semantic`` (and that ``--semantic-weights`` goes with a model)."""
    name = source.strip().lower()
    if name not in SEMANTIC_SOURCES:
        raise SegcliError(f"unknown --semantic {source!r}; choose one of: {', '.join(SEMANTIC_SOURCES)}")
    if weights is not None and name == "derived":
        raise SegcliError(
            "--semantic-weights needs a semantic model: pass --semantic deeplabv3, fcn or lraspp"
        )
    return name


# --------------------------------------------------------------------------- semantic map
def derived_semantic_map(instances: Instances) -> np.ndarray:
    """The semantic map implied by ``instances``: (H, W) int32 category ids, 0 = background.

    Each pixel takes the class of the highest-scoring instance whose mask covers it. Ties
    (equal scores) go to the lower instance index, i.e. to the detection the model listed
    first. Pixels no mask covers are background (0).
    """
    out = np.zeros(instances.image_size, dtype=np.int32)
    n = len(instances)
    if n == 0:
        return out
    for i in instances.paint_order():  # the winner of each pixel is painted last
        x0, y0, x1, y1 = (int(v) for v in instances.mask_boxes[i])
        out[y0:y1, x0:x1][instances.masks[i]] = int(instances.class_ids[i])
    return out


# --------------------------------------------------------------------------- numbers
@dataclass(frozen=True)
class ClassStats:
    """One class of one image, seen by semantic and by instance segmentation."""

    label: str
    instances: int  # instances of the class
    semantic_regions: int  # connected regions of the class in the semantic map
    semantic_pixels: int  # pixels of the class in the semantic map
    instance_pixels: int  # pixels of the union of the class's instance masks
    score: float | None  # highest instance score of the class (None: no instance)

    def to_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "instances": self.instances,
            "semantic_regions": self.semantic_regions,
            "semantic_pixels": self.semantic_pixels,
            "instance_pixels": self.instance_pixels,
            "score": None if self.score is None else round(self.score, 4),
        }


def count_regions(mask: np.ndarray, connectivity: int = CONNECTIVITY) -> int:
    """Connected regions of a bool mask (``cv2.connectedComponents``, 8- or 4-connected)."""
    if connectivity not in (4, 8):
        raise ValueError(f"connectivity must be 4 or 8, got {connectivity}")
    if not mask.any():
        return 0
    n, _ = cv2.connectedComponents(mask.astype(np.uint8), connectivity=connectivity)
    return int(n) - 1


def class_stats(
    instances: Instances,
    semantic_map: np.ndarray,
    semantic_names: Mapping[int, str],
    *,
    connectivity: int = CONNECTIVITY,
) -> list[ClassStats]:
    """Per-class numbers, one entry per class found by either side, sorted by label.

    ``semantic_names`` names the indices of ``semantic_map`` (0 is always background);
    classes are matched to the instances' ``class_names`` by name, ignoring case.
    """
    if semantic_map.shape != instances.image_size:
        raise ValueError(
            f"semantic map is {semantic_map.shape}, the instances' image is {instances.image_size}"
        )
    if semantic_map.size and int(semantic_map.min()) < 0:
        raise ValueError("semantic map holds negative class indices")
    labels: dict[str, str] = {}
    members: dict[str, list[int]] = {}
    for i, name in enumerate(instances.class_names):
        labels.setdefault(_key(name), name)
        members.setdefault(_key(name), []).append(i)
    counts = np.bincount(semantic_map.ravel()) if semantic_map.size else np.zeros(1, np.int64)
    ids: dict[str, list[int]] = {}
    for cid in np.flatnonzero(counts):
        if cid == BACKGROUND:
            continue
        name = semantic_names.get(int(cid), f"class {cid}")
        labels.setdefault(_key(name), name)
        ids.setdefault(_key(name), []).append(int(cid))

    stats = []
    for key, label in labels.items():
        class_ids = ids.get(key, [])
        sem_pixels = int(sum(int(counts[c]) for c in class_ids))
        regions = 0
        if class_ids:
            regions = count_regions(np.isin(semantic_map, class_ids), connectivity)
        idx = members.get(key, [])
        stats.append(
            ClassStats(
                label=label,
                instances=len(idx),
                semantic_regions=regions,
                semantic_pixels=sem_pixels,
                instance_pixels=_union_area(instances, idx),
                score=float(instances.scores[idx].max()) if idx else None,
            )
        )
    return sorted(stats, key=lambda s: (_key(s.label), s.label))


def _union_area(instances: Instances, index: Sequence[int]) -> int:
    """Pixels covered by any of the masks ``index`` (computed inside their joint box)."""
    boxes = instances.mask_boxes[list(index)] if len(index) else np.zeros((0, 4), np.int64)
    if not len(boxes):
        return 0
    bx0, by0 = int(boxes[:, 0].min()), int(boxes[:, 1].min())
    bx1, by1 = int(boxes[:, 2].max()), int(boxes[:, 3].max())
    union = np.zeros((by1 - by0, bx1 - bx0), dtype=bool)
    for i in index:
        x0, y0, x1, y1 = (int(v) for v in instances.mask_boxes[i])
        union[y0 - by0 : y1 - by0, x0 - bx0 : x1 - bx0] |= instances.masks[i]
    return int(union.sum())


def compare_record(
    stats: Sequence[ClassStats],
    *,
    image_path: str,
    image_size: tuple[int, int],
    semantic: str,
    connectivity: int = CONNECTIVITY,
    **extra: Any,
) -> dict[str, Any]:
    """The ``segcli.compare/1`` JSON object; ``extra`` keys (model, settings, ...) follow."""
    height, width = image_size
    record: dict[str, Any] = {
        "schema": SCHEMA,
        "image": {"path": image_path, "width": int(width), "height": int(height)},
        "semantic": semantic,
        "classes": [s.to_dict() for s in stats],
        "connectivity": connectivity,
    }
    record.update({k: v for k, v in extra.items() if v is not None})
    return record


# --------------------------------------------------------------------------- colours
def semantic_color(index: int) -> tuple[int, int, int]:
    """The PASCAL VOC palette colour of class ``index`` (RGB); 0, the background, is black."""
    r = g = b = 0
    c = int(index)
    for shift in range(7, -1, -1):
        r |= ((c >> 0) & 1) << shift
        g |= ((c >> 1) & 1) << shift
        b |= ((c >> 2) & 1) << shift
        c >>= 3
    return r, g, b


# --------------------------------------------------------------------------- annotators
class ClassificationAnnotator:
    """The classes present (highest instance score each), listed large in the top-left corner."""

    def __init__(self, *, max_lines: int = 8, text_scale: float = 1.5) -> None:
        self.max_lines = max_lines
        self.text_scale = text_scale

    def annotate(self, image: np.ndarray, instances: Instances) -> np.ndarray:
        out = np.ascontiguousarray(image).copy()
        best: dict[str, float] = {}
        for name, score in zip(instances.class_names, instances.scores):
            best[name] = max(best.get(name, 0.0), float(score))
        ranked = sorted(best.items(), key=lambda kv: (-kv[1], kv[0]))
        lines = [f"{name} {score:.2f}" for name, score in ranked[: self.max_lines]]
        if len(ranked) > self.max_lines:
            lines.append(f"+{len(ranked) - self.max_lines} more")
        if not lines:
            lines = ["no class found"]
        font = cv2.FONT_HERSHEY_SIMPLEX
        scale, _ = text_geometry(out.shape[:2])
        scale *= self.text_scale
        thickness = max(1, round(scale * 1.6))
        pad = max(2, round(scale * 4))
        y = pad
        for line in lines:
            (tw, th), base = cv2.getTextSize(line, font, scale, thickness)
            cv2.rectangle(out, (pad, y), (pad + tw + 2 * pad, y + th + base + 2 * pad), (255, 255, 255), -1)
            cv2.putText(out, line, (2 * pad, y + pad + th), font, scale, (0, 0, 0), thickness, cv2.LINE_AA)
            y += th + base + 3 * pad
        return out


class SemanticAnnotator:
    """Every pixel in its class's colour (background included), with a legend.

    Colours follow the PASCAL VOC palette by class index, so every object of a class
    shares one colour and the background is black. With the default ``alpha=1`` the
    image does not show through: the panel is the map itself.
    """

    def __init__(
        self, names: Mapping[int, str], *, alpha: float = 1.0, legend: bool = True, max_legend: int = 10
    ) -> None:
        self.names = names
        self.alpha = alpha
        self.legend = legend
        self.max_legend = max_legend

    def annotate(self, image: np.ndarray, semantic_map: np.ndarray) -> np.ndarray:
        if semantic_map.shape != image.shape[:2]:
            raise ValueError(f"semantic map {semantic_map.shape} does not fit image {image.shape[:2]}")
        present = [int(c) for c in np.unique(semantic_map)]
        palette = np.zeros((max(present, default=0) + 1, 3), dtype=np.float32)
        for c in present:
            palette[c] = semantic_color(c)
        colored = palette[semantic_map]
        out = image.astype(np.float32) * (1 - self.alpha) + colored * self.alpha
        out = np.ascontiguousarray(out.round().clip(0, 255).astype(np.uint8))
        if self.legend:
            self._draw_legend(out, present)
        return out

    def _draw_legend(self, out: np.ndarray, present: list[int]) -> None:
        entries = [(BACKGROUND, "background")] + [
            (c, self.names.get(c, f"class {c}")) for c in present if c != BACKGROUND
        ]
        if len(entries) > self.max_legend:
            more = len(entries) - self.max_legend + 1
            entries = [*entries[: self.max_legend - 1], (-1, f"+{more} more")]
        scale, thickness = text_geometry(out.shape[:2])
        font = cv2.FONT_HERSHEY_SIMPLEX
        sizes = [cv2.getTextSize(name, font, scale, thickness) for _, name in entries]
        th = max(s[0][1] for s in sizes)
        base = max(s[1] for s in sizes)
        row = th + base + 4
        swatch = th + base
        width = 4 + swatch + 4 + max(s[0][0] for s in sizes) + 4
        height = 4 + row * len(entries)
        h, w = out.shape[:2]
        x0, y0 = 2, max(h - height - 2, 0)
        box = out[y0 : y0 + height, x0 : min(x0 + width, w)]
        box[:] = (box.astype(np.float32) * 0.25 + 255 * 0.75).astype(np.uint8)
        for k, (c, name) in enumerate(entries):
            top = y0 + 4 + k * row
            if c >= 0:
                cv2.rectangle(out, (x0 + 4, top), (x0 + 4 + swatch, top + swatch), semantic_color(c), -1)
                cv2.rectangle(out, (x0 + 4, top), (x0 + 4 + swatch, top + swatch), (90, 90, 90), 1)
            cv2.putText(
                out, name, (x0 + 8 + swatch, top + th), font, scale, (0, 0, 0), thickness, cv2.LINE_AA
            )


# --------------------------------------------------------------------------- resizing
def panel_size(image_size: tuple[int, int], *, max_side: int = 640, min_side: int = 320) -> tuple[int, int]:
    """(H, W) of one figure panel: big images shrink to ``max_side``, tiny ones grow to ``min_side``."""
    h, w = image_size
    long = max(h, w)
    target = min(max(long, min_side), max_side)
    return max(1, round(h * target / long)), max(1, round(w * target / long))


def _nearest_index(n_out: int, n_in: int) -> np.ndarray:
    """Source index of each of ``n_out`` target pixels (pixel centres, nearest neighbour)."""
    idx = np.floor((np.arange(n_out) + 0.5) * (n_in / n_out)).astype(np.int64)
    return np.minimum(idx, n_in - 1)


def resize_label_map(labels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resize of an (H, W) label array to ``size`` = (H', W')."""
    h, w = labels.shape
    return labels[np.ix_(_nearest_index(size[0], h), _nearest_index(size[1], w))]


def scale_instances(instances: Instances, size: tuple[int, int]) -> Instances:
    """``instances`` on the image resized to ``size`` = (H', W').

    Masks are sampled exactly like :func:`resize_label_map`, so they line up with the map.
    """
    h, w = instances.image_size
    nh, nw = size
    if (nh, nw) == (h, w):
        return instances
    sy, sx = nh / h, nw / w
    ys_all, xs_all = _nearest_index(nh, h), _nearest_index(nw, w)
    crops, boxes = [], np.zeros((len(instances), 4), dtype=np.int64)
    for i in range(len(instances)):
        x0, y0, x1, y1 = (int(v) for v in instances.mask_boxes[i])
        crop = instances.masks[i]
        # target pixels whose source pixel lies inside the crop
        tx = np.flatnonzero((xs_all >= x0) & (xs_all < x1))
        ty = np.flatnonzero((ys_all >= y0) & (ys_all < y1))
        if crop.size == 0 or not len(tx) or not len(ty):
            crops.append(np.zeros((0, 0), dtype=bool))
            continue
        crops.append(crop[np.ix_(ys_all[ty] - y0, xs_all[tx] - x0)])
        boxes[i] = (tx[0], ty[0], tx[-1] + 1, ty[-1] + 1)
    return Instances(
        image_size=(nh, nw),
        boxes=instances.boxes * np.array([sx, sy, sx, sy], dtype=np.float32),
        scores=instances.scores,
        class_ids=instances.class_ids,
        class_names=instances.class_names,
        masks=tuple(crops),
        mask_boxes=boxes,
    )


# --------------------------------------------------------------------------- figure
FIGURE_BACKGROUND = (255, 255, 255)
TITLE_BACKGROUND = (232, 232, 232)
TITLE_INK = (20, 20, 20)


@dataclass(frozen=True)
class PanelBox:
    """Where one panel lies in the figure: its title bar and its image, (x0, y0, x1, y1)."""

    title: tuple[int, int, int, int]
    image: tuple[int, int, int, int]


@dataclass(frozen=True)
class GridLayout:
    """A grid of equal panels, each a title bar above an image."""

    size: tuple[int, int]  # (H, W) of the figure
    panels: tuple[PanelBox, ...]


def grid_layout(
    panel: tuple[int, int], title_height: int, *, count: int = 4, cols: int = 2, gap: int = 8, margin: int = 8
) -> GridLayout:
    """Row-major placement of ``count`` panels of ``panel`` = (H, W) under ``title_height`` bars."""
    ph, pw = panel
    rows = -(-count // cols)
    cell_h = title_height + ph
    boxes = []
    for k in range(count):
        r, c = divmod(k, cols)
        x0 = margin + c * (pw + gap)
        y0 = margin + r * (cell_h + gap)
        boxes.append(
            PanelBox(
                title=(x0, y0, x0 + pw, y0 + title_height),
                image=(x0, y0 + title_height, x0 + pw, y0 + cell_h),
            )
        )
    height = 2 * margin + rows * cell_h + (rows - 1) * gap
    width = 2 * margin + cols * pw + (cols - 1) * gap
    return GridLayout(size=(height, width), panels=tuple(boxes))


def title_font(titles: Sequence[str], width: int) -> tuple[float, int, int]:
    """Font scale, thickness and bar height so that every title fits ``width``."""
    font = cv2.FONT_HERSHEY_SIMPLEX
    scale = float(np.clip(width / 640.0 * 0.8, 0.4, 1.0))
    thickness = 2 if scale >= 0.7 else 1
    widest = max(cv2.getTextSize(t, font, 1.0, thickness)[0][0] for t in titles)
    scale = min(scale, max(width - 12, 1) / max(widest, 1))
    (_, th), base = cv2.getTextSize("Ag", font, scale, thickness)
    return scale, thickness, th + base + 12


def compose_figure(panels: Sequence[tuple[str, np.ndarray]], *, cols: int = 2) -> np.ndarray:
    """Panels of one shape in a grid, each under a title bar; RGB uint8."""
    if not panels:
        raise ValueError("compose_figure needs at least one panel")
    shape = panels[0][1].shape
    if any(p.shape != shape for _, p in panels):
        raise ValueError("all panels must have one shape")
    ph, pw = shape[:2]
    titles = [t for t, _ in panels]
    scale, thickness, bar = title_font(titles, pw)
    layout = grid_layout((ph, pw), bar, count=len(panels), cols=cols)
    fig = np.empty((*layout.size, 3), dtype=np.uint8)
    fig[:] = FIGURE_BACKGROUND
    for (title, pixels), box in zip(panels, layout.panels):
        tx0, ty0, tx1, ty1 = box.title
        fig[ty0:ty1, tx0:tx1] = TITLE_BACKGROUND
        (_, th), _ = cv2.getTextSize(title, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
        baseline_y = ty0 + (ty1 - ty0 + th) // 2 - 1
        cv2.putText(
            fig,
            title,
            (tx0 + 6, baseline_y),
            cv2.FONT_HERSHEY_SIMPLEX,
            scale,
            TITLE_INK,
            thickness,
            cv2.LINE_AA,
        )
        ix0, iy0, ix1, iy1 = box.image
        fig[iy0:iy1, ix0:ix1] = pixels
    return fig


PANEL_TITLES: tuple[str, ...] = (
    "1. Classification",
    "2. Object detection",
    "3. Semantic segmentation",
    "4. Instance segmentation",
)


def compare_panels(
    image: np.ndarray,
    instances: Instances,
    semantic_map: np.ndarray,
    semantic_names: Mapping[int, str],
    *,
    semantic: str = "derived",
    max_side: int = 640,
    min_side: int = 320,
) -> list[tuple[str, np.ndarray]]:
    """The four titled panels, drawn at the figure's size (big photos are shrunk first)."""
    if image.shape[:2] != instances.image_size or semantic_map.shape != instances.image_size:
        raise ValueError(
            f"image {image.shape[:2]}, instances {instances.image_size} and semantic map "
            f"{semantic_map.shape} must share one size"
        )
    size = panel_size(instances.image_size, max_side=max_side, min_side=min_side)
    h, w = instances.image_size
    if size == (h, w):
        small = np.ascontiguousarray(image)
    else:
        interp = cv2.INTER_AREA if size[0] < h else cv2.INTER_LINEAR
        small = cv2.resize(image, (size[1], size[0]), interpolation=interp)
    small_instances = scale_instances(instances, size)
    small_map = resize_label_map(semantic_map, size)
    return [
        (PANEL_TITLES[0], ClassificationAnnotator().annotate(small, small_instances)),
        (PANEL_TITLES[1], OverlayAnnotator(alpha=0.0, contours=False).annotate(small, small_instances)),
        (f"{PANEL_TITLES[2]} ({semantic})", SemanticAnnotator(semantic_names).annotate(small, small_map)),
        (PANEL_TITLES[3], OverlayAnnotator(alpha=0.6, boxes=False).annotate(small, small_instances)),
    ]


def compare_figure(
    image: np.ndarray,
    instances: Instances,
    semantic_map: np.ndarray,
    semantic_names: Mapping[int, str],
    *,
    semantic: str = "derived",
    max_side: int = 640,
    min_side: int = 320,
) -> np.ndarray:
    """The 2x2 figure: classification, detection, semantic and instance segmentation."""
    panels = compare_panels(
        image,
        instances,
        semantic_map,
        semantic_names,
        semantic=semantic,
        max_side=max_side,
        min_side=min_side,
    )
    return compose_figure(panels, cols=2)


# --------------------------------------------------------------------------- files
def compare_paths(image_path: Path, out_dir: Path) -> tuple[Path, Path]:
    """``<out>/<image name>.compare.png`` and ``<out>/<image name>.compare.json``."""
    name = Path(image_path).name
    return out_dir / f"{name}.compare.png", out_dir / f"{name}.compare.json"


def write_compare(figure_path: Path, json_path: Path, figure: np.ndarray, record: dict[str, Any]) -> None:
    """Write the figure, then the JSON (atomically, each)."""
    atomic_write_bytes(figure_path, encode_image(figure, ".png"))
    atomic_write_bytes(json_path, dumps(record))


# --------------------------------------------------------------------------- one image, end to end
@dataclass(frozen=True)
class CompareResult:
    """What :func:`run_compare` wrote, and the numbers it wrote there."""

    figure_path: Path
    json_path: Path
    record: dict[str, Any]
    stats: tuple[ClassStats, ...]

    def paths(self) -> dict[str, Path]:
        return {"figure": self.figure_path, "json": self.json_path}


def run_compare(
    segmenter: Segmenter,
    image_path: Path,
    out_dir: Path,
    *,
    semantic_model: Loaded | None = None,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
) -> CompareResult:
    """Segment ``image_path``, build its semantic map, write the figure and the JSON.

    Without ``semantic_model`` the map is derived from the instances (``"derived"``);
    with one (``segcli.model.load_semantic_model``) it is that model's, in VOC classes
    named the COCO way.
    """
    image_path = Path(image_path)
    pixels = read_image(image_path, max_pixels=max_pixels).pixels
    [instances] = segmenter([pixels])
    if semantic_model is None:
        semantic = "derived"
        semantic_map = derived_semantic_map(instances)
        names = dict(enumerate(segmenter.categories))
        semantic_info = None
    else:
        from segcli.detect import semantic_segment

        semantic = semantic_model.spec.name
        semantic_map = semantic_segment(semantic_model, pixels)
        names = voc_names_as_coco(semantic_model.categories)
        semantic_info = semantic_model.info()
    stats = class_stats(instances, semantic_map, names)
    figure = compare_figure(pixels, instances, semantic_map, names, semantic=semantic)
    figure_path, json_path = compare_paths(image_path, out_dir)
    record = compare_record(
        stats,
        image_path=str(image_path),
        image_size=instances.image_size,
        semantic=semantic,
        figure=figure_path.name,
        model=segmenter.model_info(),
        semantic_model=semantic_info,
        settings=segmenter.settings.to_dict(),
    )
    write_compare(figure_path, json_path, figure, record)
    return CompareResult(figure_path=figure_path, json_path=json_path, record=record, stats=tuple(stats))


__all__ = [
    "CONNECTIVITY",
    "PANEL_TITLES",
    "SCHEMA",
    "SEMANTIC_SOURCES",
    "VOC_TO_COCO",
    "ClassStats",
    "ClassificationAnnotator",
    "CompareResult",
    "GridLayout",
    "PanelBox",
    "SemanticAnnotator",
    "check_semantic_source",
    "class_stats",
    "coco_name",
    "compare_figure",
    "compare_panels",
    "compare_paths",
    "compare_record",
    "compose_figure",
    "count_regions",
    "derived_semantic_map",
    "grid_layout",
    "panel_size",
    "resize_label_map",
    "run_compare",
    "scale_instances",
    "semantic_color",
    "title_font",
    "voc_names_as_coco",
    "write_compare",
]
