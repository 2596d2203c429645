"""Benchmark 3: `segcli batch` against a naive torchvision-tutorial loop, equal settings.

    python -m bench.naive [--weights COCO.pth] [--images 3]

Both run as separate processes on the same 12 MP JPEG photos at score threshold 0 with
100 detections per image (a randomly initialised COCO-architecture checkpoint unless
--weights is given), 300 proposals, min/max size 800/1333. Wall time and the peak RSS of
each process are measured. Goals: segcli >= 1.3x faster, <= 0.5x the naive peak RSS.
Note: segcli writes JPEG overlays for JPEG inputs; the tutorial loop saves PNG, as tutorials do.
"""

from __future__ import annotations

import shutil

from bench.common import (
    REPO,
    bench_parser,
    coco_weights,
    machine,
    make_photo,
    python,
    random_coco_options,
    run_measured,
    segcli_batch_measured,
    write_json,
)

SOURCES = ("astronaut.jpg", "coffee.jpg", "rocket.jpg", "chelsea.jpg")


def main() -> None:
    p = bench_parser(__doc__, coco_weights=True)
    p.add_argument("--images", type=int, default=3)
    p.add_argument("--max-detections", type=int, default=100)
    args = p.parse_args()
    weights = coco_weights(args)
    folder = args.work / "naive-12mp"
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(args.images):
        make_photo(folder / f"photo{i}.jpg", (4000, 3000), source=SOURCES[i % len(SOURCES)])
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
        *random_coco_options(weights, args.max_detections),
    )
    results["segcli"] = {"wall_s": round(wall, 2), "peak_rss_mib": round(rss)}
    print(f"segcli  {wall:7.1f} s  peak RSS {rss:7.0f} MiB", flush=True)
    speedup = results["naive"]["wall_s"] / results["segcli"]["wall_s"]
    rss_ratio = results["segcli"]["peak_rss_mib"] / results["naive"]["peak_rss_mib"]
    print(f"{args.images} photos of 12 MP, {args.max_detections} detections each")
    print(
        f"segcli is {speedup:.2f}x faster (goal >= 1.3) and uses {rss_ratio:.2f}x the peak RSS (goal <= 0.5)"
    )
    write_json(
        args.json,
        {"machine": machine(), **results, "speedup": round(speedup, 3), "rss_ratio": round(rss_ratio, 3)},
    )


if __name__ == "__main__":
    main()
