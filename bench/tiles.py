"""Sliced inference (--tile) on large block scenes: mask AP with and without tiles, the merges compared.

    python bench/tiles.py                                  # AP: 4 scenes of 3072x2048, ~300 blocks each
    python bench/tiles.py --scenes 2 --json bench/out/tiles.json
    python bench/tiles.py --scenes 0 --timing 2,12 --memory 6000   # timing only (a quiet machine!)

Scenes: :func:`segcli.models.blocks.large.render_large_scene`, blocks 20-100 px wide (the
blocks model's own scenes are 192-640 px, its objects 6-40 % of the short side), half of
them centred on tile borders or on the corners of four tiles on purpose. Every image goes
through ``Segmenter(model="blocks")`` once whole and once in tiles (``--tile``,
``--overlap``); the tiles' detections (and the whole image's, for ``--tile-full``) are
computed once and merged by every method, so the methods differ in the merge alone:
segcli's merges (NMM/NMS x shared/IoU/IoS x class-aware/agnostic) and, when ``sahi`` imports,
SAHI's own ``GreedyNMMPostprocess``/``NMSPostprocess`` on the same detections (polygons,
box matching: what ``get_sliced_prediction`` does; ``pip install sahi``, or ``pip install
--target DIR sahi shapely pybboxes tqdm`` with DIR on ``PYTHONPATH``, so as not to touch the
environment; the README's numbers are SAHI 0.12.8's). Mask AP is COCOeval ``segm`` at up to
1000 detections per image, score threshold 0.05 (``--max-detections 1000`` for every run).

Border objects: the ground-truth blocks that a tile edge passes through. For each, the
detections at score >= 0.5 (the CLI default) lying mostly (>= 50 % of their pixels) on it:
one is right, none is a miss, two or more is a split or duplicate.

Timing (``--timing MP,...``): seconds per megapixel of ``Segmenter.segment_tiled`` on images
of those sizes (a large scene repeated), and (``--memory SIDE``) the peak RSS of ``segcli
predict`` on a SIDE x SIDE PNG with ``--tile auto --save json`` in a fresh process. Only
meaningful on a quiet machine; the load average is printed beside them.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # also runs as python bench/tiles.py
from bench.common import bench_parser, evaluate, instances_to_coco, machine, write_json

if TYPE_CHECKING:
    from segcli.core.instances import Instances
    from segcli.inference.tiles import Part, TileGrid
    from segcli.models.blocks.large import LargeScene

MAX_DETS = 1000
SCORE = 0.05


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = bench_parser(__doc__)
    p.add_argument("--scenes", type=int, default=4)
    p.add_argument("--width", type=int, default=3072)
    p.add_argument("--height", type=int, default=2048)
    p.add_argument("--count", type=int, default=300, help="small blocks per scene (at most)")
    p.add_argument("--big", type=int, default=3, help="blocks of 250-600 px per scene (larger than a tile)")
    p.add_argument("--tile", type=int, default=384)
    p.add_argument("--overlap", type=float, default=0.2)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--no-sahi", action="store_true", help="leave SAHI's merge out even if it imports")
    p.add_argument("--timing", type=str, default="", help="megapixels to time, e.g. 12,100,400")
    p.add_argument("--memory", type=int, default=0, help="side of the square PNG for the peak-RSS run")
    p.add_argument(
        "--memory-tile", default="auto", help="--tile of the peak-RSS run (a larger one: fewer passes)"
    )
    return p.parse_args(argv)


def cut_lines(grid: TileGrid) -> tuple[list[int], list[int]]:
    """Every tile edge inside the image: where tiles cut objects."""
    th, tw = grid.tile_size
    h, w = grid.image_size
    xs = sorted({x for x in grid.xs if x > 0} | {x + tw for x in grid.xs if x + tw < w})
    ys = sorted({y for y in grid.ys if y > 0} | {y + th for y in grid.ys if y + th < h})
    return xs, ys


def ground_truth(scenes: Sequence[LargeScene]) -> dict[str, Any]:
    from segcli.core.masks import rle_encode
    from segcli.models.blocks.scenes import CATEGORIES

    images, annotations = [], []
    for image_id, scene in enumerate(scenes, start=1):
        h, w = scene.image.shape[:2]
        images.append({"id": image_id, "file_name": f"large-{scene.seed}.png", "width": w, "height": h})
        for block in scene.blocks:
            x0, y0, x1, y1 = block.box
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": block.category_id,
                    "segmentation": rle_encode(block.mask, np.array(block.box), (h, w)),
                    "area": float(block.area),
                    "bbox": [float(x0), float(y0), float(x1 - x0), float(y1 - y0)],
                    "iscrowd": 0,
                }
            )
    categories = [{"id": i + 1, "name": n} for i, n in enumerate(CATEGORIES)]
    return {"images": images, "annotations": annotations, "categories": categories}


def straddling(scene: LargeScene, lines: tuple[list[int], list[int]]) -> list[int]:
    """Indices of the blocks a tile edge passes through."""
    xs, ys = lines
    out = []
    for i, block in enumerate(scene.blocks):
        x0, y0, x1, y1 = block.box
        if any(x0 < x < x1 for x in xs) or any(y0 < y < y1 for y in ys):
            out.append(i)
    return out


def border_counts(
    gt_anns: list[dict[str, Any]], border: list[int], dets: list[dict[str, Any]]
) -> dict[str, int]:
    """Of the border objects: found once (a detection of IoU >= 0.5 and no second piece),
    missed, split or duplicated (two or more detections mostly on the object)."""
    from pycocotools import mask as mask_utils

    confident = [d for d in dets if d["score"] >= 0.5]
    out = {"border_objects": len(border), "one": 0, "missed": 0, "split_or_duplicate": 0}
    if not border:
        return out
    g_rles = [_rle(gt_anns[i]["segmentation"]) for i in border]
    if not confident:
        out["missed"] = len(border)
        return out
    d_rles = [_rle(d["segmentation"]) for d in confident]
    iou = np.asarray(mask_utils.iou(d_rles, g_rles, [0] * len(g_rles)))  # (D, G)
    # one at a time: pycocotools' area() of 256 or more RLEs overflows a uint8 under numpy 2
    d_area = np.array([float(mask_utils.area(r)) for r in d_rles])[:, None]
    g_area = np.array([float(mask_utils.area(r)) for r in g_rles])[None, :]
    inter = iou * (d_area + g_area) / (1 + iou)
    pieces = (inter >= 0.5 * d_area).sum(axis=0)
    found = (iou >= 0.5).any(axis=0)
    out["split_or_duplicate"] = int((pieces >= 2).sum())
    out["one"] = int((found & (pieces < 2)).sum())
    out["missed"] = int((~found & (pieces < 2)).sum())
    return out


def _rle(segmentation: dict[str, Any]) -> dict[str, Any]:
    counts = segmentation["counts"]
    return {
        "size": segmentation["size"],
        "counts": counts.encode("ascii") if isinstance(counts, str) else counts,
    }


# --------------------------------------------------------------------------- SAHI
def sahi_merge(parts: Sequence[Part], image_size: tuple[int, int], kind: str) -> list[dict[str, Any]] | None:
    """SAHI's own postprocess (default: GREEDYNMM, IOS 0.5, class-aware, as its
    ``get_sliced_prediction``) on the same detections; entries without ``image_id``."""
    try:
        from sahi.postprocess.combine import GreedyNMMPostprocess, NMSPostprocess
        from sahi.prediction import ObjectPrediction
    except ImportError:
        return None
    from pycocotools import mask as mask_utils

    from segcli.outputs.formats import coco_polygons

    h, w = image_size
    preds = []
    for part in parts:
        inst = part.instances
        for i in range(len(inst)):
            polygons = [p for p in coco_polygons(inst, i) if len(p) >= 6]
            if not polygons:
                continue
            preds.append(
                ObjectPrediction(
                    bbox=[float(v) for v in inst.boxes[i]],
                    category_id=int(inst.class_ids[i]),
                    category_name=inst.class_names[i],
                    segmentation=polygons,
                    score=float(inst.scores[i]),
                    shift_amount=[0, 0],
                    full_shape=[h, w],
                )
            )
    post = (GreedyNMMPostprocess if kind == "greedynmm" else NMSPostprocess)(
        match_threshold=0.5, match_metric="IOS", class_agnostic=False
    )
    out = []
    for pred in post(preds):
        segmentation = pred.mask.segmentation if pred.mask is not None else []
        segmentation = [p for p in segmentation if len(p) >= 6]
        if not segmentation:
            continue
        rle = mask_utils.merge(mask_utils.frPyObjects(segmentation, h, w))
        rle["counts"] = rle["counts"].decode("ascii")
        x0, y0, x1, y1 = pred.bbox.to_xyxy()
        out.append(
            {
                "category_id": int(pred.category.id),
                "segmentation": rle,
                "bbox": [float(x0), float(y0), float(x1 - x0), float(y1 - y0)],
                "score": float(pred.score.value),
            }
        )
    out.sort(key=lambda d: -d["score"])
    return out[:MAX_DETS]


# --------------------------------------------------------------------------- AP
def methods() -> dict[str, dict[str, Any]]:
    """segcli's merges by name: keyword arguments of ``merge_parts``."""
    out: dict[str, dict[str, Any]] = {}
    for merge in ("nmm", "nms"):
        for match in ("shared", "ios", "iou"):
            for agnostic in (False, True):
                name = f"{merge} {match} {'agnostic' if agnostic else 'aware'}"
                out[name] = {"merge": merge, "match": match, "threshold": 0.5, "class_agnostic": agnostic}
    return out


