"""The figure of ``segcli compare semantic-vs-instance``: four titled panels in a 2x2 grid.

1. classification (the classes present), 2. object detection (boxes and labels), 3. semantic
segmentation (one colour per class), 4. instance segmentation (one colour per object). Panels
are drawn at the figure's size: big photos are shrunk first, tiny images enlarged.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from segcli.core.instances import Instances, nearest_indices
from segcli.draw.annotators import (
    BoxAnnotator,
    ContourAnnotator,
    LabelAnnotator,
    MaskAnnotator,
    compose,
    text_geometry,
)
from segcli.draw.text import cv_text
from segcli.figures.compare.stats import BACKGROUND, ClassStats


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
            (tw, th), base = cv2.getTextSize(cv_text(line), font, scale, thickness)
            cv2.rectangle(out, (pad, y), (pad + tw + 2 * pad, y + th + base + 2 * pad), (255, 255, 255), -1)
            cv2.putText(
                out, cv_text(line), (2 * pad, y + pad + th), font, scale, (0, 0, 0), thickness, cv2.LINE_AA
            )
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
        sizes = [cv2.getTextSize(cv_text(name), font, scale, thickness) for _, name in entries]
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
                out,
                cv_text(name),
                (x0 + 8 + swatch, top + th),
                font,
                scale,
                (0, 0, 0),
                thickness,
                cv2.LINE_AA,
            )


# --------------------------------------------------------------------------- resizing
def panel_size(image_size: tuple[int, int], *, max_side: int = 640, min_side: int = 320) -> tuple[int, int]:
    """(H, W) of one figure panel: big images shrink to ``max_side``, tiny ones grow to ``min_side``."""
    h, w = image_size
    long = max(h, w)
    target = min(max(long, min_side), max_side)
    return max(1, round(h * target / long)), max(1, round(w * target / long))


MIN_CANVAS = 240
"""Panels of very elongated images are centred on a canvas at least this high and wide."""


def panel_image(image: np.ndarray, *, max_side: int = 640, min_side: int = 320) -> np.ndarray:
    """``image`` at its :func:`panel_size`: area-averaged when shrunk, linear when enlarged."""
    h, w = image.shape[:2]
    size = panel_size((h, w), max_side=max_side, min_side=min_side)
    if size == (h, w):
        return np.ascontiguousarray(image)
    interp = cv2.INTER_AREA if size[0] < h else cv2.INTER_LINEAR
    return cv2.resize(image, (size[1], size[0]), interpolation=interp)


def canvas_size(panel: tuple[int, int], *, min_side: int = MIN_CANVAS) -> tuple[int, int]:
    """(H, W) of the canvas a panel of ``panel`` = (H, W) is centred on (see :func:`letterbox`)."""
    return max(panel[0], min_side), max(panel[1], min_side)


def letterbox(
    pixels: np.ndarray, canvas: tuple[int, int], background: tuple[int, int, int] = (246, 246, 246)
) -> np.ndarray:
    """``pixels`` (RGB) centred on a ``canvas`` = (H, W) of ``background``: a 6x400 strip
    still gets a panel its title fits on."""
    h, w = pixels.shape[:2]
    if (h, w) == canvas:
        return pixels
    if h > canvas[0] or w > canvas[1]:
        raise ValueError(f"a {h}x{w} panel does not fit a {canvas[0]}x{canvas[1]} canvas")
    out = np.empty((*canvas, 3), dtype=np.uint8)
    out[:] = background
    y0, x0 = (canvas[0] - h) // 2, (canvas[1] - w) // 2
    out[y0 : y0 + h, x0 : x0 + w] = pixels
    return out


def resize_label_map(labels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resize of an (H, W) label array to ``size`` = (H', W')."""
    h, w = labels.shape
    return labels[np.ix_(nearest_indices(size[0], h), nearest_indices(size[1], w))]


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
    widest = max(cv2.getTextSize(cv_text(t), font, 1.0, thickness)[0][0] for t in titles)
    scale = min(scale, max(width - 12, 1) / max(widest, 1))
    (_, th), base = cv2.getTextSize(cv_text("Ag"), font, scale, thickness)
    return scale, thickness, th + base + 12


