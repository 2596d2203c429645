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
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import cv2
import numpy as np

from segcli.core.instances import Instances
from segcli.draw.text import cv_text

Color = tuple[int, int, int]
"""An RGB colour."""

Rect = tuple[int, int, int, int]
"""(x0, y0, x1, y1), end-exclusive."""

Drawer = Callable[[np.ndarray, int, Color], None]
"""Draws one instance (by index) in a colour onto a canvas, in place."""

FONT = cv2.FONT_HERSHEY_SIMPLEX
LABEL_AREA_SHARE = 0.15
"""Labels may cover at most this share of the image; the weakest instances lose theirs first."""


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
    scale = float(np.clip(short / 900.0, 0.3, 3.0))
    return scale, max(1, round(scale * 1.6))


def tag_size(text: str, scale: float, thickness: int) -> tuple[int, int]:
    """(width, height) of the filled tag :func:`draw_tag` draws for ``text``."""
    (tw, th), base = cv2.getTextSize(cv_text(text), FONT, scale, thickness)
    return tw + 2, th + base + 2


def relative_luminance(color: Sequence[float]) -> float:
    """WCAG 2 relative luminance of an sRGB colour (0-255 channels): 0 black .. 1 white."""
    linear = [
        c / 255 / 12.92 if c <= 0.04045 * 255 else ((c / 255 + 0.055) / 1.055) ** 2.4 for c in color[:3]
    ]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast_ratio(a: Sequence[float], b: Sequence[float]) -> float:
    """WCAG 2 contrast ratio of two colours, 1 (none) .. 21 (black on white)."""
    la, lb = sorted((relative_luminance(a), relative_luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


def ink_for(color: Sequence[float]) -> Color:
    """Black or white, whichever contrasts more with a tag of ``color``: at least 4.58:1 for any
    colour (above WCAG's 4.5:1 for text), so a label stays readable on every instance colour."""
    black, white = (0, 0, 0), (255, 255, 255)
    return black if contrast_ratio(color, black) >= contrast_ratio(color, white) else white


def draw_tag(image: np.ndarray, text: str, rect: Rect, color: Color) -> None:
    """Write ``text`` on a filled tag in ``color`` at ``rect`` (from :func:`place_labels`), in place."""
    scale, thickness = text_geometry(image.shape[:2])
    x0, y0, x1, y1 = rect
    (_, th), _ = cv2.getTextSize(cv_text(text), FONT, scale, thickness)
    cv2.rectangle(image, (x0, y0), (x1 - 1, y1 - 1), color, -1)
    cv2.putText(
        image, cv_text(text), (x0 + 1, y0 + th + 1), FONT, scale, ink_for(color), thickness, cv2.LINE_AA
    )


def draw_label(image: np.ndarray, text: str, anchor: tuple[int, int], color: tuple[int, int, int]) -> None:
    """Write ``text`` on a filled tag whose bottom-left corner is at ``anchor``, kept inside
    the image (in place). :class:`LabelAnnotator` places many labels with :func:`place_labels`."""
    h, w = image.shape[:2]
    tw, tag_h = tag_size(text, *text_geometry((h, w)))
    x = int(np.clip(anchor[0], 0, max(w - tw, 0)))
    top = anchor[1] - tag_h
    if top < 0:  # no room above: put the tag just inside
        top = max(anchor[1], 0)
    top = int(min(top, max(h - tag_h, 0)))
    draw_tag(image, text, (x, top, x + tw, top + tag_h), color)


def _overlaps(a: Rect, b: Rect, gap: int = 1) -> bool:
    """Whether two rectangles overlap or come closer than ``gap`` pixels."""
    return a[0] < b[2] + gap and b[0] < a[2] + gap and a[1] < b[3] + gap and b[1] < a[3] + gap


def _candidates(box: Sequence[float], size: tuple[int, int], image_size: tuple[int, int]) -> list[Rect]:
    """Where a tag of ``size`` = (w, h) may go for ``box``, best first, all inside the image:
    above the box's top-left corner, inside it, below it, then along the box's other corners."""
    h, w = image_size
    tw, th = size
    bx0, by0, bx1, by1 = (round(float(v)) for v in box)
    spots = [
        (bx0, by0 - th),  # above, left-aligned: the usual place
        (bx0, by0),  # inside the top-left corner
        (bx0, by1),  # below
        (bx0, by1 - th),  # inside the bottom-left corner
        (bx1 - tw, by0 - th),  # above, right-aligned
        (bx1 - tw, by0),
        (bx1 - tw, by1),
        (bx1 - tw, by1 - th),
        ((bx0 + bx1 - tw) // 2, (by0 + by1 - th) // 2),  # centred on the box
    ]
    out: list[Rect] = []
    for x, y in spots:
        x = int(np.clip(x, 0, w - tw))
        y = int(np.clip(y, 0, h - th))
        rect = (x, y, x + tw, y + th)
        if rect not in out:
            out.append(rect)
    return out


def place_labels(
    boxes: np.ndarray | Sequence[Sequence[float]],
    texts: Sequence[Sequence[str]],
    priority: Sequence[int] | np.ndarray,
    image_size: tuple[int, int],
    *,
    scale: float | None = None,
    thickness: int | None = None,
    max_share: float = LABEL_AREA_SHARE,
) -> list[tuple[Rect, str] | None]:
    """Where each instance's label goes: (tag rectangle, text), or None when there is no room.

    ``texts[i]`` are instance ``i``'s label texts, longest first (``("dog 0.98", "dog")``):
    the first that fits is used. Instances are placed in ``priority`` order (the most
    confident first); each tag lies wholly inside the image, overlaps no tag placed before
    it, and all tags together cover at most ``max_share`` of the image. An instance that
    cannot be labelled under these rules gets None (its mask and box are still drawn).
    Font ``scale`` and ``thickness`` default to :func:`text_geometry` of the image.
    """
    h, w = image_size
    if scale is None or thickness is None:
        scale, thickness = text_geometry(image_size)
    budget = max_share * h * w
    placed: list[Rect] = []
    out: list[tuple[Rect, str] | None] = [None] * len(texts)
    for i in priority:
        i = int(i)
        for text in texts[i]:
            tw, th = tag_size(text, scale, thickness)
            if tw > w or th > h or tw * th > budget:
                continue
            spot = next(
                (
                    r
                    for r in _candidates(boxes[i], (tw, th), image_size)
                    if not any(_overlaps(r, p) for p in placed)
                ),
                None,
            )
            if spot is not None:
                placed.append(spot)
                budget -= tw * th
                out[i] = (spot, text)
                break
    return out


class InstanceAnnotator(ABC):
    """An annotator that draws each instance on its own, in place (:meth:`draw`).

    Alone, it draws every instance from the weakest claim to the strongest
    (:meth:`Instances.paint_order`), so the most confident one ends up on top.
    """

    @abstractmethod
    def draw(self, canvas: np.ndarray, instances: Instances, i: int, color: Color) -> None:
        """Draw instance ``i`` onto ``canvas`` (RGB uint8, modified in place)."""

    def bind(self, instances: Instances, image_size: tuple[int, int]) -> Drawer:
        """What draws instance ``i`` of ``instances`` on an image of ``image_size``; an
        annotator that must see every instance first (label placement) plans here."""
        return lambda canvas, i, color: self.draw(canvas, instances, i, color)

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
            tint = np.asarray(color, dtype=np.float32)  # np.float32(color) makes the same array
            region[crop] = (pix * (1 - self.alpha) + tint * self.alpha).astype(np.uint8)


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
    """``label score`` on a tag in the instance's colour, by the box's top-left corner.

    Tags are placed together (:func:`place_labels`): the most confident instances first,
    each where it overlaps no other tag and stays inside the image, the score left out
    when only the name fits, and no tag at all when there is no room (or labels would
    cover more than ``max_share`` of the image). Font size follows the image size.
    """

    max_share: float = LABEL_AREA_SHARE

    def texts(self, instances: Instances, i: int) -> tuple[str, str]:
        name = instances.class_names[i]
        return f"{name} {instances.scores[i]:.2f}", name

    def layout(self, instances: Instances, image_size: tuple[int, int]) -> list[tuple[Rect, str] | None]:
        """Each instance's tag (rectangle, text) or None, as :meth:`annotate` draws them."""
        priority = instances.paint_order()[::-1]  # the strongest claim first
        texts = [self.texts(instances, i) for i in range(len(instances))]
        return place_labels(instances.boxes, texts, priority, image_size, max_share=self.max_share)

    def bind(self, instances: Instances, image_size: tuple[int, int]) -> Drawer:
        plan = self.layout(instances, image_size)

        def draw(canvas: np.ndarray, i: int, color: Color) -> None:
            entry = plan[i]
            if entry is not None:
                draw_tag(canvas, entry[1], entry[0], color)

        return draw

    def draw(self, canvas: np.ndarray, instances: Instances, i: int, color: Color) -> None:
        """Instance ``i``'s tag placed as if it were alone."""
        self.bind(instances[[i]], canvas.shape[:2])(canvas, 0, color)


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
        size = (int(out.shape[0]), int(out.shape[1]))
        for group in self.passes:
            drawers = [annotator.bind(instances, size) for annotator in group]
            for i in order:
                for draw in drawers:
                    draw(out, int(i), colors[i])
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
