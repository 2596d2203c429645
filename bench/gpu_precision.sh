#!/usr/bin/env bash
# img/s of the COCO architecture at the default 800 px on one CUDA GPU:
# --precision fp32 / bf16 / fp16  x  --batch-size 1 / 4 / 8.
#
#   bash bench/gpu_precision.sh                 # from the repo root; writes bench/out/gpu-precision.json
#   IMAGES=64 bash bench/gpu_precision.sh       # images timed per cell (default 32)
#
# Random COCO-architecture weights (no download needed), the bundled example photo cropped
# to 768x576 (resized by the model to 800x1066), --score-threshold 0 so every image keeps
# --max-detections (100) detections and the mask head runs on all of them. Each cell runs
# the Segmenter (preprocess, staged forward, mask pasting) on IMAGES images after a warm-up
# of 2 batches, with torch.cuda.synchronize() around the timed region. A mode the GPU has
# no native support for (bf16 before Ampere) is printed as such and skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
PY="${PYTHON:-python}"
IMAGES="${IMAGES:-32}" "$PY" - <<'EOF'
import json
import os
import time

import torch

from bench.common import REPO, machine, make_photo, random_coco_checkpoint
from segcli.core.errors import SegcliError
from segcli.io.images import read_image
from segcli.models.precision import resolve_precision
from segcli.inference.segmenter import Segmenter
from segcli.core.settings import Settings

if not torch.cuda.is_available():
    raise SystemExit("no CUDA device: this benchmark needs a GPU")
out_dir = REPO / "bench" / "out"
ckpt = random_coco_checkpoint(out_dir / "coco-random.pt")
image = read_image(make_photo(out_dir / "photo-768x576.jpg", (768, 576))).pixels
n = int(os.environ["IMAGES"])
print(machine())
rows = []
for precision in ("fp32", "bf16", "fp16"):
    try:
        resolve_precision(precision, torch.device("cuda"))
    except SegcliError as exc:
        print(f"{precision}: not run ({exc})")
        rows.append({"precision": precision, "skipped": str(exc)})
        continue
    seg = Segmenter(
        "coco",
        weights=ckpt,
        device="cuda",
        settings=Settings(score_threshold=0.0),
        precision=precision,
        progress=False,
    )
    for batch in (1, 4, 8):
        images = [image] * batch
        for _ in range(2):
            seg(images)
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        done = 0
        while done < n:
            seg(images)
            done += batch
        torch.cuda.synchronize()
        seconds = time.perf_counter() - t0
        rate = done / seconds
        print(f"{precision} batch {batch}: {rate:.2f} img/s ({done} images, {seconds:.2f} s)", flush=True)
        rows.append({"precision": precision, "batch_size": batch, "images": done, "img_per_s": round(rate, 3)})
    del seg
    torch.cuda.empty_cache()
(out_dir / "gpu-precision.json").write_text(json.dumps({"machine": machine(), "rows": rows}, indent=2) + "\n")
EOF
