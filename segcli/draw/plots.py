"""Precision-recall plots drawn with Pillow (no plotting library needed)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from segcli.draw.text import plain_text

PANEL_W, PANEL_H = 400, 340
MARGIN_L, MARGIN_R, MARGIN_T, MARGIN_B = 52, 16, 30, 44
TITLE_H = 34
CURVES = (  # (label, IoU threshold index or None for the mean over 0.50:0.95, AP key, colour, width)
    ("IoU 0.50", 0, "AP50", (31, 119, 180), 6),
    ("IoU 0.75", 5, "AP75", (255, 127, 14), 4),
    ("mean 0.50:0.95", None, "AP", (44, 160, 44), 2),
)
"""Drawn widest first, so that equal curves stay visible as nested stripes."""
PANEL_TITLES = {"bbox": "boxes", "segm": "masks"}
Y_TOP = 1.05
"""Headroom above precision 1.0, where good curves run."""
GRID = (225, 225, 225)
INK = (40, 40, 40)


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: the fixed bitmap font
        return ImageFont.load_default()


def _vertical_text(
    image: Image.Image, x: float, y: float, text: str, font: ImageFont.ImageFont | ImageFont.FreeTypeFont
) -> None:
    """``text`` rotated 90 degrees (reading upwards), its left edge at ``x``, centred on ``y``."""
    draw = ImageDraw.Draw(image)
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    label = Image.new("L", (int(right - left) + 2, int(bottom - top) + 2), 0)
    ImageDraw.Draw(label).text((1 - left, 1 - top), text, fill=255, font=font)
    label = label.rotate(90, expand=True)
    image.paste(INK, (int(x), int(y - label.height / 2)), label)


def _panel(
    image: Image.Image,
    left: int,
    top: int,
    title: str,
    recall: np.ndarray,
    precision: np.ndarray,
    ap: Mapping[str, float | None],
) -> None:
    draw = ImageDraw.Draw(image)
    font, small = _font(13), _font(11)
    x0, y0 = left + MARGIN_L, top + MARGIN_T
    x1, y1 = left + PANEL_W - MARGIN_R, top + PANEL_H - MARGIN_B
    width, height = x1 - x0, y1 - y0

    def px(r: float, p: float) -> tuple[float, float]:
        return x0 + r * width, y1 - p * height / Y_TOP

    draw.text(((x0 + x1) / 2, top + 8), title, fill=INK, font=font, anchor="mt")
    for k in range(6):
        v = k / 5
        gx, gy = px(v, v)
        draw.line([(gx, y0), (gx, y1)], fill=GRID)
        draw.line([(x0, gy), (x1, gy)], fill=GRID)
        draw.text((gx, y1 + 4), f"{v:.1f}", fill=INK, font=small, anchor="mt")
        draw.text((x0 - 5, gy), f"{v:.1f}", fill=INK, font=small, anchor="rm")
    draw.line([(x0, y0), (x0, y1), (x1, y1)], fill=INK)
    draw.text(((x0 + x1) / 2, y1 + 22), "recall", fill=INK, font=small, anchor="mt")
    _vertical_text(image, left + 8, (y0 + y1) / 2, "precision", small)
    if not np.any(precision > -1):
        draw.text(((x0 + x1) / 2, (y0 + y1) / 2), "no ground truth", fill=INK, font=font, anchor="mm")
        return
    for k, (label, index, key, colour, line_width) in enumerate(CURVES):
        curve = precision.mean(axis=0) if index is None else precision[index]
        curve = np.clip(curve, 0.0, 1.0)
        points = [px(float(r), float(p)) for r, p in zip(recall, curve)]
        draw.line(points, fill=colour, width=line_width)
        value = ap.get(key)
        text = f"{label}  {key} {value:.3f}" if value is not None else f"{label}  {key} -"
        ly = y0 + height - 16 * (len(CURVES) - k) - 4
        draw.line([(x0 + 8, ly), (x0 + 26, ly)], fill=colour, width=3)
        draw.text((x0 + 31, ly), text, fill=INK, font=small, anchor="lm")


def pr_curve_image(
    name: str,
    panels: Mapping[str, tuple[np.ndarray, np.ndarray, np.ndarray]],
    ap: Mapping[str, Mapping[str, float | None]],
) -> np.ndarray:
    """One class's precision-recall curves as an RGB uint8 image, one panel per IoU type.

    ``panels`` maps an IoU type (``bbox``, ``segm``) to (recall points (R,), IoU
    thresholds (T,), precision (T, R) with -1 where the class has no ground truth);
    ``ap`` holds the class's AP, AP50, AP75 per IoU type for the legend.
    """
    image = Image.new("RGB", (PANEL_W * max(len(panels), 1), PANEL_H + TITLE_H), "white")
    draw = ImageDraw.Draw(image)
    title = f"{plain_text(name)}: precision-recall"
    draw.text((image.width / 2, 10), title, fill=INK, font=_font(15), anchor="mt")
    for k, (iou_type, (recall, _thresholds, precision)) in enumerate(panels.items()):
        _panel(
            image,
            k * PANEL_W,
            TITLE_H,
            PANEL_TITLES.get(iou_type, iou_type),
            recall,
            precision,
            ap.get(iou_type, {}),
        )
    return np.asarray(image)
