"""The tile grid of sliced inference (``--tile``), drawn on an overlay (``--debug``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import cv2
import numpy as np

GRID_COLORS = ((255, 255, 255), (255, 200, 0))
"""Tiles alternate between these (RGB) in a checkerboard, so that overlapping borders read apart."""


def draw_tile_grid(canvas: np.ndarray, grid: Mapping[str, Any]) -> np.ndarray:
    """Draw every tile of ``grid`` (the JSON's ``tiling.grid``: ``tile`` = [h, w], ``columns``
    and ``rows`` = the tiles' x and y starts) on the RGB ``canvas``, in place; returns it."""
    th, tw = (int(v) for v in grid["tile"])
    h, w = canvas.shape[:2]
    thickness = max(1, round(max(h, w) / 1000))
    for r, y in enumerate(grid["rows"]):
        for c, x in enumerate(grid["columns"]):
            color = GRID_COLORS[(r + c) % 2]
            x0, y0 = int(x), int(y)
            x1, y1 = min(x0 + tw, w) - 1, min(y0 + th, h) - 1
            cv2.rectangle(canvas, (x0, y0), (x1, y1), color, thickness, cv2.LINE_4)
    return canvas
