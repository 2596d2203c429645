"""Shared pieces of the benchmarks: test images, a random COCO-architecture checkpoint, the machine."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

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
