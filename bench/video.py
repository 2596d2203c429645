"""Video throughput: a clip through `segment_video` vs the same frames as PNG images through
the batch pipeline (run_plans, local engine), the COCO architecture at 720p on the CPU, and
memory over a long clip.

    python -m bench.video [--frames 48] [--rounds 3] [--coco-frames 4] [--flat-frames 1500]

1. Blocks, 512x384: a clip of moving blocks (H.264, near-lossless) and the same frames
   as PNG files. One Segmenter (``--model blocks``, default settings and outputs: overlay
   + JSON) runs both, interleaved A/B/A/B over ``--rounds`` rounds so that machine load
   hits both alike; reported: frames/s of each, the median of the rounds' video / images
   ratios (goal >= 0.95), and CPU seconds per item (work done, less sensitive to load).
2. COCO architecture (``maskrcnn_resnet50_fpn`` with random weights: the real network's
   cost, meaningless masks; score threshold 0 and 20 detections so every frame carries
   instances to track, draw and encode) on a 1280x720 clip, fp32 on the CPU (the only
   CPU precision segcli ships), default input size (800 / 1333).
3. Flat memory: a long 1920x1080 clip through the pipeline with a stand-in segmenter
   (one instance per frame; the model's own memory is not the question); memory is
   sampled (resident now, not the peak) before, at 10/30/50/70/90 % of the frames and after.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from bench.common import machine, random_coco_checkpoint, write_json


def _rss_mib() -> float:
    """Resident memory now (not the peak), MiB."""
    try:
        return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _load() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "unknown"


def write_blocks_clip(work: Path, frames: int) -> tuple[Path, Path]:
    """The clip and a folder of the same frames as PNG (as decoded from the clip, so both
    paths see identical pixels)."""
    from segcli.io.video import VideoWriter, read_frames
    from segcli.models.blocks.motion import moving_blocks

    clip = work / "blocks-512x384.mp4"
    writer = VideoWriter(clip, width=512, height=384, fps=25, crf=10)
    for f in moving_blocks(11, frames, size=(512, 384), count=5, speed=6.0):
        writer.write(f.image, f.index / 25)
    writer.commit()
    folder = work / "blocks-512x384-png"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    for f in read_frames(clip):
        cv2.imwrite(str(folder / f"frame{f.index:05d}.png"), cv2.cvtColor(f.pixels, cv2.COLOR_RGB2BGR))
    return clip, folder


def run_images(seg: Any, folder: Path, out: Path) -> tuple[float, int, float]:
    from segcli.outputs.plans import DEFAULT_SAVE, plan_outputs
    from segcli.runs.batch import run_plans
    from segcli.runs.engines.base import Job
    from segcli.runs.engines.local import LocalEngine

    shutil.rmtree(out, ignore_errors=True)
    plans = plan_outputs(sorted(folder.glob("*.png")), out, root=folder)
    cpu = time.process_time()
    report = run_plans(plans, Job.for_segmenter(seg, DEFAULT_SAVE), LocalEngine(seg), overwrite=True)
    cpu = time.process_time() - cpu
    assert report.count("done") == len(plans), report.failed
    return report.seconds, len(plans), cpu


def run_video(seg: Any, clip: Path, out: Path, **options: Any) -> tuple[float, int, dict[str, Any], float]:
    from segcli.outputs.plans import DEFAULT_SAVE
    from segcli.runs.video import VideoOptions, segment_video, video_output_paths

    shutil.rmtree(out, ignore_errors=True)
    start, cpu = time.perf_counter(), time.process_time()
    result = segment_video(
        seg, clip, video_output_paths(out / clip.name, DEFAULT_SAVE), options=VideoOptions(**options)
    )
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    assert result.status == "done", result.reason
    assert result.summary is not None
    return seconds, result.processed, result.summary, cpu


def bench_blocks(work: Path, frames: int, rounds: int) -> dict[str, Any]:
    from segcli.inference.segmenter import Segmenter

    clip, folder = write_blocks_clip(work, frames)
    seg = Segmenter("blocks", device="cpu", progress=False)
    run_images(seg, folder, work / "warm")  # warm-up (first forward passes, caches)
    video_fps: list[float] = []
    image_fps: list[float] = []
    video_cpu: list[float] = []
    image_cpu: list[float] = []
    for r in range(rounds):
        order = ("video", "images") if r % 2 == 0 else ("images", "video")
        for kind in order:
            if kind == "video":
                s, n, _, cpu = run_video(seg, clip, work / "video-out")
                video_fps.append(n / s)
                video_cpu.append(cpu / n)
            else:
                s, n, cpu = run_images(seg, folder, work / "images-out")
                image_fps.append(n / s)
                image_cpu.append(cpu / n)
        print(
            f"  round {r + 1}: video {video_fps[-1]:.2f} frames/s ({video_cpu[-1]:.3f} CPU s/frame), "
            f"images {image_fps[-1]:.2f} img/s ({image_cpu[-1]:.3f} CPU s/image); "
            f"ratio {video_fps[-1] / image_fps[-1]:.3f} (load {_load()})"
        )
    ratios = [v / i for v, i in zip(video_fps, image_fps)]
    return {
        "frames": frames,
        "video_fps": video_fps,
        "images_fps": image_fps,
        "video_cpu_s_per_frame": video_cpu,
        "images_cpu_s_per_image": image_cpu,
        "round_ratios": ratios,
        "ratio": statistics.median(ratios),
        "cpu_ratio": statistics.median(image_cpu) / statistics.median(video_cpu),
    }


def bench_coco(work: Path, frames: int) -> dict[str, Any]:
    from segcli.core.settings import Settings
    from segcli.inference.segmenter import Segmenter
    from segcli.io.video import VideoWriter

    weights = random_coco_checkpoint(work / "coco-random.pt")
    clip = work / "coco-720p.mp4"
    rng = np.random.default_rng(0)
    base = cv2.resize(
        rng.integers(0, 256, (90, 160, 3), dtype=np.uint8), (1280, 720), interpolation=cv2.INTER_CUBIC
    )
    writer = VideoWriter(clip, width=1280, height=720, fps=30)
    for k in range(frames):
        writer.write(np.roll(base, 8 * k, axis=1), k / 30)
    writer.commit()
    seg = Segmenter(
        "coco",
        weights=weights,
        device="cpu",
        progress=False,
        settings=Settings(score_threshold=0.0, max_detections=20),
    )
    seconds, n, summary, _ = run_video(seg, clip, work / "coco-out")
    return {"frames": n, "seconds": seconds, "fps": n / seconds, "instances": summary["instances"]}


class _StandIn:
    """One fixed instance per frame: exercises tracking, drawing, encoding and JSONL cheaply."""

    def __init__(self) -> None:
        from segcli.core.settings import Settings

        self.settings = Settings()

    def model_info(self) -> dict[str, Any]:
        return {"name": "stand-in"}

    def __call__(self, images: Sequence[np.ndarray]) -> list[Any]:
        from segcli.core.instances import Instances

        out = []
        for im in images:
            h, w = im.shape[:2]
            mask = np.zeros((h // 4, w // 4), bool)
            mask[h // 16 :, w // 16 :] = True
            out.append(
                Instances(
                    image_size=(h, w),
                    boxes=np.array([[0, 0, w // 4, h // 4]], np.float32),
                    scores=np.array([0.9], np.float32),
                    class_ids=np.array([1]),
                    class_names=("thing",),
                    masks=(mask,),
                    mask_boxes=np.array([[0, 0, w // 4, h // 4]]),
                )
            )
        return out


def bench_flat_memory(work: Path, frames: int) -> dict[str, Any]:
    from segcli.io.video import VideoWriter
    from segcli.runs.video import VideoOptions, segment_video, video_output_paths

    clip = work / "long-1080p.mp4"
    rng = np.random.default_rng(1)
    base = cv2.resize(
        rng.integers(0, 256, (54, 96, 3), dtype=np.uint8), (1920, 1080), interpolation=cv2.INTER_CUBIC
    )
    writer = VideoWriter(clip, width=1920, height=1080, fps=30, preset="ultrafast")
    for k in range(frames):
        writer.write(np.roll(base, 4 * k, axis=1), k / 30)
    writer.commit()
    samples: dict[str, float] = {"before": _rss_mib()}
    marks = {max(frames * k // 10, 1): f"{10 * k}%" for k in (1, 3, 5, 7, 9)}

    def on_frame(done: int, total: int | None) -> None:
        if done in marks:
            samples[marks[done]] = _rss_mib()

    start = time.perf_counter()
    out = work / "long-out"
    shutil.rmtree(out, ignore_errors=True)
    result = segment_video(
        _StandIn(),
        clip,
        video_output_paths(out / clip.name, ("overlay", "json")),
        options=VideoOptions(),
        on_frame=on_frame,
    )
    samples["after"] = _rss_mib()
    seconds = time.perf_counter() - start
    assert result.status == "done", result.reason
    return {
        "frames": result.processed,
        "seconds": seconds,
        "fps": result.processed / seconds,
        "rss_mib": samples,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--frames", type=int, default=48, help="frames of the 512x384 blocks clip")
    p.add_argument("--rounds", type=int, default=3, help="0 skips the blocks comparison")
    p.add_argument("--coco-frames", type=int, default=4, help="0 skips the COCO run")
    p.add_argument("--flat-frames", type=int, default=1500, help="0 skips the long-clip memory run")
    p.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: torch's default)")
    p.add_argument("--work", type=Path, default=Path("bench/out/video"))
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    print(f"machine: {machine()}; load {_load()}")
    report: dict[str, Any] = {"machine": machine()}
    if args.rounds:
        blocks = bench_blocks(args.work, args.frames, args.rounds)
        report["blocks"] = blocks
        video, images = statistics.median(blocks["video_fps"]), statistics.median(blocks["images_fps"])
        print(
            f"blocks 512x384, {blocks['frames']} frames: video {video:.2f} frames/s, images {images:.2f} "
            f"img/s; video/images = {blocks['ratio']:.3f} (median of the rounds' ratios; goal >= 0.95); "
            f"CPU time per item images/video = {blocks['cpu_ratio']:.3f}"
        )
    if args.coco_frames:
        coco = bench_coco(args.work, args.coco_frames)
        report["coco_720p"] = coco
        print(
            f"coco architecture (random weights), 1280x720 on CPU fp32: {coco['fps']:.3f} frames/s "
            f"({coco['seconds'] / coco['frames']:.2f} s/frame, {coco['frames']} frames; load {_load()})"
        )
    if args.flat_frames:
        flat = bench_flat_memory(args.work, args.flat_frames)
        report["flat_memory"] = flat
        rss = ", ".join(f"{k} {v:.0f}" for k, v in flat["rss_mib"].items())
        print(
            f"1080p, {flat['frames']} frames with a stand-in model: {flat['fps']:.1f} frames/s; "
            f"resident memory (MiB) {rss}"
        )
    print(f"load at the end: {_load()}")
    write_json(args.json, report)


if __name__ == "__main__":
    main()
