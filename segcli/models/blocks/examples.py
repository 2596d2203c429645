"""Write the example block scenes (PNG) and their COCO ground truth.

python -m segcli.models.blocks.examples examples/blocks
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

import cv2

from segcli.models.blocks.scenes import (
    HELDOUT_SEED_BASE,
    Scene,
    render_scene,
    scenes_to_coco,
    seed_case_scene,
)

_EXAMPLE_BASE = HELDOUT_SEED_BASE + 2_000_000  # held out: never seen in training


def _generated(k: int) -> Callable[[], Scene]:
    return lambda: render_scene(_EXAMPLE_BASE + k, size=(512, 384))


EXAMPLES: dict[str, Callable[[], Scene]] = {
    # the seed's case: two cubes of one colour, the nearer one partly hiding the other
    "two-red-cubes.png": seed_case_scene,
    "magenta-cubes.png": _generated(3),
    "tiled-floor.png": _generated(4),
    "cluttered.png": _generated(7),
    "grey-cylinders.png": _generated(11),
}


def write_examples(out_dir: Path) -> list[Path]:
    """Render every example into ``out_dir``, plus ``ground-truth.json`` (COCO, RLE)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    scenes, paths = [], []
    for name, make in EXAMPLES.items():
        scene = make()
        path = out_dir / name
        if not cv2.imwrite(str(path), cv2.cvtColor(scene.image, cv2.COLOR_RGB2BGR)):
            raise OSError(f"could not write {path}")
        scenes.append(scene)
        paths.append(path)
    gt = scenes_to_coco(scenes, list(EXAMPLES))
    gt_path = out_dir / "ground-truth.json"
    gt_path.write_text(json.dumps(gt) + "\n")
    return [*paths, gt_path]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out_dir", type=Path, nargs="?", default=Path("examples/blocks"))
    args = p.parse_args(argv)
    for path in write_examples(args.out_dir):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
