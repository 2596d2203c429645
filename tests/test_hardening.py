"""Hostile inputs, interrupted runs and failing resources: the run survives, nothing is lost."""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import segcli.imageio
from segcli.batch import discover, run_plans
from segcli.cli import app
from segcli.engines import Job
from segcli.engines.local import LocalEngine
from segcli.errors import SegcliError
from segcli.imageio import atomic_write_bytes
from segcli.instances import Instances
from segcli.predictor import Segmenter
from segcli.settings import Settings
from segcli.writers import plan_outputs
from tests.conftest import BATCH_FAST as FAST
from tests.conftest import PHOTOS, random_image

runner = CliRunner()


@pytest.mark.parametrize("shape", [(1, 1), (2, 3), (4000, 3), (3, 4000), (1, 6000), (40, 12000)])
def test_tiny_and_extreme_aspect_images(blocks_ckpt: Path, shape: tuple[int, int]) -> None:
    settings = Settings(score_threshold=0.0, max_detections=5, min_size=64, max_size=96)
    seg = Segmenter("blocks", weights=blocks_ckpt, device="cpu", settings=settings)
    [inst] = seg([random_image(*shape)])
    assert inst.image_size == shape
    h, w = shape
    assert (inst.boxes[:, [0, 2]] <= w).all() and (inst.boxes[:, [1, 3]] <= h).all()
    assert (inst.mask_boxes[:, 2] <= w).all() and (inst.mask_boxes[:, 3] <= h).all()


def test_max_pixels_option_refuses_big_images(tmp_path: Path, blocks_ckpt: Path) -> None:
    root = tmp_path / "in"
    root.mkdir()
    shutil.copy(PHOTOS / "coffee.jpg", root)  # 600x400 = 0.24 MP
    shutil.copy(PHOTOS / "chelsea.jpg", root)  # 451x300 = 0.135 MP
    result = runner.invoke(
        app,
        [
            "batch",
            str(root),
            "-o",
            str(tmp_path / "o"),
            "--weights",
            str(blocks_ckpt),
            "--max-pixels",
            "200000",
            *FAST,
        ],
    )
    assert result.exit_code == 1
    assert "coffee.jpg: declares 600x400" in result.stderr and "--max-pixels" in result.stderr
    assert (tmp_path / "o" / "chelsea.jpg.json").is_file()


def test_broken_symlink_is_reported(tmp_path: Path) -> None:
    root = tmp_path / "in"
    root.mkdir()
    (root / "gone.jpg").symlink_to(tmp_path / "missing.jpg")
    found = discover(root)
    assert found.files == [] and found.problems == [(root / "gone.jpg", "broken symbolic link")]


class _FlakySegmenter:
    """Wraps a real Segmenter; images wider than ``limit`` raise out-of-memory."""

    def __init__(self, inner: Segmenter, limit: int) -> None:
        self.inner = inner
        self.limit = limit
        self.settings = inner.settings
        self.categories = inner.categories
        self.calls: list[int] = []

    def model_info(self) -> dict[str, Any]:
        return self.inner.model_info()

    def __call__(self, images: Sequence[np.ndarray]) -> list[Instances]:
        self.calls.append(len(images))
        if any(im.shape[1] > self.limit for im in images):
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 9.00 GiB")
        return self.inner(images)


def test_out_of_memory_fails_one_image_not_the_run(tmp_path: Path, blocks_ckpt: Path) -> None:
    settings = Settings(score_threshold=0.0, max_detections=3, min_size=64, max_size=96)
    seg = _FlakySegmenter(
        Segmenter("blocks", weights=blocks_ckpt, device="cpu", settings=settings), limit=500
    )
    sources = [PHOTOS / "chelsea.jpg", PHOTOS / "coffee.jpg", PHOTOS / "astronaut.jpg"]  # 451, 600, 512 wide
    plans = plan_outputs(sources, tmp_path)
    report = run_plans(plans, Job.for_segmenter(seg, ["json"], batch_size=3), LocalEngine(seg))
    status = {r.plan.source.name: r for r in report.results}
    assert [status[p.name].status for p in sources] == ["done", "failed", "failed"]
    assert "out of memory" in status["coffee.jpg"].reason and "--max-size" in status["coffee.jpg"].reason
    assert seg.calls[0] == 3, "the batch was tried whole first, then image by image"
    assert (tmp_path / "chelsea.jpg.json").is_file() and not (tmp_path / "coffee.jpg.json").exists()


_fdopen = os.fdopen


