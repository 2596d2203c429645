"""Scenes of shapes the bundled blocks model never saw: rings and pyramids beside cubes.

Built on :mod:`segcli.models.blocks.scenes` (its floors, lights, colours, cube drawing,
shadows and painter's order): a scene is 1-10 objects of three classes, ``cube`` (drawn
exactly as in the blocks scenes), ``ring`` (a torus lying on the floor: an elliptical
annulus with a visible thickness, the floor showing through its hole, so masks have holes)
and ``pyramid`` (a square pyramid turned about the vertical axis, Lambert-shaded faces).
Masks are the visible parts; objects under 1 % of the image are left out, as in the blocks
scenes. Deterministic from the seed.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import cv2
import numpy as np

from segcli.models.blocks import scenes as blocks
from segcli.models.blocks.scenes import Lighting, ObjectSpec, Scene, SceneObject

CLASSES = ("cube", "ring", "pyramid")
CUBE, RING, PYRAMID = 1, 2, 3
Drawn = tuple[np.ndarray, np.ndarray]  # silhouette (H, W) bool, colour layer (H, W, 3) float32


def _draw_ring(spec: ObjectSpec, light: Lighting, shape: tuple[int, int]) -> Drawn:
    """A thick ring (a washer, its top rounded like a torus's) lying on the floor: outer radius
    size / 2, band 0.15-0.3 of it; the floor shows through its hole (masks have holes)."""
    se, ce = math.sin(light.camera_elevation), math.cos(light.camera_elevation)
    big = spec.size / 2
    band = big * (0.15 + 0.15 * (spec.height_ratio - 0.5) / 1.1)
    small = big - band
    lift = band * 0.9 * ce  # the ring's height on screen
    cx, cy = spec.x, spec.y - big * se
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    dx = xx + 0.5 - cx

    def inside(rx: float, dy: float) -> np.ndarray:
        return (dx / rx) ** 2 + ((yy + 0.5 - (cy - dy)) / max(rx * se, 0.5)) ** 2 <= 1.0

    base_out, top_out = inside(big, 0.0), inside(big, lift)
    wall = (np.abs(dx) <= big) & (yy + 0.5 >= cy - lift) & (yy + 0.5 <= cy)
    outer = base_out | top_out | wall
    top_in, base_in = inside(small, lift), inside(small, 0.0)
    see_through = top_in & base_in
    sil = outer & ~see_through
    color = np.zeros((h, w, 3), np.float32)
    base = np.asarray(spec.color, np.float32)
    lw = light.light_world()
    # top face: a rounded band, brightest along its middle circle
    rr = np.sqrt((dx / big) ** 2 + ((yy + 0.5 - (cy - lift)) / max(big * se, 0.5)) ** 2)
    mid = (1 + small / big) / 2
    bump = np.clip((rr - mid) / ((1 - small / big) / 2 + 1e-6), -1, 1)
    ang = np.arctan2(-(yy + 0.5 - (cy - lift)) / max(se, 0.2), dx)
    radial = np.stack([np.cos(ang), np.sin(ang)], -1)
    nz = np.sqrt(np.clip(1 - 0.7 * bump**2, 0, 1))
    n_top = np.concatenate([radial * (0.84 * bump)[..., None], nz[..., None]], -1)
    n_top /= np.linalg.norm(n_top, axis=-1, keepdims=True)
    shade_top = light.ambient + (1 - light.ambient) * np.clip(n_top @ lw, 0, 1)
    n_wall = np.concatenate([radial, np.zeros((h, w, 1), np.float32)], -1)
    shade_out = light.ambient + (1 - light.ambient) * np.clip(n_wall @ lw, 0, 1)
    shade_in = light.ambient + (1 - light.ambient) * 0.6 * np.clip(-(n_wall @ lw), 0, 1)
    top_face = top_out & ~top_in
    inner_wall = top_in & ~base_in
    outer_wall = outer & ~top_out
    for region, shade in ((outer_wall, shade_out), (inner_wall, shade_in), (top_face, shade_top)):
        color[region] = np.clip(base[None] * shade[region][:, None], 0, 1)
    if spec.edge > 0:
        color[top_face] *= 1 - spec.edge * (np.abs(bump[top_face]) > 0.85)[:, None]
    return sil, color


def _draw_pyramid(spec: ObjectSpec, light: Lighting, shape: tuple[int, int]) -> Drawn:
    """A square pyramid, base edge ``size`` / sqrt(2), height ``height_ratio`` x the edge."""
    se, ce = math.sin(light.camera_elevation), math.cos(light.camera_elevation)
    edge = spec.size / math.sqrt(2)
    height = edge * (0.6 + 0.5 * spec.height_ratio / 1.6)
    ca, sa = math.cos(spec.angle), math.sin(spec.angle)
    corners = [(-0.5, -0.5), (0.5, -0.5), (0.5, 0.5), (-0.5, 0.5)]  # counter-clockwise from above
    world = [(edge * (x * ca - y * sa), edge * (x * sa + y * ca), 0.0) for x, y in corners]
    world.append((0.0, 0.0, height))

    def screen(p: tuple[float, float, float]) -> tuple[float, float]:
        x, y, z = p
        return spec.x + x, spec.y - (y * se + z * ce)

    pts = np.array([screen(p) for p in world])
    sil = np.zeros(shape, np.uint8)
    hull = cv2.convexHull(np.round(pts * 16).astype(np.int32).reshape(-1, 1, 2))
    cv2.fillConvexPoly(sil, hull, 1, cv2.LINE_8, 4)
    color = np.zeros((*shape, 3), np.float32)
    base = np.asarray(spec.color, np.float32)
    apex = np.array(world[4])
    faces = []
    for k in range(4):
        a, b = np.array(world[k]), np.array(world[(k + 1) % 4])
        n = np.cross(b - a, apex - a)
        n = n / (np.linalg.norm(n) + 1e-9)
        view = np.array([0.0, -ce, se])  # towards the camera
        if n @ view > 0:
            faces.append((n, [pts[k], pts[(k + 1) % 4], pts[4]]))
    faces.sort(key=lambda f: f[0] @ np.array([0.0, -ce, se]))
    for n, tri in faces:
        shade = light.ambient + (1 - light.ambient) * max(0.0, float(n @ light.light_world()))
        poly = np.round(np.array(tri) * 16).astype(np.int32).reshape(-1, 1, 2)
        cv2.fillConvexPoly(color, poly, np.clip(base * shade, 0, 1).tolist(), cv2.LINE_8, 4)
        if spec.edge > 0:
            cv2.polylines(
                color, [poly], True, np.clip(base * shade * (1 - spec.edge), 0, 1).tolist(), 1, cv2.LINE_AA, 4
            )
    return sil.astype(bool), color


DRAW: dict[int, Callable[[ObjectSpec, Lighting, tuple[int, int]], Drawn]] = {
    CUBE: blocks._draw_cube,
    RING: _draw_ring,
    PYRAMID: _draw_pyramid,
}


def compose(
    width: int,
    height: int,
    specs: Sequence[ObjectSpec],
    *,
    floor: np.ndarray,
    lighting: Lighting,
    shadow: float,
    blur: float,
    noise: float,
    rng: np.random.Generator,
    seed: int,
) -> Scene:
    """The blocks scenes' composition (painter's order, visible masks, 1 % rule) with these shapes."""
    shape = (height, width)
    order = sorted(range(len(specs)), key=lambda i: (specs[i].y, i))
    drawn = {i: DRAW[specs[i].category_id](specs[i], lighting, shape) for i in order}
    keep = [i for i in order if drawn[i][0].any()]
    min_area = blocks.MIN_OBJECT_FRACTION * width * height
    while True:
        visible: dict[int, np.ndarray] = {}
        covered = np.zeros(shape, bool)
        for i in reversed(keep):
            visible[i] = drawn[i][0] & ~covered
            covered |= drawn[i][0]
        small = [i for i in keep if visible[i].sum() < min_area]
        if not small:
            break
        keep = [i for i in keep if i not in small]
    image = floor.copy()
    if shadow > 0 and keep:
        dark = np.zeros(shape, np.float32)
        for i in keep:
            dark = np.maximum(dark, blocks._shadow(replace(specs[i], category_id=CUBE), lighting, shape))
        image *= (1 - shadow * dark)[..., None]
    for i in keep:
        sil, color = drawn[i]
        image[sil] = color[sil]
    if blur > 0:
        image = cv2.GaussianBlur(image, (0, 0), blur)
    if noise > 0:
        image = image + rng.normal(0, noise, image.shape).astype(np.float32)
    rgb = np.clip(image * 255 + 0.5, 0, 255).astype(np.uint8)
    objects = []
    for i in keep:
        ys, xs = np.nonzero(visible[i])
        x0, y0 = int(xs.min()), int(ys.min())
        objects.append(
            SceneObject(
                category_id=specs[i].category_id,
                name=CLASSES[specs[i].category_id - 1],
                mask=visible[i],
                bbox=(x0, y0, int(xs.max()) - x0 + 1, int(ys.max()) - y0 + 1),
                color=specs[i].color,
            )
        )
    return Scene(image=rgb, objects=objects, seed=seed)


def render_shapes(seed: int) -> Scene:
    """The scene of ``seed``: blocks' size, floor, light and placement; cubes, rings, pyramids."""
    rng = np.random.default_rng([int(seed), 0x5A9E5])
    width, height = blocks.random_size(rng)
    lighting = blocks.random_lighting(rng)
    floor = blocks.render_floor(rng, width, height)
    style = np.random.default_rng([int(seed), 0xC0BE])

    def objects() -> list[ObjectSpec]:
        specs = blocks.random_objects(rng, width, height, style_rng=style)
        # the class of each object from this scene's own draw (blocks draws 1-3 as cube/sphere/cylinder)
        return [replace(s, category_id=int(rng.integers(1, 4))) for s in specs]

    shadow = float(rng.uniform(0.2, 0.6)) if rng.random() < 0.6 else 0.0
    blur = float(rng.uniform(0.3, 1.0)) if rng.random() < 0.5 else 0.0
    noise = float(rng.uniform(0.0, 0.03)) if rng.random() < 0.5 else 0.0
    paint = functools.partial(compose, floor=floor, lighting=lighting, shadow=shadow, blur=blur, noise=noise)
    while True:
        scene = paint(width, height, objects(), rng=rng, seed=seed)
        if scene.objects:
            return scene


