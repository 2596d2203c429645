"""Shared pieces of the benchmarks: arguments, test images, a random COCO-architecture checkpoint,
the machine, COCO AP scoring and printing, JSON reports."""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

if TYPE_CHECKING:
    from segcli.core.instances import Instances

REPO = Path(__file__).resolve().parents[1]
PHOTOS = REPO / "examples" / "photos"
SIZES = {"0.5MP": (816, 612), "12MP": (4000, 3000)}


def machine() -> str:
    """One line describing the machine the numbers were measured on."""
    import torch
    import torchvision

    cpu = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return (
        f"{cpu}; {os.cpu_count()} logical cores; torch {torch.__version__} "
        f"({torch.get_num_threads()} threads), torchvision {torchvision.__version__}; {gpu}; "
        f"Python {platform.python_version()}"
    )


def random_coco_checkpoint(path: Path) -> Path:
    """A randomly initialised maskrcnn_resnet50_fpn state dict (stands in for COCO weights offline).

    At --score-threshold 0 it fills every image with --max-detections detections, which is
    what the benchmarks need; its masks and boxes are meaningless.
    """
    if path.is_file():
        return path
    import torch
    from torchvision.models.detection import maskrcnn_resnet50_fpn

    torch.manual_seed(0)
    model = maskrcnn_resnet50_fpn(weights=None, weights_backbone=None, num_classes=91)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), path)
    return path


def make_photo(path: Path, size: tuple[int, int], source: str = "astronaut.jpg") -> Path:
    """A JPEG of ``size`` (W, H) made by resizing one of the bundled example photos."""
    if path.is_file():
        return path
    image = cv2.imread(str(PHOTOS / source))
    w, h = size
    sh, sw = image.shape[:2]
    scale = max(w / sw, h / sh)
    big = cv2.resize(image, (round(sw * scale), round(sh * scale)), interpolation=cv2.INTER_CUBIC)
    y0, x0 = (big.shape[0] - h) // 2, (big.shape[1] - w) // 2
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(
        str(path), np.ascontiguousarray(big[y0 : y0 + h, x0 : x0 + w]), [cv2.IMWRITE_JPEG_QUALITY, 92]
    )
    return path


