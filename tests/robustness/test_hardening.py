"""Hostile inputs, interrupted runs and failing resources: the run survives, nothing is lost."""

from __future__ import annotations

import errno
import json
import shutil
import signal
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

import segcli.cli.runtime
import segcli.io.files
from segcli.cli import app
from segcli.cli.options import ModelOptions
from segcli.cli.runtime import Runtime
from segcli.core.instances import Instances
from segcli.core.settings import Settings
from segcli.inference.segmenter import Segmenter
from segcli.io.files import atomic_write_bytes
from segcli.outputs.plans import OUTPUT_MARKER
from segcli.runs.discovery import discover
from segcli.runs.engines.base import SegmenterLike
from segcli.runs.engines.local import LocalEngine
from tests import fake_cli
from tests.conftest import BATCH_FAST as FAST
from tests.conftest import PHOTOS, REPO, random_image
from tests.fakes import FullDiskFile, use_fake_in_cli, write_images

runner = CliRunner()


EXTREME_SHAPES = [(1, 1), (2, 3), (4000, 3), (3, 4000), (1, 6000), (40, 4000)]


def test_tiny_and_extreme_aspect_images(blocks_ckpt: Path) -> None:
    settings = Settings(score_threshold=0.0, max_detections=5, min_size=64, max_size=96)
    seg = Segmenter("blocks", weights=blocks_ckpt, device="cpu", settings=settings)
    found = 0
    for shape in EXTREME_SHAPES:
        [inst] = seg([random_image(*shape)])
        assert inst.image_size == shape
        h, w = shape
        assert (inst.boxes[:, [0, 2]] <= w).all() and (inst.boxes[:, [1, 3]] <= h).all()
        assert (inst.mask_boxes[:, 2] <= w).all() and (inst.mask_boxes[:, 3] <= h).all()
        found += len(inst) > 0
    # Detections lying wholly in the padding of a 4000x3 image are dropped, so some shapes
    # may have none; the bounds above must have been checked on real instances elsewhere.
    assert found >= len(EXTREME_SHAPES) // 2, f"only {found} shapes had instances to check"