def write_dataset(folder: Any, seeds: Sequence[int]) -> Any:
    """PNG scenes and their COCO ground truth (``gt.json``, RLE) in ``folder``; returns its path."""
    import json
    from pathlib import Path

    from pycocotools import mask as mask_utils

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    images, annotations = [], []
    for image_id, seed in enumerate(seeds, start=1):
        scene = render_shapes(seed)
        name = f"shapes-{seed}.png"
        cv2.imwrite(str(folder / name), cv2.cvtColor(scene.image, cv2.COLOR_RGB2BGR))
        images.append({"id": image_id, "file_name": name, "width": scene.width, "height": scene.height})
        for obj in scene.objects:
            rle = mask_utils.encode(np.asfortranarray(obj.mask.astype(np.uint8)))
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": obj.category_id,
                    "segmentation": {"size": [scene.height, scene.width], "counts": rle["counts"].decode()},
                    "area": float(obj.area),
                    "bbox": [float(v) for v in obj.bbox],
                    "iscrowd": 0,
                }
            )
    categories = [{"id": i + 1, "name": n, "supercategory": "shape"} for i, n in enumerate(CLASSES)]
    path = folder / "gt.json"
    path.write_text(json.dumps({"images": images, "annotations": annotations, "categories": categories}))
    return path
