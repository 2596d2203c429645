"""``curves.png`` of a run: training losses and validation AP per epoch, drawn with Pillow."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

PANEL_W, PANEL_H = 460, 320
LEFT, RIGHT, TOP, BOTTOM = 58, 16, 34, 46
INK, GRID = (40, 40, 40), (225, 225, 225)
LOSS_COLOURS = {
    "total": (40, 40, 40),
    "loss_classifier": (31, 119, 180),
    "loss_box_reg": (255, 127, 14),
    "loss_mask": (44, 160, 44),
    "loss_objectness": (214, 39, 40),
    "loss_rpn_box_reg": (148, 103, 189),
}
AP_COLOURS = {"segm": (44, 160, 44), "bbox": (31, 119, 180)}


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1
        return ImageFont.load_default()


def _panel(
    image: Image.Image,
    left: int,
    title: str,
    series: Mapping[str, tuple[Sequence[float], Sequence[float | None], tuple[int, int, int]]],
    *,
    y_range: tuple[float, float] | None,
    x_max: float,
    x_label: str,
) -> None:
    draw = ImageDraw.Draw(image)
    font, small = _font(13), _font(11)
    x0, y0, x1, y1 = left + LEFT, TOP, left + PANEL_W - RIGHT, PANEL_H - BOTTOM
    values = [v for _, ys, _ in series.values() for v in ys if v is not None and math.isfinite(v)]
    if y_range is None:
        hi = max(values) if values else 1.0
        y_range = (0.0, hi * 1.08 if hi > 0 else 1.0)
    lo, hi = y_range
    x_max = max(x_max, 1.0)

    def px(x: float, y: float) -> tuple[float, float]:
        return x0 + (x / x_max) * (x1 - x0), y1 - (y - lo) / (hi - lo) * (y1 - y0)

    draw.text(((x0 + x1) / 2, 10), title, fill=INK, font=font, anchor="mt")
    for k in range(6):
        gx, _ = px(x_max * k / 5, lo)
        _, gy = px(0, lo + (hi - lo) * k / 5)
        draw.line([(gx, y0), (gx, y1)], fill=GRID)
        draw.line([(x0, gy), (x1, gy)], fill=GRID)
        draw.text((gx, y1 + 4), f"{x_max * k / 5:.3g}", fill=INK, font=small, anchor="mt")
        draw.text((x0 - 5, gy), f"{lo + (hi - lo) * k / 5:.3g}", fill=INK, font=small, anchor="rm")
    draw.line([(x0, y0), (x0, y1), (x1, y1)], fill=INK)
    draw.text(((x0 + x1) / 2, y1 + 22), x_label, fill=INK, font=small, anchor="mt")
    legend_y = y0 + 8
    for name, (xs, ys, colour) in series.items():
        points = [px(x, y) for x, y in zip(xs, ys) if y is not None and math.isfinite(y)]
        if len(points) > 1:
            draw.line(points, fill=colour, width=2)
        for p in points:
            draw.ellipse([p[0] - 2.5, p[1] - 2.5, p[0] + 2.5, p[1] + 2.5], fill=colour)
        draw.line([(x1 - 150, legend_y), (x1 - 132, legend_y)], fill=colour, width=3)
        draw.text((x1 - 128, legend_y), name, fill=INK, font=small, anchor="lm")
        legend_y += 15


def curves_image(epochs: Sequence[Mapping[str, Any]]) -> np.ndarray:
    """Losses (left) and validation box/mask AP (right) per epoch, as an RGB uint8 image."""
    image = Image.new("RGB", (2 * PANEL_W, PANEL_H), "white")
    xs = [float(e["epoch"]) for e in epochs]
    x_max = max(xs) if xs else 1.0
    loss_series = {}
    names = list(epochs[-1]["losses"]) if epochs else []
    for name in ["total", *names]:
        ys = [e["loss"] if name == "total" else e["losses"].get(name) for e in epochs]
        label = name.removeprefix("loss_") if name != "total" else "total"
        loss_series[label] = (xs, ys, LOSS_COLOURS.get(name, (127, 127, 127)))
    _panel(
        image, 0, "training loss (mean per epoch)", loss_series, y_range=None, x_max=x_max, x_label="epoch"
    )
    ap_series = {}
    for iou, label in (("segm", "mask AP"), ("bbox", "box AP")):
        ys = [(e.get("val") or {}).get(iou, {}).get("AP") for e in epochs]
        ap_series[label] = (xs, ys, AP_COLOURS[iou])
    _panel(
        image,
        PANEL_W,
        "validation AP (COCOeval, IoU .50:.95)",
        ap_series,
        y_range=(0.0, 1.0),
        x_max=x_max,
        x_label="epoch",
    )
    return np.asarray(image)
