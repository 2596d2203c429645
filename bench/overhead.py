"""Benchmark 2: `segcli batch` wall time / the network's own compute on the same images.

    python -m bench.overhead [--weights COCO.pth] [--max-detections 20]

The network's compute is transform + backbone + RPN + ROI heads (mask head included, no
full-frame paste), timed image by image in this process, the first (cold) pass included as in
the batch run. `segcli batch` runs as a separate process on the same folder with the same
settings; its loop time comes from run.json (decode, forward, paste, RLE, overlay and writes,
overlapped), and its whole wall time (Python start-up and model loading included) is reported
beside it. Goal: loop / network
<= 1.05 on photos of at most 1 MP.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from bench.common import (
    PHOTOS,
    bench_parser,
    coco_weights,
    machine,
    make_photo,
    random_coco_options,
    segcli_batch_measured,
    write_json,
)


def build_folder(work: Path) -> Path:
    folder = work / "overhead-photos"
    folder.mkdir(parents=True, exist_ok=True)
    for photo in sorted(PHOTOS.glob("*.jpg")):
        shutil.copy(photo, folder / photo.name)  # 0.14-0.27 MP
        make_photo(folder / f"{photo.stem}-1mp.jpg", (1152, 864), source=photo.name)  # 1.0 MP
    return folder


def network_seconds(weights: Path, folder: Path, max_det: int) -> tuple[float, int]:
    import torch

    from segcli.core.settings import Settings
    from segcli.inference.forward import detect_preprocessed, preprocess
    from segcli.inference.segmenter import Segmenter
    from segcli.io.images import read_image

    seg = Segmenter(
        "coco",
        weights=weights,
        device="cpu",
        progress=False,
        settings=Settings(score_threshold=0.0, max_detections=max_det),
    )
    images = [read_image(p).pixels for p in sorted(folder.glob("*.jpg"))]
    total = 0.0
    with torch.inference_mode():
        # No warm-up: the batch run below pays for its first (cold) forward pass too.
        for pixels in images:
            start = time.perf_counter()
            image_list, sizes = preprocess(seg.module, [seg.to_tensor(pixels)])
            detect_preprocessed(seg.module, image_list, sizes, keep_labels=None, max_detections=max_det)
            total += time.perf_counter() - start
    return total, len(images)


def main() -> None:
    p = bench_parser(__doc__, coco_weights=True)
    p.add_argument("--max-detections", type=int, default=20)
    args = p.parse_args()
    weights = coco_weights(args)
    folder = build_folder(args.work)
    net, n = network_seconds(weights, folder, args.max_detections)
    wall, rss, run = segcli_batch_measured(
        folder,
        args.work / "overhead-segcli-out",
        *random_coco_options(weights, args.max_detections),
    )
    loop = run["seconds"]
    result = {
        "machine": machine(),
        "images": n,
        "max_detections": args.max_detections,
        "network_s": round(net, 3),
        "batch_loop_s": loop,
        "batch_wall_s": round(wall, 3),
        "loop_over_network": round(loop / net, 3),
        "wall_over_network": round(wall / net, 3),
        "batch_peak_rss_mib": round(rss),
        "instances": run["counts"]["instances"],
    }
    print(f"{n} photos (0.14-1.0 MP), {args.max_detections} detections each")
    print(f"network compute (transform+backbone+RPN+ROI heads): {net:.2f} s = {net / n:.2f} s/image")
    print(f"segcli batch loop (run.json):  {loop:.2f} s  -> ratio {loop / net:.3f}  (goal <= 1.05)")
    print(
        f"segcli batch whole process: {wall:.2f} s -> ratio {wall / net:.3f} (start-up, model load included)"
    )
    write_json(args.json, result)


if __name__ == "__main__":
    main()
