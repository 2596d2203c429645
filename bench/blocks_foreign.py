"""How the blocks model holds up on scenes from a *different* renderer of the same description.

    python bench/blocks_foreign.py -n 100

``segcli.models.blocks.scenes`` is the renderer the model was trained on. This file is a
second, independent and deliberately simpler implementation of issue 3's scene
description (cubes, spheres and cylinders on a floor, painter's order, visible
masks, objects under 1 % dropped), written without reusing any of its drawing code:
a fixed oblique projection instead of a rotated 3-D cube, fixed face brightness
ratios instead of Lambert shading, a linear gradient plus a Gaussian highlight for
spheres, anti-aliased edges, painter's order by the bottom of the silhouette,
small objects drawn but left out of the ground truth. Scores are COCOeval mask and
box AP through ``Segmenter(model="blocks")``, as in ``bench/blocks_ap.py``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # also runs as python bench/blocks_foreign.py
from bench.common import bench_parser, evaluate, instances_to_coco, print_ap, write_json


def _floor(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    kind = rng.integers(5)
    c1 = rng.integers(0, 256, 3).astype(np.float32)
    c2 = np.clip(c1 + rng.normal(0, 40, 3), 0, 255).astype(np.float32)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    if kind == 0:
        t = np.zeros((h, w), np.float32)
    elif kind == 1:
        t = yy / h
    elif kind == 2:
        t = cv2.GaussianBlur(rng.random((h, w)).astype(np.float32), (0, 0), rng.uniform(2, 12))
        t = (t - t.min()) / max(float(np.ptp(t)), 1e-6)
    elif kind == 3:
        s = rng.uniform(20, 60)
        t = ((xx // s + yy // (s * 0.6)) % 2).astype(np.float32) * 0.5
    else:
        t = (np.sin(xx / rng.uniform(3, 9)) * np.sin(yy / rng.uniform(3, 9)) + 1) / 2
    img = c1 + (c2 - c1) * t[..., None]
    return np.clip(img + rng.normal(0, 3, img.shape), 0, 255).astype(np.float32)


def _color(rng: np.random.Generator) -> np.ndarray:
    hsv = np.uint8([[[rng.integers(180), rng.integers(30, 256), rng.integers(90, 256)]]])
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0].astype(np.float32)


def _object(
    rng: np.random.Generator, cls: int, color: np.ndarray, x: float, y: float, s: float, h: int, w: int
) -> tuple[np.ndarray, np.ndarray]:
    """Silhouette (bool) and an RGB layer for one object with its bottom at (x, y)."""
    sil = np.zeros((h, w), np.uint8)
    layer = np.zeros((h, w, 3), np.float32)
    if cls == 1:  # cube: oblique projection, top + front + side face
        d = s * 0.35  # depth offset of the back faces
        f = s * 0.7  # front face width
        x0, y1 = x - s / 2, y
        front = np.array([[x0, y1 - f], [x0 + f, y1 - f], [x0 + f, y1], [x0, y1]])
        back = front + np.array([d, -d * 0.6])
        top = np.array([front[0], front[1], back[1], back[0]])
        side = np.array([front[1], back[1], back[2], front[2]])
        ratios = rng.permutation([1.0, 0.75, 0.5])
        for poly, r in ((front, ratios[0]), (side, ratios[1]), (top, ratios[2])):
            p = np.round(poly).astype(np.int32)
            cv2.fillConvexPoly(sil, p, 1)
            cv2.fillConvexPoly(layer, p, (color * r).tolist(), cv2.LINE_AA)
    elif cls == 2:  # sphere: linear gradient and a Gaussian highlight
        r = s / 2
        cx, cy = x, y - r
        cv2.circle(sil, (round(cx), round(cy)), round(r), 1, -1)
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        g = np.clip(1.0 - ((xx - cx) + (yy - cy)) / (2.5 * r), 0.3, 1.2)
        hl = np.exp(-((xx - cx + r / 3) ** 2 + (yy - cy + r / 3) ** 2) / (2 * (r / 5) ** 2))
        layer[:] = np.clip(color * g[..., None] + 200 * hl[..., None], 0, 255)
    else:  # cylinder: body with a horizontal gradient, lighter top ellipse
        r = s / 2
        ry = r * rng.uniform(0.25, 0.5)
        hgt = s * rng.uniform(0.6, 1.4)
        top_y = y - ry - hgt
        cv2.ellipse(sil, (round(x), round(y - ry)), (round(r), round(ry)), 0, 0, 360, 1, -1)
        cv2.rectangle(sil, (round(x - r), round(top_y)), (round(x + r), round(y - ry)), 1, -1)
        cv2.ellipse(sil, (round(x), round(top_y)), (round(r), round(ry)), 0, 0, 360, 1, -1)
        xx = np.arange(w, dtype=np.float32)
        g = np.clip(0.9 - 0.5 * np.abs(xx - x + r / 3) / r, 0.35, 1.0)
        layer[:] = color * g[None, :, None]
        topm = np.zeros((h, w), np.uint8)
        cv2.ellipse(topm, (round(x), round(top_y)), (round(r), round(ry)), 0, 0, 360, 1, -1)
        layer[topm.astype(bool)] = np.clip(color * 1.15 + 25, 0, 255)
    return sil.astype(bool), layer


def foreign_scene(seed: int) -> tuple[np.ndarray, list[tuple[int, np.ndarray]]]:
    rng = np.random.default_rng([seed, 77])
    w = int(rng.integers(256, 641))
    h = int(np.clip(w / rng.uniform(0.75, 1.333), 192, 640))
    img = _floor(rng, h, w)
    short = min(h, w)
    objs = []
    group = (int(rng.integers(1, 4)), _color(rng))
    for _ in range(int(rng.integers(1, 11))):
        cls, col = group if rng.random() < 0.5 else (int(rng.integers(1, 4)), _color(rng))
        s = rng.uniform(0.06, 0.4) * short
        x, y = rng.uniform(0.1, 0.9) * w, rng.uniform(0.3, 1.0) * h
        sil, layer = _object(rng, cls, col, x, y, s, h, w)
        if sil.any():
            bottom = np.nonzero(sil.any(axis=1))[0].max()
            objs.append((bottom, cls, sil, layer))
    objs.sort(key=lambda o: o[0])  # painter's order: lower bottom edge = nearer = later
    for _, _, sil, _layer in objs:
        if rng.random() < 0.5:  # soft shadow on the floor only
            sh = cv2.GaussianBlur(sil.astype(np.float32), (0, 0), 6)
            sh = np.roll(sh, (int(rng.integers(3, 12)), int(rng.integers(-12, 12))), (0, 1))
            img *= (1 - 0.35 * sh)[..., None]
    for _, _, sil, layer in objs:
        img[sil] = layer[sil]
    gts = []
    covered = np.zeros((h, w), bool)
    for _, cls, sil, _ in reversed(objs):
        vis = sil & ~covered
        covered |= sil
        if vis.sum() >= 0.01 * h * w:
            gts.append((cls, vis))
    image = cv2.GaussianBlur(np.clip(img, 0, 255), (3, 3), 0.6).astype(np.uint8)
    return image, gts[::-1]


def main(argv: list[str] | None = None) -> int:
    p = bench_parser(__doc__, work=False)
    p.add_argument("-n", "--num-scenes", type=int, default=100)
    p.add_argument("--score-threshold", type=float, default=0.05)
    p.add_argument("--save", type=Path, default=None, help="write the first 8 scenes as PNG here")
    args = p.parse_args(argv)
    torch.set_num_threads(2)
    from pycocotools import mask as mask_utils

    from segcli.core.settings import Settings
    from segcli.inference.segmenter import Segmenter
    from segcli.models.blocks.arch import CLASS_NAMES

    seg = Segmenter(
        model="blocks", device="cpu", settings=Settings(score_threshold=args.score_threshold), progress=False
    )
    images, anns, dets = [], [], []
    for i in range(args.num_scenes):
        image, gts = foreign_scene(i)
        image_id = i + 1
        images.append({"id": image_id, "width": image.shape[1], "height": image.shape[0]})
        for cls, m in gts:
            rle = mask_utils.encode(np.asfortranarray(m.astype(np.uint8)))
            rle["counts"] = rle["counts"].decode("ascii")
            ys, xs = np.nonzero(m)
            anns.append(
                {
                    "id": len(anns) + 1,
                    "image_id": image_id,
                    "category_id": cls,
                    "segmentation": rle,
                    "area": float(m.sum()),
                    "iscrowd": 0,
                    "bbox": [
                        float(xs.min()),
                        float(ys.min()),
                        float(xs.max() - xs.min() + 1),
                        float(ys.max() - ys.min() + 1),
                    ],
                }
            )
        if args.save and i < 8:
            args.save.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(args.save / f"foreign-{i}.png"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
        [inst] = seg([image])
        dets.extend(instances_to_coco(inst, image_id))
    gt: dict[str, Any] = {
        "images": images,
        "annotations": anns,
        "categories": [{"id": i, "name": name} for i, name in enumerate(CLASS_NAMES, start=1)],
    }
    figures = evaluate(gt, dets)
    print(f"foreign renderer, {args.num_scenes} scenes, {len(anns)} objects, score >= {args.score_threshold}")
    print_ap(figures)
    write_json(args.json, figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
