"""Whole `segcli batch` in each --precision, same images, runs interleaved (A B A B ...).

    python -m bench.precision_batch                         # COCO architecture + blocks, fp32 vs bf16
    python -m bench.precision_batch --model coco --pairs 3 --threads 1 --json bench/out/precision-batch.json

COCO architecture: a randomly initialised ``maskrcnn_resnet50_fpn`` checkpoint (``--weights``;
no download), the four example photos (``examples/photos``, 0.1-0.3 MP, resized by the model
to 800 px on the short side, the default), default settings except ``--score-threshold``
(default here 0, so the mask head runs on ``--max-detections`` detections per image as
real weights on a busy photo would; random weights pass few detections at 0.5).
Blocks model: 20 held-out scenes at 512x384, default settings.

Each run is a fresh ``segcli batch FOLDER -o OUT --device cpu --precision P --quiet``
process (start-up, model load and writing included). The processes of the modes
alternate, so that a neighbour's load hits both alike; reported per mode: the median
wall seconds, the median CPU seconds of the process (user + system, from ``wait4``), and
the median seconds of the batch loop itself (``run.json``: decoding, forward, pasting, writing;
no start-up or model load) and the ratios to fp32. ``--threads N`` sets OMP_NUM_THREADS for
every run (default: unset, torch's default). ``--copies K`` puts K copies of each photo in the
COCO folder (more images amortise start-up and model load, as a real folder does).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import cv2

from bench.common import PHOTOS, REPO, machine, random_coco_checkpoint, write_json

OUT = REPO / "bench" / "out"


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load {one:.1f}/{five:.1f}/{fifteen:.1f}"


def run_batch(
    folder: Path, out: Path, options: list[str], env: dict[str, str]
) -> tuple[float, float, dict[str, Any]]:
    """(wall s, CPU s of the process, run.json) of one ``segcli batch`` process."""
    shutil.rmtree(out, ignore_errors=True)
    cmd = [sys.executable, "-m", "segcli", "batch", str(folder), "-o", str(out), "--device", "cpu"]
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [*cmd, *options, "--quiet"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env
    )
    assert proc.stderr is not None
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise SystemExit(
            f"segcli batch {' '.join(options)} failed ({code}): {err.decode(errors='replace')[-800:]}"
        )
    return wall, usage.ru_utime + usage.ru_stime, json.loads((out / "run.json").read_text())


def compare(
    label: str,
    tag: str,
    folder: Path,
    options: list[str],
    precisions: list[str],
    pairs: int,
    env: dict[str, str],
) -> dict[str, object]:
    print(f"\n== {label}: {len(list(folder.iterdir()))} images; {load()}", flush=True)
    wall: dict[str, list[float]] = {p: [] for p in precisions}
    cpu: dict[str, list[float]] = {p: [] for p in precisions}
    loop: dict[str, list[float]] = {p: [] for p in precisions}
    instances: dict[str, int] = {}
    for r in range(pairs):
        for p in precisions:
            w, c, run = run_batch(
                folder, OUT / f"precision-batch-{tag}-{p}", [*options, "--precision", p], env
            )
            wall[p].append(w)
            cpu[p].append(c)
            loop[p].append(float(run["seconds"]))
            instances[p] = int(run["counts"]["instances"])
            assert run["settings"].get("precision") == p, run["settings"]
            print(
                f"  round {r + 1} {p}: {w:.1f} s wall ({run['seconds']:.1f} s in the batch loop), "
                f"{c:.1f} CPU s; {load()}",
                flush=True,
            )
    base_w, base_c = statistics.median(wall["fp32"]), statistics.median(cpu["fp32"])
    base_l = statistics.median(loop["fp32"])
    rows = {}
    for p in precisions:
        w, c, lp = statistics.median(wall[p]), statistics.median(cpu[p]), statistics.median(loop[p])
        rows[p] = {
            "wall_s": [round(v, 2) for v in wall[p]],
            "cpu_s": [round(v, 2) for v in cpu[p]],
            "wall_median": round(w, 2),
            "cpu_median": round(c, 2),
            "speedup_wall": round(base_w / w, 3),
            "speedup_cpu": round(base_c / c, 3),
            "loop_s": [round(v, 2) for v in loop[p]],
            "loop_median": round(lp, 2),
            "speedup_loop": round(base_l / lp, 3),
            "instances": instances[p],
        }
        print(
            f"{p:5s} wall {w:7.1f} s ({base_w / w:.2f}x)   CPU {c:7.1f} s ({base_c / c:.2f}x)   "
            f"batch loop {lp:7.1f} s ({base_l / lp:.2f}x)   "
            f"{instances[p]} instances",
            flush=True,
        )
    return {"label": label, "options": options, "modes": rows}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", choices=("coco", "blocks", "both"), default="both")
    p.add_argument("--precisions", default="fp32,bf16")
    p.add_argument("--pairs", type=int, default=2, help="rounds of A B")
    p.add_argument("--threads", type=int, default=None, help="OMP_NUM_THREADS for every run")
    p.add_argument("--score-threshold", default="0", help="COCO runs only")
    p.add_argument("--copies", type=int, default=1, help="copies of each example photo (COCO runs)")
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)
    precisions = [x.strip() for x in args.precisions.split(",")]
    if precisions[0] != "fp32":
        precisions.insert(0, "fp32")
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    if args.threads:
        env["OMP_NUM_THREADS"] = str(args.threads)
    print(f"{machine()}; OMP_NUM_THREADS={env.get('OMP_NUM_THREADS', 'unset')}; {load()}")
    results = []
    if args.model in ("coco", "both"):
        ckpt = random_coco_checkpoint(OUT / "coco-random.pt")
        folder = OUT / "precision-photos"
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        for k in range(args.copies):
            for photo in sorted(PHOTOS.glob("*.jpg")):
                shutil.copy(photo, folder / f"{photo.stem}-{k}{photo.suffix}")
        options = ["--weights", str(ckpt), "--score-threshold", args.score_threshold]
        label = (
            f"COCO architecture, random weights, 800 px, score >= {args.score_threshold}, "
            f"{args.copies} cop{'y' if args.copies == 1 else 'ies'} of the 4 example photos"
        )
        results.append(compare(label, "coco", folder, options, precisions, args.pairs, env))
    if args.model in ("blocks", "both"):
        from segcli.models.blocks.scenes import HELDOUT_SEED_BASE, render_scene

        folder = OUT / "precision-blocks"
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        for i in range(20):
            scene = render_scene(HELDOUT_SEED_BASE + 700_000 + i, size=(512, 384))
            cv2.imwrite(str(folder / f"scene{i:03d}.png"), cv2.cvtColor(scene.image, cv2.COLOR_RGB2BGR))
        results.append(
            compare(
                "blocks model, 20 scenes at 512x384",
                folder,
                ["--model", "blocks"],
                precisions,
                args.pairs,
                env,
            )
        )
    print(f"\nfinished, {load()}")
    write_json(args.json, {"machine": machine(), "results": results})
    return 0


if __name__ == "__main__":
    sys.exit(main())
