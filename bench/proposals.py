"""Benchmark 4: RPN proposals N in {1000, 300, 100}: time per image and the blocks model's mask AP.

    python -m bench.proposals [--weights COCO.pth] [--scenes 200]

Time: the COCO architecture (maskrcnn_resnet50_fpn; random init unless --weights) on a 640x480
photo, median of --repeats forward passes through Segmenter, at the default score threshold.
Quality: bench/blocks_ap.py (held-out scenes, COCOeval) with the bundled blocks model at the
same N, which also reports the blocks model's own time per image.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from bench.common import (
    REPO,
    bench_parser,
    coco_weights,
    machine,
    make_photo,
    python,
    table_header,
    table_row,
    write_json,
)

NS = (1000, 300, 100)


def coco_time(weights: Path, photo: Path, n: int, repeats: int) -> float:
    from segcli.core.settings import Settings
    from segcli.inference.segmenter import Segmenter
    from segcli.io.images import read_image

    seg = Segmenter("coco", weights=weights, device="cpu", settings=Settings(proposals=n), progress=False)
    pixels = read_image(photo).pixels
    seg([pixels])
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        seg([pixels])
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def main() -> None:
    p = bench_parser(__doc__, coco_weights=True)
    p.add_argument("--scenes", type=int, default=200)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    weights = coco_weights(args)
    photo = make_photo(args.work / "photo-640x480.jpg", (640, 480))
    table_header(
        "N", "coco s/image (640x480)", "blocks mask AP", "AP50", "AP75", "box AP", "blocks s/image (512x384)"
    )
    rows = []
    for n in NS:
        t = coco_time(weights, photo, n, args.repeats)
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "ap.json"
            subprocess.run(
                [
                    python(),
                    str(REPO / "bench" / "blocks_ap.py"),
                    "-n",
                    str(args.scenes),
                    "--proposals",
                    str(n),
                    "--json",
                    str(out),
                ],
                check=True,
                capture_output=True,
            )
            ap = json.loads(out.read_text())
        row = {"proposals": n, "coco_s_per_image": round(t, 3), **ap}
        rows.append(row)
        table_row(
            n,
            f"{t:.2f}",
            *(
                f"{ap[k]:.3f}"
                for k in ("mask_AP", "mask_AP50", "mask_AP75", "box_AP", "seconds_per_512x384_median")
            ),
        )
    write_json(args.json, {"machine": machine(), "rows": rows})


if __name__ == "__main__":
    main()