def run_ap(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from segcli.core.settings import Settings, TileSettings
    from segcli.inference.segmenter import Segmenter
    from segcli.inference.tiles import merge_parts, tile_grid, top_detections
    from segcli.models.blocks.large import render_large_scene

    torch.set_num_threads(args.threads)
    tile = TileSettings(size=args.tile, overlap=args.overlap, full=True)
    settings = Settings(score_threshold=SCORE, max_detections=MAX_DETS, tile=tile)
    seg = Segmenter("blocks", device="cpu", settings=settings, progress=False)
    grid = tile_grid((args.height, args.width), args.tile, args.overlap)
    lines = cut_lines(grid)
    t0 = time.perf_counter()
    scenes = [
        render_large_scene(1000 + k, args.width, args.height, count=args.count, big=args.big, cut_lines=lines)
        for k in range(args.scenes)
    ]
    print(f"{len(scenes)} scenes of {args.width}x{args.height} rendered in {time.perf_counter() - t0:.0f} s")
    gt = ground_truth(scenes)
    gt_by_image: dict[int, list[dict[str, Any]]] = {}
    for ann in gt["annotations"]:
        gt_by_image.setdefault(ann["image_id"], []).append(ann)

    runs: dict[str, list[dict[str, Any]]] = {}
    border: dict[str, dict[str, int]] = {}
    seconds: dict[str, float] = {"whole": 0.0, "tiles": 0.0, "full": 0.0}
    merge_seconds: dict[str, float] = {}

    def add(name: str, image_id: int, dets: list[dict[str, Any]], scene_border: list[int]) -> None:
        for d in dets:
            d["image_id"] = image_id
        runs.setdefault(name, []).extend(dets)
        counts = border_counts(gt_by_image[image_id], scene_border, dets)
        total = border.setdefault(name, dict.fromkeys(counts, 0))
        for k, v in counts.items():
            total[k] += v

    for image_id, scene in enumerate(scenes, start=1):
        size = (args.height, args.width)
        scene_border = straddling(scene, lines)
        t0 = time.perf_counter()
        whole = seg.segment_whole([scene.image])[0]
        seconds["whole"] += time.perf_counter() - t0
        add("no tiles", image_id, instances_to_coco(whole, image_id), scene_border)
        stage: dict[str, float] = {}
        parts = seg.tile_parts(scene.image, grid, stage)
        seconds["tiles"] += stage.get("tiles_read", 0) + stage.get("tiles_model", 0)
        seconds["full"] += stage.get("full_image", 0)
        tiles_only = parts[1:]
        for full in (False, True):
            chosen = parts if full else tiles_only
            suffix = " +full" if full else ""
            for name, kwargs in methods().items():
                t0 = time.perf_counter()
                merged: Instances = top_detections(merge_parts(chosen, size, **kwargs), MAX_DETS)
                merge_seconds[name + suffix] = merge_seconds.get(name + suffix, 0) + time.perf_counter() - t0
                add(name + suffix, image_id, instances_to_coco(merged, image_id), scene_border)
            if not args.no_sahi:
                for kind in ("greedynmm", "nms"):
                    t0 = time.perf_counter()
                    dets = sahi_merge(chosen, size, kind)
                    if dets is None:
                        continue
                    name = f"SAHI {kind} ios aware{suffix}"
                    merge_seconds[name] = merge_seconds.get(name, 0) + time.perf_counter() - t0
                    add(name, image_id, dets, scene_border)
        print(
            f"scene {image_id}/{len(scenes)}: {len(scene.blocks)} blocks, {len(scene_border)} on borders",
            flush=True,
        )

    rows = []
    for name, dets in runs.items():
        figures = evaluate(gt, dets, max_dets=MAX_DETS)
        rows.append(
            {
                "method": name,
                "mask_AP": round(figures["mask_AP"], 4),
                "mask_AP50": round(figures["mask_AP50"], 4),
                "box_AP": round(figures["box_AP"], 4),
                **border[name],
                "merge_seconds_per_image": round(merge_seconds.get(name, 0.0) / max(len(scenes), 1), 3),
            }
        )
    base = next(r["mask_AP"] for r in rows if r["method"] == "no tiles")
    print()
    print(
        f"blocks model, {len(scenes)} scenes {args.width}x{args.height}, {len(gt['annotations'])} blocks; "
        f"tile {args.tile}, overlap {args.overlap} ({len(grid)} tiles); score >= {SCORE}, <= {MAX_DETS} dets"
    )
    print(
        "| method | mask AP | x no tiles | AP50 | box AP | border objects | one | missed | split/dup "
        "| merge s/img |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        ratio = f"{r['mask_AP'] / base:.1f}x" if base > 0 else "-"
        print(
            f"| {r['method']} | {r['mask_AP']:.3f} | {ratio} | {r['mask_AP50']:.3f} | {r['box_AP']:.3f} | "
            f"{r['border_objects']} | {r['one']} | {r['missed']} | {r['split_or_duplicate']} | "
            f"{r['merge_seconds_per_image']:.2f} |"
        )
    n = max(len(scenes), 1)
    print(
        f"seconds per image: whole {seconds['whole'] / n:.2f}, tiles {seconds['tiles'] / n:.2f}, "
        f"full-image pass {seconds['full'] / n:.2f} ({args.threads} threads; load average {loadavg()})"
    )
    return {
        "scenes": len(scenes),
        "size": [args.width, args.height],
        "blocks": len(gt["annotations"]),
        "tile": args.tile,
        "overlap": args.overlap,
        "tiles_per_image": len(grid),
        "rows": rows,
        "seconds_per_image": {k: round(v / n, 3) for k, v in seconds.items()},
        "loadavg": loadavg(),
    }


# --------------------------------------------------------------------------- timing
def loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "unknown"


def big_image(megapixels: float, scene: np.ndarray) -> np.ndarray:
    """A square-ish image of about ``megapixels`` MP: ``scene`` repeated."""
    side_w = round((megapixels * 1e6 * 4 / 3) ** 0.5)
    side_h = round(megapixels * 1e6 / side_w)
    reps = (-(-side_h // scene.shape[0]), -(-side_w // scene.shape[1]), 1)
    return np.ascontiguousarray(np.tile(scene, reps)[:side_h, :side_w])


def run_timing(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from segcli.core.settings import Settings, TileSettings
    from segcli.inference.segmenter import Segmenter
    from segcli.models.blocks.large import render_large_scene

    torch.set_num_threads(args.threads)
    report: dict[str, Any] = {"machine": machine(), "loadavg_before": loadavg(), "timing": []}
    scene = render_large_scene(7, 3072, 2048, count=300).image
    for full in (False, True):
        settings = Settings(tile=TileSettings(size=args.tile, overlap=args.overlap, full=full))
        seg = Segmenter("blocks", device="cpu", settings=settings, progress=False)
        for mp in [float(v) for v in args.timing.split(",") if v]:
            image = big_image(mp, scene)
            t0 = time.perf_counter()
            inst = seg.segment_tiled(image)
            wall = time.perf_counter() - t0
            real_mp = image.shape[0] * image.shape[1] / 1e6
            row = {
                "megapixels": round(real_mp, 1),
                "full_image_pass": full,
                "tiles": inst.tiling["tiles"],
                "seconds": round(wall, 1),
                "seconds_per_megapixel": round(wall / real_mp, 3),
                "stages": inst.tiling["seconds"],
                "instances": len(inst),
                "loadavg": loadavg(),
            }
            report["timing"].append(row)
            print(
                f"{real_mp:.1f} MP{' +full' if full else ''}: {row['tiles']} tiles, {wall:.1f} s, "
                f"{row['seconds_per_megapixel']:.3f} s/MP, stages {row['stages']} "
                f"(load average {row['loadavg']})",
                flush=True,
            )
            del image
    if args.memory:
        report["memory"] = run_memory(args, scene)
    return report


def run_memory(args: argparse.Namespace, scene: np.ndarray) -> dict[str, Any]:
    """Peak RSS of ``segcli predict SIDE x SIDE.png --tile auto --save json`` (a fresh process)."""
    import cv2

    side = args.memory
    args.work.mkdir(parents=True, exist_ok=True)
    path = args.work / f"large-{side}.png"
    if not path.is_file():
        rows = []
        for y in range(0, side, scene.shape[0]):
            reps = -(-side // scene.shape[1])
            rows.append(np.tile(scene, (1, reps, 1))[: min(scene.shape[0], side - y), :side])
        cv2.imwrite(
            str(path), cv2.cvtColor(np.concatenate(rows), cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 1]
        )
    out = args.work / f"large-{side}-out"
    cmd = [sys.executable, "-m", "segcli", "predict", str(path), "--model", "blocks", "--device", "cpu"]
    cmd += ["--tile", args.memory_tile, "--save", "json", "-o", str(out), "--quiet"]
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    wall, peaks, code, err = run_sampled(cmd, env)
    baseline = [sys.executable, "-c", "from segcli import Segmenter; Segmenter('blocks', device='cpu')"]
    _, model_peaks, _, _ = run_sampled(baseline, env)
    row = {
        "side": side,
        "megapixels": round(side * side / 1e6, 1),
        "tile": args.memory_tile,
        "exit_code": code,
        "seconds": round(wall, 1),
        "peak_rss_mib": peaks["VmHWM"],
        "peak_anonymous_mib": peaks["RssAnon"],
        "peak_file_backed_mib": peaks["RssFile"],
        "model_only_rss_mib": model_peaks["VmHWM"],
        "model_only_anonymous_mib": model_peaks["RssAnon"],
        "loadavg": loadavg(),
    }
    if code:
        row["stderr"] = err[-500:]
    print(
        f"segcli predict {side}x{side} PNG --tile {args.memory_tile} --save json: exit {code}, {wall:.0f} s; "
        "peak RSS "
        f"{row['peak_rss_mib']} MiB = anonymous {row['peak_anonymous_mib']} MiB + file-backed (the memory "
        f"map, page cache) {row['peak_file_backed_mib']} MiB; the model alone: {row['model_only_rss_mib']} "
        f"MiB, anonymous {row['model_only_anonymous_mib']} MiB (load average {row['loadavg']})",
        flush=True,
    )
    return row


def run_sampled(cmd: list[str], env: dict[str, str]) -> tuple[float, dict[str, int], int, str]:
    """Run ``cmd``; (wall seconds, peak MiB of VmHWM, RssAnon and RssFile sampled from
    /proc every 50 ms, exit code, stderr tail). Anonymous memory is what must fit in RAM;
    file-backed pages (a memory map) are page cache the kernel writes back and drops."""
    import subprocess
    import tempfile

    peaks = {"VmHWM": 0, "RssAnon": 0, "RssFile": 0}
    start = time.perf_counter()
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err, env=env)
        status = Path(f"/proc/{proc.pid}/status")
        while proc.poll() is None:
            try:
                for line in status.read_text().splitlines():
                    key, _, value = line.partition(":")
                    if key in peaks:
                        peaks[key] = max(peaks[key], int(value.split()[0]) // 1024)
            except (OSError, ValueError):
                pass
            time.sleep(0.05)
        err.seek(0)
        tail = err.read().decode(errors="replace")[-2000:]
    return time.perf_counter() - start, peaks, proc.returncode, tail


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    print(f"machine: {machine()}; load average {loadavg()} (2 cores shared: timings are indicative)")
    report: dict[str, Any] = {}
    if args.scenes:
        report["ap"] = run_ap(args)
    if args.timing or args.memory:
        report["timing"] = run_timing(args) if args.timing else {"memory": run_memory(args, _scene())}
    write_json(args.json, report)
    return 0


def _scene() -> np.ndarray:
    from segcli.models.blocks.large import render_large_scene

    return render_large_scene(7, 3072, 2048, count=300).image


if __name__ == "__main__":
    sys.exit(main())