def run_measured(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, float, int, str]:
    """Run ``cmd``; return (wall seconds, peak RSS in MiB of that process, exit code, stderr tail)."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    assert proc.stderr is not None
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - start
    return seconds, usage.ru_maxrss / 1024.0, proc.returncode, err.decode(errors="replace")[-2000:]


def python() -> str:
    return sys.executable


def segcli_batch_measured(folder: Path, out: Path, *options: str) -> tuple[float, float, dict[str, Any]]:
    """Run ``segcli batch FOLDER -o OUT OPTIONS --quiet`` in a fresh process on the CPU.

    Returns (wall seconds, peak RSS in MiB, the run's run.json). ``out`` is emptied first.
    """
    import json
    import shutil

    shutil.rmtree(out, ignore_errors=True)
    cmd = [
        python(),
        "-m",
        "segcli",
        "batch",
        str(folder),
        "-o",
        str(out),
        "--device",
        "cpu",
        *options,
        "--quiet",
    ]
    wall, rss, code, err = run_measured(cmd)
    if code != 0:
        raise SystemExit(f"segcli batch failed ({code}): {err}")
    return wall, rss, json.loads((out / "run.json").read_text())


# --------------------------------------------------------------------------- arguments, reports
def bench_parser(doc: str, *, coco_weights: bool = False, work: bool = True) -> argparse.ArgumentParser:
    """A parser described by ``doc``'s first line with the options benchmarks share: ``--json``
    (write the figures there), ``--work`` (scratch folder) and, for the COCO-architecture
    benchmarks, ``--weights`` (a COCO checkpoint; default: random init, see :func:`coco_weights`)."""
    p = argparse.ArgumentParser(description=doc.splitlines()[0])
    if coco_weights:
        p.add_argument("--weights", type=Path, default=None, help="COCO checkpoint (default: random init)")
    if work:
        p.add_argument("--work", type=Path, default=Path("bench/out"), help="scratch folder")
    p.add_argument("--json", type=Path, default=None, help="write the figures here")
    return p


def coco_weights(args: argparse.Namespace) -> Path:
    """``--weights``, or a randomly initialised COCO checkpoint in ``--work``; prints both headers."""
    weights: Path = args.weights or random_coco_checkpoint(args.work / "coco-random.pt")
    print(f"machine: {machine()}")
    print(f"weights: {weights}" + ("" if args.weights else " (randomly initialised, score threshold 0)"))
    return weights


def write_json(path: Path | None, report: Any) -> None:
    """Write ``report`` as indented JSON to ``path`` (nothing when ``path`` is None)."""
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(report, indent=1) + "\n")


# --------------------------------------------------------------------------- COCO AP
def instances_to_coco(inst: Instances, image_id: int) -> list[dict[str, Any]]:
    """``inst`` as COCO result entries (RLE segmentation, xywh box, score) of ``image_id``."""
    from segcli.core.masks import rle_encode

    out = []
    for i in range(len(inst)):
        x0, y0, x1, y1 = (float(v) for v in inst.boxes[i])
        out.append(
            {
                "image_id": image_id,
                "category_id": int(inst.class_ids[i]),
                "segmentation": rle_encode(inst.masks[i], inst.mask_boxes[i], inst.image_size),
                "bbox": [x0, y0, x1 - x0, y1 - y0],
                "score": float(inst.scores[i]),
            }
        )
    return out


def evaluate(gt: dict[str, Any], dets: list[dict[str, Any]], max_dets: int = 100) -> dict[str, float]:
    """COCOeval ``segm`` and ``bbox`` figures: ``mask_AP``, ``mask_AP50``, ..., ``box_AR100``
    (``max_dets``: COCOeval's largest ``maxDets``, 100 by COCO's convention; the ``AR100``
    figure is at that many)."""
    import contextlib
    import io

    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    figures: dict[str, float] = {}
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = gt
        coco_gt.createIndex()
        coco_dt = coco_gt.loadRes(dets) if dets else COCO()
    for iou_type, prefix in (("segm", "mask"), ("bbox", "box")):
        if not dets:
            figures.update({f"{prefix}_AP": 0.0, f"{prefix}_AP50": 0.0, f"{prefix}_AP75": 0.0})
            continue
        ev = COCOeval(coco_gt, coco_dt, iou_type)
        ev.params.maxDets = [1, 10, max_dets]
        with contextlib.redirect_stdout(io.StringIO()):
            ev.evaluate()
            ev.accumulate()
            ev.summarize()
        s = ev.stats if max_dets == 100 else _stats_at(ev)
        figures.update(
            {
                f"{prefix}_AP": float(s[0]),
                f"{prefix}_AP50": float(s[1]),
                f"{prefix}_AP75": float(s[2]),
                f"{prefix}_AP_small": float(s[3]),
                f"{prefix}_AP_medium": float(s[4]),
                f"{prefix}_AP_large": float(s[5]),
                f"{prefix}_AR100": float(s[8]),
            }
        )
    return figures


def _stats_at(ev: Any) -> list[float]:
    """``ev.stats`` at the largest ``maxDets`` (``summarize`` reads AP at 100 detections only)."""
    precision = ev.eval["precision"]  # (T, R, K, A, M)
    recall = ev.eval["recall"]  # (T, K, A, M)
    iou = list(np.round(ev.params.iouThrs, 2))

    def ap(t: int | None = None, area: int = 0) -> float:
        p = precision[:, :, :, area, -1] if t is None else precision[t, :, :, area, -1]
        p = p[p > -1]
        return float(p.mean()) if p.size else -1.0

    r = recall[:, :, 0, -1]
    r = r[r > -1]
    ar = float(r.mean()) if r.size else -1.0
    return [ap(), ap(iou.index(0.5)), ap(iou.index(0.75)), ap(None, 1), ap(None, 2), ap(None, 3), 0, 0, ar]


def print_ap(figures: dict[str, float]) -> None:
    """The mask and box AP lines of :func:`evaluate`'s figures."""
    for prefix, name in (("mask", "mask"), ("box", "box ")):
        print(
            f"{name} AP {figures[f'{prefix}_AP']:.3f}  AP50 {figures[f'{prefix}_AP50']:.3f}  "
            f"AP75 {figures[f'{prefix}_AP75']:.3f}"
        )


def table_row(*cells: object) -> None:
    """Print one row of a Markdown table (flushed: rows come slowly)."""
    print("| " + " | ".join(str(c) for c in cells) + " |", flush=True)


def table_header(*titles: str) -> None:
    """Print a Markdown table's header and rule."""
    table_row(*titles)
    print("|" + "---|" * len(titles))


def random_coco_options(weights: Path, max_detections: int) -> list[str]:
    """``segcli batch`` options for the COCO architecture at score threshold 0 (see :func:`coco_weights`)."""
    return ["--weights", str(weights), "--model", "coco", "--score-threshold", "0",
            "--max-detections", str(max_detections)]  # fmt: skip
