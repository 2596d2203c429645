"""Drawing instances onto images.

An annotator takes an RGB image and ``Instances`` and returns a new image
(:class:`Annotator`). Four small ones draw one kind of mark each: :class:`MaskAnnotator`,
:class:`ContourAnnotator`, :class:`BoxAnnotator` and :class:`LabelAnnotator`. The caller
composes them with :func:`compose`; :class:`OverlayAnnotator` is the composition that
``segcli predict`` and ``batch`` draw::

    compose((MaskAnnotator(), ContourAnnotator()), (BoxAnnotator(), LabelAnnotator()))

Each instance is drawn in ``instance_color(i)`` unless ``colors`` (one RGB per instance,
e.g. by track id) is passed to ``annotate``.
"""

from __future__ import annotations

import colorsys
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import cv2
import numpy as np

from segcli.instances import Instances

Color = tuple[int, int, int]
"""An RGB colour."""


class Annotator(Protocol):
    """Anything that draws ``instances`` on a copy of ``image`` and returns it."""

    def annotate(
        self, image: np.ndarray, instances: Instances, colors: Sequence[Color] | None = None
    ) -> np.ndarray: ...


def instance_color(index: int) -> tuple[int, int, int]:
    """A bright RGB colour for instance ``index``; neighbours in the sequence differ strongly."""
    hue = (index * 0.618033988749895 + 0.05) % 1.0
    sat = 0.75 if index % 2 == 0 else 0.95
    val = 1.0 if index % 3 != 2 else 0.8
    r, g, b = colorsys.hsv_to_rgb(hue, sat, val)
    return int(r * 255), int(g * 255), int(b * 255)


def text_geometry(image_size: tuple[int, int]) -> tuple[float, int]:
    """Font scale and line thickness that read well on an image of this size."""
    short = min(image_size)
    scale = float(np.clip(short / 900.0, 0.35, 3.0))
    return scale, max(1, round(scale * 1.6))


def draw_label(image: np.ndarray, text: str, anchor: tuple[int, int], color: tuple[int, int, int]) -> None:
    """Write ``text`` on a filled tag whose bottom-left corner is at ``anchor`` (in place)."""
    scale, thickness = text_geometry(image.shape[:2])
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
    x, y = anchor
    h, w = image.shape[:2]
    x = int(np.clip(x, 0, max(w - tw - 2, 0)))
    top = y - th - base - 2
    if top < 0:  # no room above: put the tag just inside
        top = max(y, 0)
    top = int(min(top, max(h - th - base - 2, 0)))
    cv2.rectangle(image, (x, top), (x + tw + 2, top + th + base + 2), color, -1)
    luminance = 0.299 * color[0] + 0.587 * color[1] + 0.114 * color[2]
    ink = (0, 0, 0) if luminance > 140 else (255, 255, 255)
    cv2.putText(
        image, text, (x + 1, top + th + 1), cv2.FONT_HERSHEY_SIMPLEX, scale, ink, thickness, cv2.LINE_AA
    )


class InstanceAnnotator(ABC):
    """An annotator that draws each instance on its own, in place (:meth:`draw`).

    Alone, it draws every instance from the weakest claim to the strongest
    (:meth:`Instances.paint_order`), so the most confident one ends up on top.
    """

    @abstractmethod
    def draw(self, canvas: np.ndarray, instances: Instances, i: int, color: Color) -> None:
        """Draw instance ``i`` onto ``canvas`` (RGB uint8, modified in place)."""

    def annotate(
        self, image: np.ndarray, instances: Instances, colors: Sequence[Color] | None = None
    ) -> np.ndarray:
        return compose(self).annotate(image, instances, colors)


@dataclass(frozen=True)
class MaskAnnotator(InstanceAnnotator):
    """Mask pixels alpha-blended with the instance's colour; holes stay holes."""

    alpha: float = 0.45

    def draw(self, canvas: np.ndarray, instances: Instances, i: int, color: Color) -> None:
        crop = instances.masks[i]
        if crop.size and crop.any():
            x0, y0, x1, y1 = (int(v) for v in instances.mask_boxes[i])
            region = canvas[y0:y1, x0:x1]
            pix = region[crop].astype(np.float32)
            region[crop] = (pix * (1 - self.alpha) + np.float32(color) * self.alpha).astype(np.uint8)


