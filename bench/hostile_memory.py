"""Peak memory of one input whatever its shape, bit depth or declared size (issue 10 item 11).

Each case runs in a fresh process: load the model, segment a normal 512x384 image (the
model's own peak), then read, segment and write (overlay + JSON) the case's file; report
peak RSS above the model's own. Writes the case files under --work.

    python bench/hostile_memory.py --model coco --weights random --work /tmp/hm
"""

from __future__ import annotations

import argparse
import io
import json
import resource
import struct
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image


def make_cases(work: Path) -> dict[str, list[Path]]:
    work.mkdir(parents=True, exist_ok=True)
    files = {
        "thin-1x60000.png": lambda p: Image.fromarray(np.full((1, 60000, 3), 128, np.uint8)).save(p),
        "thin-1x100000.png": lambda p: Image.fromarray(np.full((1, 100000, 3), 128, np.uint8)).save(p),
        "normal-512x384.png": lambda p: Image.fromarray(
            np.random.default_rng(0).integers(0, 256, (384, 512, 3), dtype=np.uint8)
        ).save(p),
        "bits-12000x12000.png": lambda p: Image.new("1", (12000, 12000), 0).save(p, optimize=True),
    }
    for name, make in files.items():
        if not (work / name).exists():
            make(work / name)
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(buf, "JPEG")
    data = bytearray(buf.getvalue())
    at = data.index(b"\xff\xc0")
    struct.pack_into(">HH", data, at + 5, 12000, 12000)
    (work / "forged-12000x12000.jpg").write_bytes(bytes(data))
    six = []
    for i in range(6):
        path = work / f"six/bits-{i}.png"
        path.parent.mkdir(exist_ok=True)
        if not path.exists():
            Image.new("1", (12000, 12000), 0).save(path, optimize=True)
        six.append(path)
    return {
        "1x60000 PNG": [work / "thin-1x60000.png"],
        "1x100000 PNG": [work / "thin-1x100000.png"],
        "512x384, --min-size 1 --max-size 1": [work / "normal-512x384.png"],
        "1-bit 12000x12000 PNG (17 KB)": [work / "bits-12000x12000.png"],
        "six of them, --batch-size 6": six,
        "forged 12000x12000 JPEG header (4 KB)": [work / "forged-12000x12000.jpg"],
    }


def child(args: argparse.Namespace) -> None:
    from segcli.core.settings import Settings
    from segcli.inference.segmenter import Segmenter
    from segcli.io.images import read_image
    from segcli.outputs.plans import plan_outputs
    from segcli.runs.engines.base import Job
    from segcli.runs.engines.local import LocalEngine

    settings = Settings(min_size=1, max_size=1) if "--min-size 1" in args.case else Settings()
    seg = Segmenter(args.model, weights=args.weights, device="cpu", settings=Settings())
    seg([read_image(Path(args.work) / "normal-512x384.png").pixels])
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    if settings != Settings():
        seg = Segmenter(args.model, weights=args.weights, device="cpu", settings=settings)
    files = [Path(f) for f in args.files]
    plans = plan_outputs(files, Path(args.work) / "out")
    results = []
    start = time.perf_counter()
    job = Job.for_segmenter(seg, ("overlay", "json"), batch_size=len(files))
    LocalEngine(seg).run(plans, job, lambda r: results.append(f"{r.status}: {r.reason or r.summary}"))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    seconds = time.perf_counter() - start
    print(json.dumps({"base_gb": base, "peak_gb": peak, "seconds": seconds, "results": results}))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="coco")
    ap.add_argument("--weights", default=None, help="checkpoint; 'random' makes a random COCO one")
    ap.add_argument("--work", default="/tmp/segcli-hostile-memory")
    ap.add_argument("--case")
    ap.add_argument("--files", nargs="*")
    ap.add_argument("--limit-gb", type=float, default=8.0, help="address-space cap of each case")
    args = ap.parse_args()
    if args.case:
        child(args)
        return
    work = Path(args.work)
    cases = make_cases(work)
    if args.weights == "random":
        import torch
        from torchvision.models.detection import maskrcnn_resnet50_fpn

        args.weights = str(work / "coco-random.pt")
        if not Path(args.weights).exists():
            torch.manual_seed(0)
            model = maskrcnn_resnet50_fpn(weights=None, weights_backbone=None, num_classes=91)
            torch.save({"model": model.state_dict()}, args.weights)
    print("| input | peak RSS above the model's own | time | result |")
    print("|---|---|---|---|")
    for name, files in cases.items():
        cmd = [sys.executable, __file__, "--model", args.model, "--work", str(work), "--case", name]
        cmd += ["--weights", args.weights] if args.weights else []
        cmd += ["--files", *map(str, files)]
        limit = int(args.limit_gb * 2**30)

        def cap(limit: int = limit) -> None:
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

        proc = subprocess.run(cmd, capture_output=True, text=True, preexec_fn=cap)
        if proc.returncode:
            last = (proc.stderr.strip().splitlines() or ["?"])[-1]
            print(f"| {name} | over the {args.limit_gb:g} GB cap | - | crashed: {last[:90]} |")
            continue
        out = json.loads(proc.stdout.strip().splitlines()[-1])
        results = "; ".join(sorted(set(r[:80] for r in out["results"])))
        print(f"| {name} | {out['peak_gb'] - out['base_gb']:.2f} GB | {out['seconds']:.1f} s | {results} |")


if __name__ == "__main__":
    main()
