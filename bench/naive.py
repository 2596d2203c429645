"""Benchmark 3: `segcli batch` against a naive torchvision-tutorial loop, equal settings.

    python -m bench.naive [--weights COCO.pth] [--images 3]

Both run as separate processes on the same 12 MP JPEG photos at score threshold 0 with
100 detections per image (a randomly initialised COCO-architecture checkpoint unless
--weights is given), 300 proposals, min/max size 800/1333. Wall time and the peak RSS of
each process are measured. Goals: segcli >= 1.3x faster, <= 0.5x the naive peak RSS.
Note: segcli writes JPEG overlays for JPEG inputs; the tutorial loop saves PNG, as tutorials do.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from bench.common import (
    REPO,
    machine,
    make_photo,
    python,
    random_coco_checkpoint,
    run_measured,
    segcli_batch_measured,
)

SOURCES = ("astronaut.jpg", "coffee.jpg", "rocket.jpg", "chelsea.jpg")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--weights", type=Path, default=None)
    p.add_argument("--images", type=int, default=3)
    p.add_argument("--max-detections", type=int, default=100)
    p.add_argument("--work", type=Path, default=Path("bench/out"))
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args()
    weights = args.weights or random_coco_checkpoint(args.work / "coco-random.pt")
    folder = args.work / "naive-12mp"
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(args.images):
        make_photo(folder / f"photo{i}.jpg", (4000, 3000), source=SOURCES[i % len(SOURCES)])
    print(f"machine: {machine()}")
    print(f"weights: {weights}" + ("" if args.weights else " (randomly initialised, score threshold 0)"))
    naive_cmd = [
        python(),
        str(REPO / "bench" / "naive_loop.py"),
        str(folder),
        str(args.work / "naive-out-naive"),
        str(weights),
        "--score-threshold",
        "0",
        "--max-detections",
        str(args.max_detections),
    ]
    shutil.rmtree(args.work / "naive-out-naive", ignore_errors=True)
    wall, rss, code, err = run_measured(naive_cmd)
    if code != 0:
        raise SystemExit(f"naive loop failed ({code}): {err}")
    results = {"naive": {"wall_s": round(wall, 2), "peak_rss_mib": round(rss)}}
    print(f"naive   {wall:7.1f} s  peak RSS {rss:7.0f} MiB", flush=True)
    wall, rss, _ = segcli_batch_measured(
        folder,
        args.work / "naive-out-segcli",
        "--weights",
        str(weights),
        "--model",
        "coco",
        "--score-threshold",
        "0",
        "--max-detections",
        str(args.max_detections),
    )
    results["segcli"] = {"wall_s": round(wall, 2), "peak_rss_mib": round(rss)}
    print(f"segcli  {wall:7.1f} s  peak RSS {rss:7.0f} MiB", flush=True)
    speedup = results["naive"]["wall_s"] / results["segcli"]["wall_s"]
    rss_ratio = results["segcli"]["peak_rss_mib"] / results["naive"]["peak_rss_mib"]
    print(f"{args.images} photos of 12 MP, {args.max_detections} detections each")
    print(
        f"segcli is {speedup:.2f}x faster (goal >= 1.3) and uses {rss_ratio:.2f}x the peak RSS (goal <= 0.5)"
    )
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "machine": machine(),
                    **results,
                    "speedup": round(speedup, 3),
                    "rss_ratio": round(rss_ratio, 3),
                },
                indent=1,
            )
        )


if __name__ == "__main__":
    main()