@dataclass(frozen=True)
class ContourAnnotator(InstanceAnnotator):
    """The mask's outline, holes' outlines included. ``thickness`` None: from the image size."""

    thickness: int | None = None

    def draw(self, canvas: np.ndarray, instances: Instances, i: int, color: Color) -> None:
        crop = instances.masks[i]
        if crop.size and crop.any():
            x0, y0 = int(instances.mask_boxes[i][0]), int(instances.mask_boxes[i][1])
            found, _ = cv2.findContours(
                crop.astype(np.uint8), cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE, offset=(x0, y0)
            )
            cv2.drawContours(canvas, found, -1, color, _thickness(canvas, self.thickness), cv2.LINE_AA)


@dataclass(frozen=True)
class BoxAnnotator(InstanceAnnotator):
    """The detection box (``instances.boxes``). ``thickness`` None: from the image size."""

    thickness: int | None = None

    def draw(self, canvas: np.ndarray, instances: Instances, i: int, color: Color) -> None:
        bx0, by0, bx1, by1 = (round(float(v)) for v in instances.boxes[i])
        cv2.rectangle(canvas, (bx0, by0), (bx1, by1), color, _thickness(canvas, self.thickness))


@dataclass(frozen=True)
class LabelAnnotator(InstanceAnnotator):
    """``label score`` on a tag in the instance's colour, above the box's top-left corner."""

    def draw(self, canvas: np.ndarray, instances: Instances, i: int, color: Color) -> None:
        bx0, by0 = round(float(instances.boxes[i][0])), round(float(instances.boxes[i][1]))
        draw_label(canvas, f"{instances.class_names[i]} {instances.scores[i]:.2f}", (bx0, by0), color)


def _thickness(canvas: np.ndarray, thickness: int | None) -> int:
    return text_geometry(canvas.shape[:2])[1] if thickness is None else thickness


class Composite:
    """Annotators drawn in passes onto one copy of the image.

    A pass is a group of :class:`InstanceAnnotator`: instance by instance, weakest claim
    first, each instance is drawn by every annotator of the group before the next
    instance, so a stronger instance's marks cover all of a weaker one's. Passes run
    one after another. Build it with :func:`compose`.
    """

    def __init__(self, *passes: Sequence[InstanceAnnotator]) -> None:
        self.passes = tuple(tuple(p) for p in passes)

    def __repr__(self) -> str:
        return f"{type(self).__name__}{self.passes}"

    def annotate(
        self, image: np.ndarray, instances: Instances, colors: Sequence[Color] | None = None
    ) -> np.ndarray:
        out = np.ascontiguousarray(image).copy()
        if len(instances) == 0:
            return out
        if colors is None:
            colors = [instance_color(i) for i in range(len(instances))]
        elif len(colors) != len(instances):
            raise ValueError(f"{len(colors)} colours for {len(instances)} instances")
        order = instances.paint_order()
        for group in self.passes:
            for i in order:
                for annotator in group:
                    annotator.draw(out, instances, int(i), colors[i])
        return out


def compose(*steps: InstanceAnnotator | Sequence[InstanceAnnotator]) -> Composite:
    """One annotator from several: each step is a pass, one annotator or a tuple drawn together.

    ``compose(MaskAnnotator(), LabelAnnotator())`` blends every mask, then labels every
    instance; ``compose((MaskAnnotator(), LabelAnnotator()))`` does both per instance, so a
    stronger instance's mask covers a weaker one's label.
    """
    return Composite(*((s,) if isinstance(s, InstanceAnnotator) else tuple(s) for s in steps))


class OverlayAnnotator(Composite):
    """The overlay of ``segcli predict`` and ``batch``: each instance in its own colour,
    alpha-blended mask and contour, then box and ``label score``.

    Instances are drawn from the lowest score up, so the most confident one is on top.
    Holes in a mask stay holes (only mask pixels are blended; hole contours are drawn too).
    """

    def __init__(self, *, alpha: float = 0.45) -> None:
        super().__init__(
            (MaskAnnotator(alpha), ContourAnnotator()),
            (BoxAnnotator(), LabelAnnotator()),
        )
