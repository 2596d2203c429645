"""Benchmark the bundled blocks model on freshly generated held-out scenes.

    python bench/blocks_ap.py                      # 200 scenes, 300 proposals
    python bench/blocks_ap.py --proposals 1000 --json bench/out/blocks-1000.json

Scenes come from the held-out seed range (``HELDOUT_SEED_BASE`` and up), which
the training script never uses. Every image goes through
``Segmenter(model="blocks")``, the code path of the CLI, one image per call;
detections are scored with pycocotools' COCOeval (``segm`` and ``bbox``).
The score threshold defaults to 0.05, the COCO convention for measuring AP
(the CLI's default of 0.5 can be measured with ``--score-threshold 0.5``).

Timing: the wall time of each ``Segmenter`` call (forward pass, mask pasting
and conversion to ``Instances``; no file decoding) over the benchmark scenes
(their sizes vary, 192-640 px a side), plus the same over ``--timing-images``
held-out scenes rendered at 512x384, where the network forward alone
(``segcli.inference.forward.detect``: no mask pasting) is timed as well.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # also runs as python bench/blocks_ap.py
from bench.common import bench_parser, evaluate, instances_to_coco, print_ap, write_json

if TYPE_CHECKING:
    from segcli.inference.segmenter import Segmenter


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = bench_parser(__doc__, work=False)
    p.add_argument("-n", "--num-scenes", type=int, default=200)
    p.add_argument("--seed-offset", type=int, default=0, help="first seed is HELDOUT_SEED_BASE + this")
    p.add_argument("--proposals", type=int, default=None, help="RPN proposals (default: model's)")
    p.add_argument("--score-threshold", type=float, default=0.05)
    p.add_argument("--min-size", type=int, default=None)
    p.add_argument("--max-size", type=int, default=None)
    p.add_argument(
        "--cross-class-iou",
        type=float,
        default=None,
        help="cross-class NMS IoU of the blocks RoI heads (1.0: off; default: the model's)",
    )
    p.add_argument("--weights", type=Path, default=None, help="another checkpoint to evaluate")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--timing-images", type=int, default=20)
    return p.parse_args(argv)


def forward_seconds(seg: Segmenter, image: np.ndarray) -> float:
    """Wall time of the network alone: resize + normalise, backbone, RPN, box and mask heads."""
    from segcli.inference.forward import detect

    tensor = torch.from_numpy(image).permute(2, 0, 1).float().div_(255.0)
    with torch.inference_mode():
        t0 = time.perf_counter()
        detect(
            seg.module,
            [tensor],
            keep_labels=None,
            max_detections=int(seg.settings.max_detections or 100),
        )
        return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    from segcli.core.settings import Settings
    from segcli.inference.segmenter import Segmenter
    from segcli.models.blocks.scenes import HELDOUT_SEED_BASE, render_scene, scenes_to_coco

    settings = Settings(
        score_threshold=args.score_threshold,
        proposals=args.proposals,
        min_size=args.min_size,
        max_size=args.max_size,
    )
    seg = Segmenter(model="blocks", weights=args.weights, device="cpu", settings=settings, progress=False)
    heads = seg.module.roi_heads
    if args.cross_class_iou is not None:
        heads.cross_class_iou = args.cross_class_iou
    seeds = [HELDOUT_SEED_BASE + args.seed_offset + i for i in range(args.num_scenes)]
    scenes = [render_scene(s) for s in seeds]
    gt = scenes_to_coco(scenes, [f"heldout-{s}.png" for s in seeds])

    seg([scenes[0].image])  # warm-up
    dets: list[dict[str, Any]] = []
    times: list[float] = []
    count_diffs: list[int] = []  # detections scoring >= 0.5 (the CLI default) minus objects
    for image_id, scene in enumerate(scenes, start=1):
        t0 = time.perf_counter()
        [inst] = seg([scene.image])
        times.append(time.perf_counter() - t0)
        dets.extend(instances_to_coco(inst, image_id))
        count_diffs.append(int((inst.scores >= 0.5).sum()) - len(scene.objects))
    figures = evaluate(gt, dets)

    t512: list[float] = []
    f512: list[float] = []
    for i in range(args.timing_images):
        scene = render_scene(HELDOUT_SEED_BASE + 500_000 + i, size=(512, 384))
        t0 = time.perf_counter()
        seg([scene.image])
        t512.append(time.perf_counter() - t0)
        f512.append(forward_seconds(seg, scene.image))

    report: dict[str, Any] = {
        "scenes": len(scenes),
        "seeds": [seeds[0], seeds[-1]],
        "gt_instances": len(gt["annotations"]),
        "detections": len(dets),
        "settings": seg.settings.to_dict(),
        "weights": seg.model_info(),
        "threads": args.threads,
        "cross_class_iou": getattr(heads, "cross_class_iou", None),
        **{k: round(v, 4) for k, v in figures.items()},
        "count_exact_at_score_0.5": round(sum(d == 0 for d in count_diffs) / len(scenes), 4),
        "count_within_1_at_score_0.5": round(sum(abs(d) <= 1 for d in count_diffs) / len(scenes), 4),
        "seconds_per_image_median": round(statistics.median(times), 4),
        "seconds_per_image_mean": round(statistics.fmean(times), 4),
        "seconds_per_512x384_median": round(statistics.median(t512), 4) if t512 else None,
        "seconds_per_512x384_mean": round(statistics.fmean(t512), 4) if t512 else None,
        "forward_seconds_per_512x384_median": round(statistics.median(f512), 4) if f512 else None,
    }
    s = seg.settings
    print(
        f"blocks model, {len(scenes)} held-out scenes (seeds {seeds[0]}..{seeds[-1]}), "
        f"{report['gt_instances']} objects; proposals {s.proposals}, score >= "
        f"{s.score_threshold}, min/max size {s.min_size}/{s.max_size}, {args.threads} threads, "
        f"cross-class NMS IoU {report['cross_class_iou']}"
    )
    print_ap(figures)
    print(
        f"objects found at score >= 0.5 equal the ground truth in "
        f"{report['count_exact_at_score_0.5']:.1%} of scenes, within +-1 in "
        f"{report['count_within_1_at_score_0.5']:.1%}"
    )
    print(
        f"Segmenter call per image: median {report['seconds_per_image_median']:.3f} s, "
        f"mean {report['seconds_per_image_mean']:.3f} s (benchmark scenes)"
    )
    if t512:
        print(
            f"Segmenter call per 512x384 image: median "
            f"{report['seconds_per_512x384_median']:.3f} s, mean "
            f"{report['seconds_per_512x384_mean']:.3f} s ({len(t512)} images); network forward "
            f"alone (no mask pasting): median {report['forward_seconds_per_512x384_median']:.3f} s"
        )
    write_json(args.json, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
