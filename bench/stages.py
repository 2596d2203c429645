"""Benchmark 1: where the time goes, stage by stage, for one image.

    python -m bench.stages [--weights COCO.pth] [--repeats 3]

Stages: decode, preprocess (to tensor, normalise, resize), forward (backbone, RPN, ROI heads
with the mask head on kept detections), paste (each mask into its box at full resolution),
RLE, overlay (drawing), write (encode overlay + JSON, atomic write). Run for a ~0.5 MP and a
12 MP photo, at few (5) and at 100 detections. Without --weights a randomly initialised
COCO-architecture checkpoint is used at --score-threshold 0, which yields exactly
--max-detections detections per image (speed is what is measured, not quality).
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.common import (
    SIZES,
    bench_parser,
    coco_weights,
    machine,
    make_photo,
    table_header,
    table_row,
    write_json,
)

if TYPE_CHECKING:
    from segcli.inference.segmenter import Segmenter

STAGES = ("decode", "preprocess", "forward", "paste", "rle", "overlay", "write")


def measure(seg: Segmenter, path: Path, out_dir: Path) -> dict[str, float]:
    import torch

    from segcli.draw.annotators import OverlayAnnotator
    from segcli.inference.forward import detect_preprocessed, preprocess
    from segcli.io.images import atomic_write_bytes, read_image
    from segcli.outputs.records import dumps, instances_record
    from segcli.outputs.writers import encode_image

    times: dict[str, float] = {}

    def tick(name: str, start: float) -> float:
        now = time.perf_counter()
        times[name] = now - start
        return now

    t = time.perf_counter()
    image = read_image(path)
    t = tick("decode", t)
    with torch.inference_mode():
        tensor = seg.to_tensor(image.pixels)
        image_list, sizes = preprocess(seg.module, [tensor])
        t = tick("preprocess", t)
        [raw] = detect_preprocessed(
            seg.module,
            image_list,
            sizes,
            keep_labels=None,
            max_detections=int(seg.settings.max_detections or 0),
        )
        t = tick("forward", t)
        instances = seg.to_instances(raw, image.size)
        t = tick("paste", t)
    record = instances_record(instances, image_path=str(path), model=seg.model_info(), settings={})
    t = tick("rle", t)
    overlay = OverlayAnnotator().annotate(image.pixels, instances)
    t = tick("overlay", t)
    atomic_write_bytes(out_dir / "overlay.jpg", encode_image(overlay, ".jpg"))
    atomic_write_bytes(out_dir / "record.json", dumps(record))
    tick("write", t)
    times["detections"] = float(len(instances))
    return times


def main() -> None:
    from segcli.core.settings import Settings
    from segcli.inference.segmenter import Segmenter

    p = bench_parser(__doc__, coco_weights=True)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    weights = coco_weights(args)
    print(f"median of {args.repeats} runs after one warm-up run; times in ms\n")
    rows: list[dict[str, Any]] = []
    table_header("image", "detections", *STAGES, "total", "forward share")
    with tempfile.TemporaryDirectory() as tmp:
        for name, size in SIZES.items():
            photo = make_photo(args.work / f"photo-{name}.jpg", size)
            for max_det in (5, 100):
                settings = Settings(score_threshold=0.0, max_detections=max_det)
                seg = Segmenter("coco", weights=weights, device="cpu", settings=settings, progress=False)
                measure(seg, photo, Path(tmp))
                runs = [measure(seg, photo, Path(tmp)) for _ in range(args.repeats)]
                med = {k: statistics.median(r[k] for r in runs) for k in (*STAGES, "detections")}
                total = sum(med[k] for k in STAGES)
                row = {"image": name, "size": size, **med, "total": total}
                rows.append(row)
                table_row(
                    f"{name} {size[0]}x{size[1]}",
                    f"{med['detections']:.0f}",
                    *(f"{med[k] * 1000:.0f}" for k in STAGES),
                    f"{total * 1000:.0f}",
                    f"{med['forward'] / total:.0%}",
                )
    write_json(args.json, {"machine": machine(), "rows": rows})


if __name__ == "__main__":
    main()
