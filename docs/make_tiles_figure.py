"""The README's "Large images" figure: one large block scene without and with tiles.

    python docs/make_tiles_figure.py          # writes docs/images/tiles-with-and-without.png

A 3072x2048 scene of :func:`segcli.models.blocks.large.render_large_scene` (half of its
blocks centred on tile borders) goes through the bundled blocks model twice, whole and with
``--tile auto`` (384 px, overlap 0.2, the defaults), at the CLI's score threshold (0.5).
The figure shows the same crop of both overlays, the tile grid drawn on the tiled one (what
``--debug`` draws), and how many of the scene's blocks each run found.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # runs from a clone, not installed

OUT = Path("docs/images/tiles-with-and-without.png")
CROP = (960, 560, 2112, 1328)  # x0 y0 x1 y1 of the 3072x2048 scene, shown at 2/3 scale
FONT = ("/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf", "DejaVuSans-Bold.ttf")


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    for name in FONT:
        try:
            return ImageFont.truetype(name, size)
        except OSError:
            continue
    return ImageFont.load_default()


def found(inst: object, blocks: list[object]) -> int:
    """Blocks matched by a detection of mask IoU >= 0.5."""
    from pycocotools import mask as mask_utils

    from segcli.core.masks import rle_encode

    h, w = inst.image_size  # type: ignore[attr-defined]
    if not len(inst):  # type: ignore[arg-type]
        return 0
    dets = [
        rle_encode(inst.masks[i], inst.mask_boxes[i], (h, w))  # type: ignore[attr-defined]
        for i in range(len(inst))  # type: ignore[arg-type]
    ]
    gts = [rle_encode(b.mask, np.array(b.box), (h, w)) for b in blocks]  # type: ignore[attr-defined]
    enc = [{"size": r["size"], "counts": r["counts"].encode()} for r in dets]
    genc = [{"size": r["size"], "counts": r["counts"].encode()} for r in gts]
    iou = np.asarray(mask_utils.iou(enc, genc, [0] * len(genc)))
    return int((iou >= 0.5).any(axis=0).sum())


def main() -> int:
    from segcli.core.settings import Settings, TileSettings
    from segcli.draw.annotators import ContourAnnotator, MaskAnnotator, compose
    from segcli.draw.grid import draw_tile_grid
    from segcli.inference.segmenter import Segmenter
    from segcli.inference.tiles import tile_grid
    from segcli.models.blocks.large import render_large_scene

    grid = tile_grid((2048, 3072), 384, 0.2)
    th, tw = grid.tile_size
    lines = (
        sorted({x for x in grid.xs if x > 0} | {x + tw for x in grid.xs if x + tw < 3072}),
        sorted({y for y in grid.ys if y > 0} | {y + th for y in grid.ys if y + th < 2048}),
    )
    scene = render_large_scene(1000, 3072, 2048, count=300, big=3, cut_lines=lines)
    whole = Segmenter("blocks", device="cpu", progress=False)(scene.image)
    tiled = Segmenter("blocks", device="cpu", settings=Settings(tile=TileSettings()), progress=False)(
        scene.image
    )
    draw = compose((MaskAnnotator(), ContourAnnotator()))
    left = draw.annotate(scene.image, whole)
    right = draw_tile_grid(draw.annotate(scene.image, tiled), tiled.tiling["grid"])  # type: ignore[attr-defined]
    x0, y0, x1, y1 = CROP
    size = ((x1 - x0) * 2 // 3, (y1 - y0) * 2 // 3)
    panels = [
        Image.fromarray(np.ascontiguousarray(p[y0:y1, x0:x1])).resize(size, Image.LANCZOS)
        for p in (left, right)
    ]
    n = len(scene.blocks)
    titles = [
        f"whole image: {found(whole, scene.blocks)} of {n} blocks found",
        f"--tile auto ({tiled.tiling['tiles']} tiles): {found(tiled, scene.blocks)} of {n}",  # type: ignore[attr-defined]
    ]
    gap, head = 16, 44
    figure = Image.new("RGB", (2 * size[0] + gap, size[1] + head), (255, 255, 255))
    pen = ImageDraw.Draw(figure)
    for k, (panel, title) in enumerate(zip(panels, titles)):
        figure.paste(panel, (k * (size[0] + gap), head))
        pen.text((k * (size[0] + gap) + 4, 10), title, fill=(20, 20, 20), font=_font(22))
    OUT.parent.mkdir(parents=True, exist_ok=True)
    figure.save(OUT, optimize=True)
    print(f"{OUT}: {titles[0]}; {titles[1]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
