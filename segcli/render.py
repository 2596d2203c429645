"""Drawing instances onto images. Annotators take an image and ``Instances`` and return a new image."""

from __future__ import annotations

import colorsys

import cv2
import numpy as np

from segcli.instances import Instances


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


class OverlayAnnotator:
    """Each instance in its own colour: alpha-blended mask, contour, box and ``label score``.

    Instances are drawn from the lowest score up, so the most confident one is on
    top. Holes in a mask stay holes (only mask pixels are blended; hole contours are
    drawn too).
    """

    def __init__(
        self,
        *,
        alpha: float = 0.45,
        boxes: bool = True,
        labels: bool = True,
        contours: bool = True,
    ) -> None:
        self.alpha = alpha
        self.boxes = boxes
        self.labels = labels
        self.contours = contours

    def annotate(self, image: np.ndarray, instances: Instances) -> np.ndarray:
        out = np.ascontiguousarray(image).copy()
        if len(instances) == 0:
            return out
        _, thickness = text_geometry(out.shape[:2])
        order = instances.paint_order()
        for i in order:
            color = instance_color(int(i))
            x0, y0, x1, y1 = (int(v) for v in instances.mask_boxes[i])
            crop = instances.masks[i]
            if crop.size and crop.any():
                region = out[y0:y1, x0:x1]
                pix = region[crop].astype(np.float32)
                region[crop] = (pix * (1 - self.alpha) + np.float32(color) * self.alpha).astype(np.uint8)
                if self.contours:
                    found, _ = cv2.findContours(
                        crop.astype(np.uint8), cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE, offset=(x0, y0)
                    )
                    cv2.drawContours(out, found, -1, color, thickness, cv2.LINE_AA)
        for i in order:
            color = instance_color(int(i))
            bx0, by0, bx1, by1 = (round(float(v)) for v in instances.boxes[i])
            if self.boxes:
                cv2.rectangle(out, (bx0, by0), (bx1, by1), color, thickness)
            if self.labels:
                draw_label(out, f"{instances.class_names[i]} {instances.scores[i]:.2f}", (bx0, by0), color)
        return out
