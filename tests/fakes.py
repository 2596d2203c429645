"""A segmenter without a model, so engines, runs and writers are tested in milliseconds.

seg = FakeSegmenter(fail_on={13: RuntimeError("boom")})  # calls with a 13 px wide image fail
[inst] = seg([np.zeros((10, 20, 3), np.uint8)])         # two instances, from literals
"""

from __future__ import annotations

import dataclasses
import errno
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from segcli.core.instances import Instances
from segcli.core.settings import Settings
from segcli.models.zoo import COCO_DEFAULTS

if TYPE_CHECKING:
    import pytest  # annotations only: fake_cli processes do not import pytest

FAKE_CATEGORIES = ("__background__", "cube", "sphere", "cylinder")
FAKE_SETTINGS = dataclasses.replace(COCO_DEFAULTS, min_size=64, max_size=96)


def two_instances(image_size: tuple[int, int]) -> Instances:
    """A cube on the top-left quarter (0.9) and a sphere on the bottom half (0.6).

    Sizes down to 2x2 pixels work; the cube's mask covers every pixel of its box,
    the sphere's leaves its first column empty (so mask extent != box).
    """
    h, w = image_size
    cube = np.zeros((h, w), bool)
    cube[: max(h // 2, 1), : max(w // 2, 1)] = True
    sphere = np.zeros((h, w), bool)
    sphere[h // 2 :, 1:] = True
    return Instances.from_full_masks(
        [cube, sphere],
        scores=[0.9, 0.6],
        class_ids=[1, 2],
        class_names=["cube", "sphere"],
        boxes=[[0, 0, max(w // 2, 1), max(h // 2, 1)], [0, h // 2, w, h]],
    )


class FakeSegmenter:
    """Deterministic stand-in for :class:`segcli.inference.segmenter.Segmenter`.

    Every image gets :func:`two_instances` of its size. ``fail_on`` maps an image
    width to the exception a call containing such an image raises (KeyboardInterrupt
    included), so tests give each input its own width to pick the one that fails.
    ``calls`` records the batch size of every call, failed calls included.
    """

    def __init__(
        self,
        *,
        fail_on: Mapping[int, BaseException] | None = None,
        settings: Settings = FAKE_SETTINGS,
        sha256: str = "f" * 64,
    ) -> None:
        self.fail_on = dict(fail_on or {})
        self.settings = settings
        self.sha256 = sha256
        self.calls: list[int] = []

    @property
    def categories(self) -> tuple[str, ...]:
        return FAKE_CATEGORIES

    def model_info(self) -> dict[str, str]:
        return {"name": "fake", "architecture": "fake", "weights": "literals", "sha256": self.sha256}

    def __call__(self, images: Sequence[np.ndarray]) -> list[Instances]:
        self.calls.append(len(images))
        for image in images:
            exc = self.fail_on.get(int(image.shape[1]))
            if exc is not None:
                raise exc
        return [two_instances((int(im.shape[0]), int(im.shape[1]))) for im in images]


class FullDiskFile:
    """A file object on a full disk, to monkeypatch ``open`` with: writes half of the data, then
    fails with ENOSPC (subclasses choose which writes still fit)."""

    def __init__(self, path: Path, mode: str, **kwargs: Any) -> None:
        self.name = Path(path).name
        self.fh = open(path, mode, **kwargs)  # noqa: SIM115 (closed in __exit__)

    def __enter__(self) -> FullDiskFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.fh.close()

    def write(self, data: Any) -> int:
        self.fh.write(data[: len(data) // 2])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def write_images(folder: Path, widths: Mapping[str, int], height: int = 8) -> list[Path]:
    """Write one small PNG per ``name: width`` under ``folder`` (subfolders allowed); sorted paths."""
    paths = []
    for name, width in widths.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        pixels = np.full((height, width, 3), (width * 7) % 256, np.uint8)
        Image.fromarray(pixels).save(path)
        paths.append(path)
    return sorted(paths)


def use_fake_in_cli(
    monkeypatch: pytest.MonkeyPatch,
    *,
    fail_on: Mapping[int, BaseException] | None = None,
    sha256: str = "f" * 64,
) -> list[FakeSegmenter]:
    """Make the CLI load a :class:`FakeSegmenter` (its settings: the options given, on
    :data:`FAKE_SETTINGS`); returns the list of fakes it made, for their ``calls``."""
    import segcli.cli.runtime
    from segcli.cli.options import ModelOptions

    made: list[FakeSegmenter] = []

    def load(opts: ModelOptions, *, quiet: bool = False) -> FakeSegmenter:
        settings = opts.settings().with_defaults(FAKE_SETTINGS)
        made.append(FakeSegmenter(fail_on=fail_on, settings=settings, sha256=sha256))
        return made[-1]

    monkeypatch.setattr(segcli.cli.runtime, "DEFAULT", segcli.cli.runtime.Runtime(load_segmenter=load))
    return made
