"""Benchmark: `segcli batch` against the bare network, idle and beside a CPU-bound process.

    python -m bench.busy [--weights COCO.pth] [--rounds 2] [--max-detections 20]

Both sides are whole processes on the same 6 photos with the same network (the COCO
architecture; a random checkpoint by default, score threshold 0, --max-detections 20): the
network floor is a process that loads the model and runs transform + backbone + RPN + ROI
heads image by image (no decode, paste or writes), ``segcli batch`` the whole command. Each
round runs, interleaved: idle and with one CPU-bound process beside it (a busy loop), each
with segcli's OpenMP policy (PASSIVE unless set) and with OMP_WAIT_POLICY=ACTIVE (what torch
did before). Goal: batch / floor <= 1.05 idle and <= 1.10 busy, in the same run. Prints the
load average first: figures taken with anything else running say nothing.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from bench.common import (
    PHOTOS,
    bench_parser,
    coco_weights,
    machine,
    random_coco_options,
    run_measured,
    write_json,
)

FLOOR = """
import sys, time
from pathlib import Path
import torch
from segcli.core.settings import Settings
from segcli.inference.forward import detect_preprocessed, preprocess
from segcli.inference.segmenter import Segmenter
from segcli.io.images import read_image
weights, folder, max_det = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
seg = Segmenter("coco", weights=weights, device="cpu", progress=False,
                settings=Settings(score_threshold=0.0, max_detections=max_det))
images = [read_image(p).pixels for p in sorted(folder.glob("*.jpg"))]
with torch.inference_mode():
    for pixels in images:
        image_list, sizes = preprocess(seg.module, [seg.to_tensor(pixels)])
        detect_preprocessed(seg.module, image_list, sizes, keep_labels=None, max_detections=max_det)
"""


def build_folder(work: Path) -> Path:
    import shutil

    folder = work / "busy-photos"
    folder.mkdir(parents=True, exist_ok=True)
    photos = sorted(PHOTOS.glob("*.jpg"))
    for i in range(6):
        shutil.copy(photos[i % len(photos)], folder / f"{i}-{photos[i % len(photos)].name}")
    return folder


def hog() -> subprocess.Popen[bytes]:
    """One CPU-bound process (a busy loop), as a user's other work on the machine."""
    return subprocess.Popen([sys.executable, "-c", "while True: pass"])


def main() -> None:
    p = bench_parser(__doc__, coco_weights=True)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--max-detections", type=int, default=20)
    args = p.parse_args()
    print(f"load average before: {os.getloadavg()[0]:.2f} (rerun when above 1)")
    weights = coco_weights(args)
    folder = build_folder(args.work)
    floor_cmd = [sys.executable, "-c", FLOOR, str(weights), str(folder), str(args.max_detections)]
    batch_cmd = [
        sys.executable, "-m", "segcli", "batch", str(folder), "-o", str(args.work / "busy-out"),
        "--device", "cpu", "--overwrite", "--quiet", *random_coco_options(weights, args.max_detections),
    ]  # fmt: skip
    results: dict[str, dict[str, list[float]]] = {}
    for _ in range(args.rounds):
        for busy in (False, True):
            for policy in ("segcli", "ACTIVE"):
                env = dict(os.environ)
                env.pop("OMP_WAIT_POLICY", None)
                if policy == "ACTIVE":
                    env["OMP_WAIT_POLICY"] = "ACTIVE"
                key = f"{'busy' if busy else 'idle'}, OpenMP {policy}"
                other = hog() if busy else None
                try:
                    time.sleep(0.5 if busy else 0.0)
                    floor, _, code, err = run_measured(floor_cmd, env=env)
                    assert code == 0, err
                    batch, _, code, err = run_measured(batch_cmd, env=env)
                    assert code == 0, err
                finally:
                    if other is not None:
                        other.kill()
                        other.wait()
                entry = results.setdefault(key, {"floor_s": [], "batch_s": []})
                entry["floor_s"].append(round(floor, 2))
                entry["batch_s"].append(round(batch, 2))
    report = {"machine": machine(), "photos": 6, "rounds": args.rounds, "results": {}}
    print(f"{'condition':28} {'floor s':>16} {'batch s':>16} {'batch/floor':>12}")
    for key, entry in results.items():
        ratio = sum(entry["batch_s"]) / sum(entry["floor_s"])
        report["results"][key] = {**entry, "ratio": round(ratio, 3)}
        print(f"{key:28} {entry['floor_s']!s:>16} {entry['batch_s']!s:>16} {ratio:12.3f}")
    print("goal: batch/floor <= 1.05 idle, <= 1.10 busy (segcli's policy)")
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    write_json(args.json, report)


if __name__ == "__main__":
    main()