def count_lines(stats: Sequence[ClassStats], *, max_lines: int = 6) -> list[str]:
    """The figure's key numbers, one line per class: ``cube: 2 instances, 1 semantic region``."""

    def plural(n: int, word: str) -> str:
        return f"{n} {word}" + ("" if n == 1 else "s")

    lines = [
        f"{row.label}: {plural(row.instances, 'instance')}, {plural(row.semantic_regions, 'semantic region')}"
        for row in stats
    ]
    if len(lines) > max_lines:
        lines = [*lines[: max_lines - 1], f"+{len(lines) - max_lines + 1} more classes (see the JSON)"]
    return lines or ["no objects found"]


def compose_figure(
    panels: Sequence[tuple[str, np.ndarray]], *, cols: int = 2, footer: Sequence[str] = ()
) -> np.ndarray:
    """Panels of one shape in a grid, each under a title bar, and ``footer`` lines of text
    (the per-class counts, :func:`count_lines`) below the grid; RGB uint8."""
    if not panels:
        raise ValueError("compose_figure needs at least one panel")
    shape = panels[0][1].shape
    if any(p.shape != shape for _, p in panels):
        raise ValueError("all panels must have one shape")
    ph, pw = shape[:2]
    titles = [t for t, _ in panels]
    scale, thickness, bar = title_font(titles, pw)
    layout = grid_layout((ph, pw), bar, count=len(panels), cols=cols)
    fig_h, fig_w = layout.size
    line_h = bar - 4
    fig = np.empty((fig_h + len(footer) * line_h, fig_w, 3), dtype=np.uint8)
    fig[:] = FIGURE_BACKGROUND
    font = cv2.FONT_HERSHEY_SIMPLEX
    for k, line in enumerate(footer):
        (tw, th), _ = cv2.getTextSize(cv_text(line), font, scale, thickness)
        line_scale = scale * min(1.0, (fig_w - 24) / max(tw, 1))  # a long line shrinks to fit
        y = fig_h - 4 + k * line_h + (line_h + th) // 2
        cv2.putText(fig, cv_text(line), (14, y), font, line_scale, TITLE_INK, thickness, cv2.LINE_AA)
    for (title, pixels), box in zip(panels, layout.panels):
        tx0, ty0, tx1, ty1 = box.title
        fig[ty0:ty1, tx0:tx1] = TITLE_BACKGROUND
        (_, th), _ = cv2.getTextSize(cv_text(title), cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
        baseline_y = ty0 + (ty1 - ty0 + th) // 2 - 1
        cv2.putText(
            fig,
            cv_text(title),
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
    """The four titled panels, drawn at the figure's size (big photos are shrunk first).

    ``compose_figure(compare_panels(...))`` is the 2x2 figure.
    """
    if image.shape[:2] != instances.image_size or semantic_map.shape != instances.image_size:
        raise ValueError(
            f"image {image.shape[:2]}, instances {instances.image_size} and semantic map "
            f"{semantic_map.shape} must share one size"
        )
    small = panel_image(image, max_side=max_side, min_side=min_side)
    size = (small.shape[0], small.shape[1])
    small_instances = instances.resized(size)
    small_map = resize_label_map(semantic_map, size)
    detection = compose((BoxAnnotator(), LabelAnnotator()))
    instance = compose((MaskAnnotator(alpha=0.6), ContourAnnotator()), LabelAnnotator())
    return [
        (PANEL_TITLES[0], ClassificationAnnotator().annotate(small, small_instances)),
        (PANEL_TITLES[1], detection.annotate(small, small_instances)),
        (f"{PANEL_TITLES[2]} ({semantic})", SemanticAnnotator(semantic_names).annotate(small, small_map)),
        (PANEL_TITLES[3], instance.annotate(small, small_instances)),
    ]