class _FullDisk:
    """A file object that writes part of the data, then fails like a full disk."""

    def __init__(self, fd: int, mode: str) -> None:
        self.fh = _fdopen(fd, mode)

    def __enter__(self) -> _FullDisk:
        return self

    def __exit__(self, *exc: object) -> None:
        self.fh.close()

    def write(self, data: bytes) -> int:
        self.fh.write(data[: len(data) // 2])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_disk_full_leaves_no_file_that_looks_complete(
    tmp_path: Path, blocks_ckpt: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "x.json"
    monkeypatch.setattr(segcli.imageio.os, "fdopen", _FullDisk)
    with pytest.raises(OSError, match="No space left"):
        atomic_write_bytes(target, b"{}" * 1000)
    assert list(tmp_path.iterdir()) == []

    root = tmp_path / "in"
    root.mkdir()
    shutil.copy(PHOTOS / "chelsea.jpg", root)
    out = tmp_path / "out"
    result = runner.invoke(app, ["batch", str(root), "-o", str(out), "--weights", str(blocks_ckpt), *FAST])
    assert result.exit_code == 1
    assert "chelsea.jpg: cannot write outputs (No space left on device)" in result.stderr
    leftovers = [p.name for p in out.rglob("*") if p.name.startswith("chelsea")]
    assert leftovers == [], f"half-written outputs left: {leftovers}"


def test_debug_shows_traceback_only_when_asked(
    tmp_path: Path, blocks_ckpt: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def boom(self: LocalEngine, *args: object) -> None:
        raise ValueError("something unexpected")

    monkeypatch.setattr(LocalEngine, "run", boom)
    args = ["predict", str(PHOTOS / "coffee.jpg"), "--weights", str(blocks_ckpt), "-o", str(tmp_path), *FAST]
    plain = runner.invoke(app, args)
    assert plain.exit_code == 1
    assert "unexpected ValueError: something unexpected" in plain.stderr
    assert "Traceback" not in plain.output
    debug = runner.invoke(app, ["--debug", *args])
    assert debug.exit_code == 1 and "Traceback" in debug.stderr


def test_segcli_error_is_one_line() -> None:
    with pytest.raises(SegcliError):
        Settings(nms_iou=2.0)


# --------------------------------------------------------------------------- interrupted runs
def _inputs(root: Path, n: int) -> Path:
    root.mkdir()
    photos = sorted(PHOTOS.glob("*.jpg"))
    for i in range(n):
        shutil.copy(photos[i % len(photos)], root / f"img{i:02d}.jpg")
    return root


def _batch_cmd(root: Path, out: Path, ckpt: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "segcli",
        "batch",
        str(root),
        "-o",
        str(out),
        "--weights",
        str(ckpt),
        "--save",
        "overlay,json,masks,idmap",
        *FAST,
    ]


def _outputs(out: Path) -> dict[str, bytes]:
    return {
        p.relative_to(out).as_posix(): p.read_bytes()
        for p in sorted(out.rglob("*"))
        if p.is_file() and p.name not in ("run.json", "coco.json")
    }


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL])
def test_interrupted_run_resumes_to_the_same_result(tmp_path: Path, blocks_ckpt: Path, sig: int) -> None:
    root = _inputs(tmp_path / "in", 40)
    reference = tmp_path / "ref"
    subprocess.run(_batch_cmd(root, reference, blocks_ckpt), check=True, capture_output=True)

    out = tmp_path / "out"
    proc = subprocess.Popen(
        _batch_cmd(root, out, blocks_ckpt), stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 120
    while len(list(out.glob("*.json"))) < 3 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.01)
    assert proc.poll() is None, "the run ended before it could be interrupted"
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    if sig == signal.SIGINT:
        assert proc.returncode == 130, err.decode()
        assert b"Traceback" not in err
        run = json.loads((out / "run.json").read_text())
        assert run["status"] == "interrupted" and 3 <= run["counts"]["done"] < 40
        assert not list(out.rglob("*.part")), "Ctrl-C leaves no temporary files"
    else:
        assert proc.returncode == -signal.SIGKILL
    done_before = {
        p: p.stat().st_mtime_ns for p in out.glob("*.json") if p.name not in ("run.json", "coco.json")
    }

    resumed = subprocess.run(_batch_cmd(root, out, blocks_ckpt), capture_output=True)
    assert resumed.returncode == 0, resumed.stderr.decode()
    run = json.loads((out / "run.json").read_text())
    assert run["counts"]["skipped"] == len(done_before)
    assert run["counts"]["done"] == 40 - len(done_before)
    for path, mtime in done_before.items():
        assert path.stat().st_mtime_ns == mtime, f"{path.name} was done twice"
    assert not list(out.rglob("*.part")), "no temporary files are left behind"
    assert _outputs(out) == _outputs(reference)
    coco = json.loads((out / "coco.json").read_text())
    assert len(coco["images"]) == 40


def test_unreadable_file_is_one_line(
    tmp_path: Path, blocks_ckpt: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Root reads every file, so permission errors are simulated at the decoder's open."""
    import PIL.Image

    root = tmp_path / "in"
    root.mkdir()
    shutil.copy(PHOTOS / "coffee.jpg", root / "locked.jpg")
    shutil.copy(PHOTOS / "chelsea.jpg", root / "open.jpg")
    real_open = PIL.Image.open

    def guarded(fp: Any, *args: Any, **kwargs: Any) -> Any:
        if Path(fp).name == "locked.jpg":
            raise PermissionError(errno.EACCES, "Permission denied", str(fp))
        return real_open(fp, *args, **kwargs)

    monkeypatch.setattr(PIL.Image, "open", guarded)
    out = tmp_path / "out"
    result = runner.invoke(app, ["batch", str(root), "-o", str(out), "--weights", str(blocks_ckpt), *FAST])
    assert result.exit_code == 1
    assert f"failed: {root / 'locked.jpg'}: permission denied" in result.stderr
    assert (out / "open.jpg.json").is_file()