def test_max_pixels_option_refuses_big_images(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    use_fake_in_cli(monkeypatch)
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


def test_disk_full_leaves_no_file_that_looks_complete(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "x.json"
    monkeypatch.setattr(segcli.io.files, "open", FullDiskFile, raising=False)
    with pytest.raises(OSError, match="No space left"):
        atomic_write_bytes(target, b"{}" * 1000)
    assert list(tmp_path.iterdir()) == []

    root = tmp_path / "in"
    root.mkdir()
    shutil.copy(PHOTOS / "chelsea.jpg", root)
    out = tmp_path / "out"
    out.mkdir()
    (out / OUTPUT_MARKER).write_bytes(b"")  # the disk fills up after the run has started
    use_fake_in_cli(monkeypatch)
    result = runner.invoke(app, ["batch", str(root), "-o", str(out), *FAST])
    assert result.exit_code == 1
    # A disk full from the start stops at run.json's start record, before any image
    # (test_hostile_runs fills the disk after it: each image then fails alone).
    assert result.stderr.strip() == f"error: cannot write {out / 'run.json'} (No space left on device)"
    leftovers = [p.name for p in out.rglob("*") if p.name.startswith("chelsea")]
    assert leftovers == [], f"half-written outputs left: {leftovers}"


def test_debug_shows_traceback_only_when_asked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(self: LocalEngine, *args: object) -> None:
        raise ValueError("something unexpected")

    monkeypatch.setattr(LocalEngine, "run", boom)
    use_fake_in_cli(monkeypatch)
    args = ["predict", str(PHOTOS / "coffee.jpg"), "-o", str(tmp_path), *FAST]
    plain = runner.invoke(app, args)
    assert plain.exit_code == 1
    assert "unexpected ValueError: something unexpected" in plain.stderr
    assert "Traceback" not in plain.output
    debug = runner.invoke(app, ["--debug", *args])
    assert debug.exit_code == 1 and "Traceback" in debug.stderr


def test_errors_are_one_line_and_escaped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A user error is exactly one line on stderr, and a path is printed as written (no Rich markup)."""
    use_fake_in_cli(monkeypatch)
    result = runner.invoke(app, ["batch", str(PHOTOS), "-o", str(tmp_path / "o"), "--nms-iou", "2"])
    assert result.exit_code == 2
    assert result.stderr.splitlines() == ["usage error: --nms-iou must be in [0, 1], got 2.0"]
    root = tmp_path / "[bold]in"
    root.mkdir()
    (root / "[red]x.jpg").write_bytes(b"not an image")
    result = runner.invoke(app, ["batch", str(root), "-o", str(tmp_path / "[i]out"), *FAST[:-1]])  # summary
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [f"failed: {root / '[red]x.jpg'}: not an image segcli can read"]
    assert f"run report: {tmp_path / '[i]out' / 'run.json'}\n" in result.stdout


# --------------------------------------------------------------------------- interrupted runs
# Library-level interrupts (KeyboardInterrupt and a real SIGINT from the segmenter) are in
# test_run.py; here the CLI: SIGINT in-process, SIGKILL in a process of its own
# (tests/fake_cli.py), both resumed and compared with one shared uninterrupted run. All on a
# FakeSegmenter: what is tested is the run (what is kept, redone, cleaned up), not the model
# (the model's results do not depend on the batch: test_hostile_runs, test_parity).
N_INPUTS = 8


def _batch_args(root: Path, out: Path) -> list[str]:
    return ["batch", str(root), "-o", str(out), "--save", "overlay,json,masks,idmap", *FAST[:-1]]


def _outputs(out: Path) -> dict[str, bytes]:
    return {
        p.relative_to(out).as_posix(): p.read_bytes()
        for p in sorted(out.rglob("*"))
        if p.is_file() and p.name not in ("run.json", "coco.json")
    }


@pytest.fixture(scope="session")
def reference_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """N_INPUTS small JPEGs and their uninterrupted batch outputs (every kind): made once."""
    base = tmp_path_factory.mktemp("interrupted")
    root = base / "in"
    write_images(root, {f"img{i:02d}.jpg": 40 + i for i in range(N_INPUTS)}, height=30)
    with pytest.MonkeyPatch.context() as monkeypatch:
        use_fake_in_cli(monkeypatch)
        result = runner.invoke(app, _batch_args(root, base / "ref"))
    assert result.exit_code == 0, result.output
    return root, base / "ref"


def _resume_and_compare(root: Path, out: Path, reference: Path) -> None:
    """Resume ``out`` (the CLI on a fake): nothing done twice, nothing left over, the same
    files as ``reference``."""
    done_before = {
        p: p.stat().st_mtime_ns
        for p in out.glob("*.json")
        if p.name not in ("run.json", "coco.json", "coco-results.json")
    }
    resumed = runner.invoke(app, _batch_args(root, out))
    assert resumed.exit_code == 0, resumed.output
    run = json.loads((out / "run.json").read_text())
    assert run["status"] == "complete"
    assert (run["counts"]["skipped"], run["counts"]["done"]) == (
        len(done_before),
        N_INPUTS - len(done_before),
    )
    for path, mtime in done_before.items():
        assert path.stat().st_mtime_ns == mtime, f"{path.name} was done twice"
    assert not list(out.rglob("*.part")), "no temporary files are left behind"
    assert _outputs(out) == _outputs(reference)
    assert len(json.loads((out / "coco.json").read_text())["images"]) == N_INPUTS


class _SigintOnCall:
    """Wraps a segmenter; sends this process SIGINT when forward number ``n`` starts."""

    def __init__(self, inner: SegmenterLike, n: int) -> None:
        self.inner, self.n, self.calls = inner, n, 0
        self.settings, self.categories = inner.settings, inner.categories

    def model_info(self) -> dict[str, Any]:
        return self.inner.model_info()

    def __call__(self, images: Sequence[np.ndarray]) -> list[Instances]:
        self.calls += 1
        if self.calls == self.n:
            signal.raise_signal(signal.SIGINT)
        return self.inner(images)


def test_sigint_stops_cleanly_and_resumes_to_the_same_result(
    reference_run: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root, reference = reference_run
    use_fake_in_cli(monkeypatch)
    fake_load = segcli.cli.runtime.DEFAULT.load_segmenter

    def load(opts: ModelOptions, *, quiet: bool = False) -> _SigintOnCall:
        return _SigintOnCall(fake_load(opts, quiet=quiet), n=4)

    out = tmp_path / "out"
    result = runner.invoke(app, _batch_args(root, out), obj=Runtime(load_segmenter=load))
    assert result.exit_code == 130, result.output
    assert "Traceback" not in result.output and "interrupted" in result.stdout
    run = json.loads((out / "run.json").read_text())
    assert run["status"] == "interrupted" and run["counts"]["done"] == 3
    assert not list(out.rglob("*.part")), "Ctrl-C leaves no temporary files"
    _resume_and_compare(root, out, reference)


def test_sigkill_loses_nothing_done_and_resumes_to_the_same_result(
    reference_run: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root, reference = reference_run
    out = tmp_path / "out"
    cmd = [*fake_cli.COMMAND, *_batch_args(root, out)]
    env = fake_cli.environment(stall_after=2)
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while len(list(out.glob("*.jpg.json"))) < 2 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.005)  # two images done, the third forward stalls
    assert proc.poll() is None, "the run ended before it could be killed"
    proc.kill()
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL, err.decode()
    use_fake_in_cli(monkeypatch)
    _resume_and_compare(root, out, reference)


def test_unreadable_file_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Root reads every file, so permission errors are simulated at the decoder's open."""
    import PIL.Image

    root = tmp_path / "in"
    root.mkdir()
    shutil.copy(PHOTOS / "coffee.jpg", root / "locked.jpg")
    shutil.copy(PHOTOS / "chelsea.jpg", root / "open.jpg")
    real_open = PIL.Image.open

    def guarded(fp: Any, *args: Any, **kwargs: Any) -> Any:
        if Path(getattr(fp, "name", fp)).name == "locked.jpg":
            raise PermissionError(errno.EACCES, "Permission denied", str(fp))
        return real_open(fp, *args, **kwargs)

    monkeypatch.setattr(PIL.Image, "open", guarded)
    use_fake_in_cli(monkeypatch)
    out = tmp_path / "out"
    result = runner.invoke(app, ["batch", str(root), "-o", str(out), *FAST])
    assert result.exit_code == 1
    assert f"failed: {root / 'locked.jpg'}: permission denied" in result.stderr
    assert (out / "open.jpg.json").is_file()


def test_ctrl_c_in_predict_and_while_loading(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    use_fake_in_cli(monkeypatch, fail_on={600: KeyboardInterrupt()})  # coffee.jpg is 600 wide
    photos = [str(PHOTOS / "chelsea.jpg"), str(PHOTOS / "coffee.jpg"), str(PHOTOS / "rocket.jpg")]
    result = runner.invoke(app, ["predict", *photos, "-o", str(tmp_path / "p"), *FAST])
    assert result.exit_code == 130 and "Traceback" not in result.output
    assert result.stderr.splitlines() == ["interrupted after 1 of 3 images"]
    assert (tmp_path / "p" / "chelsea.jpg.json").is_file(), "the finished image is kept"
    assert not (tmp_path / "p" / "rocket.jpg.json").exists()

    def interrupted_load(opts: ModelOptions, *, quiet: bool = False) -> None:
        raise KeyboardInterrupt

    result = runner.invoke(
        app,
        ["batch", str(PHOTOS), "-o", str(tmp_path / "b"), *FAST],
        obj=Runtime(load_segmenter=interrupted_load),
    )
    assert (result.exit_code, result.stderr) == (130, "interrupted\n")
