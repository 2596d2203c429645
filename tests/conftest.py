"""Shared fixtures: small randomly initialised checkpoints and real photos. No network."""

from __future__ import annotations

import os
import signal

# Before torch loads (it reads this once): OpenMP's worker threads sleep instead of spinning
# after each parallel region. The suite runs forwards beside writer threads, subprocesses and
# Ray workers on 2 cores; spinning threads took the CPU from them (the same tests ran 1.7-2x
# slower under load with the default policy). Subprocesses and Ray workers inherit it.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

# A suite started from a background job (`cmd &` in a script) inherits SIGINT ignored, and
# Python then keeps it ignored: the tests of Ctrl-C need Python's own handler, here and in the
# processes they start (which inherit "ignored", never a handler).
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

import shutil
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
PHOTOS = REPO / "examples" / "photos"
BATCH_FAST = [
    "--model",
    "blocks",
    "--device",
    "cpu",
    "--min-size",
    "64",
    "--max-size",
    "96",
    "--score-threshold",
    "0",
    "--max-detections",
    "4",
    "--quiet",
]
"""CLI options for fast batch tests: the small blocks architecture at a tiny input size."""


@pytest.fixture(autouse=True)
def _no_network(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """Tests never touch the network, and never see the user's torch cache."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise urllib.error.URLError("network disabled in tests")

    monkeypatch.setattr(urllib.request, "urlopen", refuse)
    monkeypatch.setattr(torch.hub, "urlopen", refuse)  # torch.hub imported it by name
    monkeypatch.setenv("TORCH_HOME", str(tmp_path_factory.getbasetemp() / "torch-home"))


@pytest.fixture(scope="session")
def blocks_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A randomly initialised blocks-architecture checkpoint (small and fast)."""
    from segcli.models.blocks.arch import build_blocks_maskrcnn

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ckpt") / "blocks-random.pt"
    torch.save(build_blocks_maskrcnn().state_dict(), path)
    return path


@pytest.fixture(scope="session")
def coco_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A randomly initialised maskrcnn_resnet50_fpn (COCO architecture) checkpoint."""
    from torchvision.models.detection import maskrcnn_resnet50_fpn

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ckpt") / "coco-random.pt"
    model = maskrcnn_resnet50_fpn(weights=None, weights_backbone=None, num_classes=91)
    torch.save({"model": model.state_dict()}, path)
    return path


@pytest.fixture()
def photo_dir(tmp_path: Path) -> Path:
    """A copy of the bundled example photos."""
    dst = tmp_path / "photos"
    shutil.copytree(PHOTOS, dst)
    return dst


def random_image(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
