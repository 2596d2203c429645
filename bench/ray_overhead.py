"""Benchmark: the Ray engine against the local engine on one machine, and the driver's cost.

    PYTHONPATH=. python -m bench.ray_overhead [--reps 2] [--scenes 50] [--coco-max-size 800]
                                              [--driver-images 3000] [--json out.json]

1. Wall time at equal cores. One local Ray instance with all of this machine's CPUs is
   started once in this process (its start-up is reported apart: a cluster is started once,
   not per batch). Then, interleaved ``--reps`` times, ``segcli batch`` as a fresh process:
   the local engine; ``--engine ray`` with 1 worker x all CPUs; with N workers x 1 CPU (both
   connecting to that instance). Datasets: ``--scenes`` blocks scenes (bundled blocks model,
   its default size) and 6 photos (the 4 bundled ones + 2 resized to 0.5 MP) with the COCO
   architecture on random weights at ``--coco-max-size`` (min size in the default 800:1333
   proportion), overlays and JSON written. Reported: the process's wall time (Python
   start-up, imports, model load(s), for Ray the connection, the actors' start-up and their
   model loads included) and the loop time of ``run.json`` (for Ray, the actors' start-up
   included; for local, the model is loaded before the loop). Goal: Ray <= 1.15x local.
2. Driver cost. A no-op segmenter (empty results, no model) on ``--driver-images`` tiny
   PNGs, JSON only: the driver process's CPU time (all its threads, Ray's core worker and
   Ray Data's executor included) from the first result to the last, divided by the images
   in between, is its cost per image; 1000 / that is the images per second one driver can
   coordinate. Goal >= 500 img/s. The whole run's CPU time (start-up included) is printed too.

State the machine load (printed) beside any ratio: this machine may be shared.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from bench.common import (
    PHOTOS,
    REPO,
    machine,
    make_photo,
    random_coco_checkpoint,
    segcli_batch_measured,
    write_json,
)
from segcli.core.instances import Instances
from segcli.core.settings import Settings
from segcli.runs.batch import BatchEvents, BatchOptions, run_batch
from segcli.runs.engines.base import ItemResult, SegmenterLike


# --------------------------------------------------------------------------- data
def blocks_scenes(folder: Path, n: int) -> Path:
    from segcli.models.blocks.scenes import render_scene

    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        path = folder / f"scene{i:03d}.png"
        if not path.is_file():
            image = render_scene(900_000 + i, size=(512, 384)).image
            cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    return folder


def six_photos(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for photo in sorted(PHOTOS.glob("*.jpg")):
        shutil.copy(photo, folder / photo.name)
    make_photo(folder / "astronaut-0.5mp.jpg", (816, 612), source="astronaut.jpg")
    make_photo(folder / "coffee-0.5mp.jpg", (816, 612), source="coffee.jpg")
    return folder


def tiny_pngs(folder: Path, n: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    pixels = np.full((8, 8, 3), 128, np.uint8)
    for i in range(n):
        path = folder / f"{i:05d}.png"
        if not path.is_file():
            cv2.imwrite(str(path), pixels)
    return folder


# --------------------------------------------------------------------------- no-op model
@dataclass(frozen=True)
class NoopSpec:
    """Builds :class:`NoopSegmenter` in a worker (picklable, importable as bench.ray_overhead)."""

    def build(self, *, progress: bool = False) -> SegmenterLike:
        return NoopSegmenter()


class NoopSegmenter:
    """No model: every image gets zero instances, at no cost."""

    settings = Settings(score_threshold=0.5)
    categories = ("__background__", "thing")

    def model_info(self) -> dict[str, Any]:
        return {"name": "noop", "architecture": "none", "weights": "none", "sha256": "0" * 64}

    def __call__(self, images: Sequence[np.ndarray]) -> list[Instances]:
        empty = np.zeros((0, 4))
        return [Instances(im.shape[:2], empty, [], [], (), (), empty) for im in images]


# --------------------------------------------------------------------------- measuring
def cpu_seconds() -> float:
    """CPU time of this process so far, all threads (user + system)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class Clock(BatchEvents):
    """Wall time of every result, and this process's CPU time at the first and the last."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self.cpu: list[float] = []
        self.start = time.perf_counter()

    def result(self, result: ItemResult) -> None:
        if result.status == "failed":
            raise SystemExit(f"benchmark input failed: {result.reason}")
        self.times.append(time.perf_counter())
        if len(self.cpu) < 2:
            self.cpu.append(cpu_seconds())
        else:
            self.cpu[1] = cpu_seconds()


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f} on {os.cpu_count()} cores"


def wall_times(args: argparse.Namespace, address: str, cpus: int) -> dict[str, Any]:
    weights = random_coco_checkpoint(args.work / "coco-random.pt")
    coco_min = min(800, round(args.coco_max_size * 800 / 1333))
    datasets = {
        "blocks_scenes": (blocks_scenes(args.work / "ray-scenes", args.scenes), ["--model", "blocks"]),
        "coco_photos": (
            six_photos(args.work / "ray-photos"),
            [
                *("--model", "coco", "--weights", str(weights), "--score-threshold", "0"),
                *(
                    "--max-detections",
                    "20",
                    "--min-size",
                    str(coco_min),
                    "--max-size",
                    str(args.coco_max_size),
                ),
            ],
        ),
    }
    ray = ["--engine", "ray", "--ray-address", address]
    configs = {
        "local": [],
        f"ray 1 worker x {cpus} CPUs": [*ray, "--workers", "1", "--cpus-per-worker", str(cpus)],
        f"ray {cpus} workers x 1 CPU": [*ray, "--workers", str(cpus), "--cpus-per-worker", "1"],
    }
    results: dict[str, Any] = {}
    for name, (folder, model) in datasets.items():
        runs: dict[str, list[dict[str, Any]]] = {c: [] for c in configs}
        for rep in range(args.reps):
            for config, options in configs.items():
                before = load()
                wall, rss, run = segcli_batch_measured(folder, args.work / "ray-out", *model, *options)
                got = {
                    "wall_s": round(wall, 2),
                    "loop_s": run["seconds"],
                    "peak_rss_mib": round(rss),
                    "load": before,
                }
                runs[config].append(got)
                print(f"  {name} rep {rep + 1} {config:24s} {got}", flush=True)
        summary: dict[str, dict[str, float]] = {}
        for config, reps in runs.items():
            summary[config] = {key: statistics.median(r[key] for r in reps) for key in ("wall_s", "loop_s")}
        base = summary["local"]
        for s in summary.values():
            s["wall_over_local"] = round(s["wall_s"] / base["wall_s"], 3)
            s["loop_over_local"] = round(s["loop_s"] / base["loop_s"], 3)
        n_images = len(list(folder.iterdir()))
        results[name] = {"images": n_images, "median_of": args.reps, "configs": summary, "runs": runs}
        print(f"{name} ({n_images} images), medians of {args.reps}:")
        for config, s in summary.items():
            print(
                f"  {config:24s} wall {s['wall_s']:7.2f} s ({s['wall_over_local']:.2f}x local)  "
                f"loop {s['loop_s']:7.2f} s ({s['loop_over_local']:.2f}x local)",
                flush=True,
            )
    return results


def driver_cost(args: argparse.Namespace, cpus: int) -> dict[str, Any]:
    from segcli.runs.engines.ray import RayEngine

    folder = tiny_pngs(args.work / "ray-tiny", args.driver_images)
    out = args.work / "ray-tiny-out"
    result: dict[str, Any] = {"images": args.driver_images}
    for rows in (None, 8):
        shutil.rmtree(out, ignore_errors=True)
        clock = Clock()
        before = cpu_seconds()
        outcome = run_batch(
            folder,
            out,
            NoopSegmenter,
            options=BatchOptions(save=("json",)),
            engine=lambda seg, rows=rows: RayEngine(NoopSpec(), workers=cpus, rows_per_task=rows),
            events=clock,
        )
        total_cpu = cpu_seconds() - before
        n = outcome.summary["counts"]["done"]
        steady_cpu = clock.cpu[1] - clock.cpu[0]
        ms = 1000 * steady_cpu / (n - 1)
        steady = (clock.times[-1] - clock.times[0]) / (n - 1)
        label = f"rows_per_task={outcome.summary['engine']['rows_per_task']}"
        result[label] = {
            "driver_cpu_s_whole_run": round(total_cpu, 2),
            "driver_cpu_s_first_to_last_result": round(steady_cpu, 2),
            "driver_ms_per_image": round(ms, 3),
            "driver_capacity_img_per_s": round(1000 / ms),
            "observed_img_per_s": round(1 / steady, 1),
            "loop_s": outcome.summary["seconds"],
            "load": load(),
        }
        print(
            f"driver, no-op model, {n} images, {label}: {steady_cpu:.2f} CPU s from the first result "
            f"to the last = {ms:.3f} ms/image -> one driver can coordinate ~{1000 / ms:.0f} img/s "
            f"(whole run incl. start-up {total_cpu:.2f} CPU s; observed {1 / steady:.0f} img/s with "
            f"{cpus} workers here; {load()})",
            flush=True,
        )
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--reps", type=int, default=2)
    p.add_argument("--scenes", type=int, default=50)
    p.add_argument("--coco-max-size", type=int, default=800, help="COCO model input long side cap")
    p.add_argument("--driver-images", type=int, default=3000)
    p.add_argument("--skip-wall", action="store_true", help="only the driver cost")
    p.add_argument("--work", type=Path, default=Path("bench/out"))
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args()

    import ray

    cpus = os.cpu_count() or 2
    print(f"machine: {machine()}")
    print(f"before: {load()}")
    start = time.perf_counter()
    ray.init(
        num_cpus=cpus,
        include_dashboard=False,
        log_to_driver=False,
        logging_level="ERROR",
        runtime_env={"env_vars": {"PYTHONPATH": str(REPO)}},
    )
    started = time.perf_counter() - start
    print(f"local Ray instance ({cpus} CPUs) started in {started:.1f} s (paid once per cluster)")
    result: dict[str, Any] = {"machine": machine(), "ray_start_s": round(started, 2), "cpus": cpus}
    try:
        if not args.skip_wall:
            address = ray.get_runtime_context().gcs_address
            result["wall"] = wall_times(args, address, cpus)
        result["driver"] = driver_cost(args, cpus)
    finally:
        ray.shutdown()
    write_json(args.json, result)


if __name__ == "__main__":
    main()
