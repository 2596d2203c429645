"""Large toy-block scenes: many small blocks on a canvas of thousands of pixels.

The blocks model was trained on scenes of 192-640 px whose objects are 6-40 % of the short
side; on a 3000 px canvas a 30 px block shrinks to 4 px at the model's 384 px input and is
lost, which is what sliced inference (``--tile``) is for. Each block is drawn by the scene
code of :mod:`segcli.models.blocks.scenes` (same shapes, shading, shadows) in a small patch
of the canvas's floor; patches never overlap, so every mask is exactly the block's pixels.
``cut_lines`` (x and y positions, e.g. tile borders) pull a share of the blocks onto those
lines on purpose, so that tiles cut them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from segcli.models.blocks.scenes import (
    CATEGORIES,
    ObjectSpec,
    compose,
    random_color,
    random_lighting,
    render_floor,
)


@dataclass(frozen=True)
class Block:
    """One block of a large scene: its class and its mask as a crop of the canvas."""

    category_id: int
    mask: np.ndarray  # bool crop
    box: tuple[int, int, int, int]  # x0 y0 x1 y1, end-exclusive

    @property
    def area(self) -> int:
        return int(self.mask.sum())

    @property
    def name(self) -> str:
        return CATEGORIES[self.category_id - 1]


@dataclass
class LargeScene:
    image: np.ndarray  # (H, W, 3) uint8 RGB
    blocks: list[Block]
    seed: int


def render_large_scene(
    seed: int,
    width: int,
    height: int,
    *,
    count: int = 200,
    sizes: tuple[float, float] = (20.0, 100.0),
    cut_lines: tuple[Sequence[int], Sequence[int]] = ((), ()),
    on_lines: float = 0.5,
    big: int = 0,
    big_sizes: tuple[float, float] = (250.0, 600.0),
) -> LargeScene:
    """A ``width`` x ``height`` scene of up to ``count`` blocks ``sizes`` px wide, after up to
    ``big`` blocks ``big_sizes`` px wide (larger than a tile: only a whole-image pass sees
    them whole).

    A share ``on_lines`` of the small blocks is centred on a vertical line of
    ``cut_lines[0]``, a horizontal one of ``cut_lines[1]``, or on a crossing of both (a corner
    of four tiles). Blocks whose patch would overlap an earlier one are left out.
    """
    rng = np.random.default_rng([int(seed), 0x1A96E])
    lighting = random_lighting(rng)
    floor = render_floor(rng, width, height)
    canvas = floor.copy()
    xs_lines, ys_lines = list(cut_lines[0]), list(cut_lines[1])
    taken: list[tuple[int, int, int, int]] = []
    blocks: list[Block] = []
    placed = {True: 0, False: 0}  # big, small
    for attempt in range(big * 10 + count * 3):
        placing_big = attempt < big * 10
        if placed[placing_big] >= (big if placing_big else count):
            continue
        size = float(rng.uniform(*(big_sizes if placing_big else sizes)))
        cid = int(rng.integers(1, 4))
        ratio = float(rng.uniform(0.5, 1.4))
        cx, cy = float(rng.uniform(0, width)), float(rng.uniform(0, height))
        u = rng.random()
        if not placing_big and u < on_lines and (xs_lines or ys_lines):
            which = rng.random()
            if xs_lines and (which < 0.4 or not ys_lines):
                cx = float(xs_lines[int(rng.integers(len(xs_lines)))]) + float(rng.uniform(-0.2, 0.2)) * size
            elif ys_lines and (which < 0.8 or not xs_lines):
                cy = float(ys_lines[int(rng.integers(len(ys_lines)))]) + float(rng.uniform(-0.2, 0.2)) * size
            else:
                cx = float(xs_lines[int(rng.integers(len(xs_lines)))])
                cy = float(ys_lines[int(rng.integers(len(ys_lines)))])
        # the ground contact point (x, y) sits below the block's visual centre
        tall = size * max(1.0, ratio)
        x, y = cx, cy + 0.45 * tall
        window = (
            math.floor(x - 1.2 * size),
            math.floor(y - 1.6 * tall),
            math.ceil(x + 1.2 * size),
            math.ceil(y + 0.6 * size),
        )
        x0, y0 = max(window[0], 0), max(window[1], 0)
        x1, y1 = min(window[2], width), min(window[3], height)
        if x1 - x0 < 8 or y1 - y0 < 8 or any(_overlap((x0, y0, x1, y1), t) for t in taken):
            continue
        spec = ObjectSpec(
            category_id=cid,
            color=random_color(rng),
            x=x - x0,
            y=y - y0,
            size=size,
            angle=float(rng.uniform(0, math.pi / 2)),
            height_ratio=ratio,
        )
        scene = compose(
            x1 - x0,
            y1 - y0,
            [spec],
            floor=np.ascontiguousarray(floor[y0:y1, x0:x1]),
            lighting=lighting,
            shadow=0.35,
        )
        if not scene.objects or scene.objects[0].area < 40:  # too small to count
            continue
        taken.append((x0, y0, x1, y1))
        placed[placing_big] += 1
        canvas[y0:y1, x0:x1] = scene.image.astype(np.float32) / 255.0
        mask = scene.objects[0].mask
        ys, xs = np.nonzero(mask)
        bx0, by0, bx1, by1 = int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1
        blocks.append(Block(cid, mask[by0:by1, bx0:bx1].copy(), (x0 + bx0, y0 + by0, x0 + bx1, y0 + by1)))
    image = np.clip(canvas * 255 + 0.5, 0, 255).astype(np.uint8)
    return LargeScene(image=image, blocks=blocks, seed=seed)


def _overlap(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]
