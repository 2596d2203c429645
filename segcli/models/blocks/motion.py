"""Clips of moving toy blocks with ground truth per frame (for video tests and benchmarks).

Every object has its own hue and keeps it, so the ground-truth identity of a drawn
object is known in every frame even when occlusion hides or removes it. Objects
slide at constant velocity and bounce off the image borders; they pass in front of
and behind each other (painter's order by the ground contact point, as in still
scenes).
"""

from __future__ import annotations

import colorsys
import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from segcli.models.blocks.scenes import CATEGORIES, Lighting, ObjectSpec, SceneObject, compose, render_floor


@dataclass
class ClipFrame:
    """One frame of a block clip: RGB pixels and the visible objects by ground-truth id."""

    index: int
    image: np.ndarray  # (H, W, 3) uint8 RGB
    objects: dict[int, SceneObject]


def moving_blocks(
    seed: int,
    frames: int,
    *,
    size: tuple[int, int] = (256, 192),
    count: int = 3,
    speed: float = 3.0,
    object_size: tuple[float, float] = (0.22, 0.32),
    floor: str = "gradient",
) -> Iterator[ClipFrame]:
    """Yield ``frames`` frames of ``count`` blocks moving across a ``size`` = (W, H) floor.

    ``speed`` is the largest per-frame step in pixels (each object draws its own velocity up
    to it); ``object_size`` is the range of object widths as a fraction of the shorter side.
    Deterministic from ``seed``.
    """
    width, height = size
    rng = np.random.default_rng([int(seed), 0x71DE0])
    floor_pixels = render_floor(rng, width, height, floor)
    lighting = Lighting()
    short = min(width, height)
    hue0 = float(rng.random())
    specs: list[ObjectSpec] = []
    velocities: list[np.ndarray] = []
    for k in range(count):
        hue = (hue0 + k / count) % 1.0
        color = colorsys.hsv_to_rgb(hue, 0.85, 0.9)
        obj_size = float(rng.uniform(*object_size)) * short
        x = width * (k + 0.5) / count + float(rng.uniform(-0.1, 0.1)) * width / count
        y = float(rng.uniform(0.45, 0.9)) * height
        specs.append(
            ObjectSpec(
                category_id=k % len(CATEGORIES) + 1,
                color=(float(color[0]), float(color[1]), float(color[2])),
                x=x,
                y=y,
                size=obj_size,
                angle=float(rng.uniform(0.2, 1.2)),
                height_ratio=float(rng.uniform(0.7, 1.2)),
            )
        )
        angle = float(rng.uniform(0, 2 * np.pi))
        step = float(rng.uniform(0.5, 1.0)) * speed
        velocities.append(np.array([np.cos(angle) * step, np.sin(angle) * step * 0.5]))
    positions = np.array([[s.x, s.y] for s in specs], dtype=np.float64)
    for index in range(frames):
        current = [dataclasses.replace(s, x=float(p[0]), y=float(p[1])) for s, p in zip(specs, positions)]
        scene = compose(width, height, current, floor=floor_pixels, lighting=lighting, shadow=0.3, blur=0.5)
        objects: dict[int, SceneObject] = {}
        for obj in scene.objects:
            matches = [k for k, s in enumerate(specs) if s.color == obj.color]
            objects[matches[0]] = obj
        yield ClipFrame(index=index, image=scene.image, objects=objects)
        for k, spec in enumerate(specs):
            lo = np.array([spec.size * 0.6, spec.size * 1.2])
            hi = np.array([width - spec.size * 0.6, height - spec.size * 0.3])
            nxt = positions[k] + velocities[k]
            for axis in range(2):
                if not lo[axis] <= nxt[axis] <= hi[axis]:
                    velocities[k][axis] = -velocities[k][axis]
                    nxt[axis] = np.clip(positions[k][axis] + velocities[k][axis], lo[axis], hi[axis])
            positions[k] = nxt
