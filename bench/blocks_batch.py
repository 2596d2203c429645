"""The blocks model end to end through `segcli batch`: seconds per 512x384 image (goal <= 0.25 s).

    python -m bench.blocks_batch [--images 50]

Held-out scenes (never used in training) are rendered at 512x384 into a folder, then
`segcli batch --model blocks` runs on it as a separate process with default settings and
outputs (overlay + JSON). Reported: the loop's seconds per image from run.json (decode,
forward, paste, RLE, overlay, writes) and the whole process's wall time per image
(Python start-up and model load included).
"""

from __future__ import annotations

import shutil

import cv2

from bench.common import bench_parser, machine, segcli_batch_measured, write_json


def main() -> None:
    from segcli.models.blocks.scenes import HELDOUT_SEED_BASE, render_scene

    p = bench_parser(__doc__)
    p.add_argument("--images", type=int, default=50)
    args = p.parse_args()
    folder = args.work / "blocks-512"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    for i in range(args.images):
        scene = render_scene(HELDOUT_SEED_BASE + 700_000 + i, size=(512, 384))
        cv2.imwrite(str(folder / f"scene{i:03d}.png"), cv2.cvtColor(scene.image, cv2.COLOR_RGB2BGR))
    wall, rss, run = segcli_batch_measured(folder, args.work / "blocks-512-out", "--model", "blocks")
    n = run["counts"]["done"]
    per_image = run["seconds"] / n
    print(f"machine: {machine()}")
    print(f"{n} held-out scenes at 512x384, {run['counts']['instances']} instances found")
    print(f"segcli batch loop: {per_image:.3f} s/image ({n / run['seconds']:.1f} img/s; goal <= 0.25 s)")
    print(
        f"whole process: {wall:.1f} s = {wall / n:.3f} s/image (start-up and model load included); "
        f"peak RSS {rss:.0f} MiB"
    )
    write_json(
        args.json,
        {
            "machine": machine(),
            "images": n,
            "loop_s_per_image": per_image,
            "wall_s": wall,
            "peak_rss_mib": rss,
        },
    )


if __name__ == "__main__":
    main()
