"""Resume, stops and resources under attack (issue 10, items 5-11 and 17).

Runs use FakeSegmenter (milliseconds); only the batch-size and memory tests run the blocks
model. The SIGTERM and lock tests start the real CLI in processes of their own, on a fake
(tests/fake_cli.py); the memory test forks this process, so it starts no second torch.
"""

from __future__ import annotations

import errno
import io
import json
import os
import select
import signal
import socket
import struct
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from typer.testing import CliRunner

import segcli.io.files
import segcli.outputs.writers
from segcli.cli import app
from segcli.core.errors import SegcliError
from segcli.core.settings import Settings
from segcli.inference.segmenter import Segmenter, sampled_model_input
from segcli.io.files import temp_name
from segcli.io.images import read_image
from segcli.outputs.plans import mark_output, plan_outputs
from segcli.outputs.writers import write_outputs
from segcli.runs.batch import BatchOptions, BatchOutcome, run_batch
from segcli.runs.engines.base import Job
from segcli.runs.engines.local import BYTES_PER_PIXEL, LocalEngine
from segcli.runs.runfiles import LOCK_NAME
from tests import fake_cli
from tests.conftest import BATCH_FAST, REPO, random_image
from tests.fakes import (
    FAKE_SETTINGS,
    FakeSegmenter,
    FullDiskFile,
    two_instances,
    use_fake_in_cli,
    write_images,
)

runner = CliRunner()
WIDTHS = {"a.png": 10, "b.png": 11, "c.png": 12, "d.png": 13}
OTHER = Settings(**{**FAKE_SETTINGS.to_dict(), "nms_iou": 0.3, "classes": None})


def _batch(tmp_path: Path, seg: FakeSegmenter, **options: Any) -> BatchOutcome:
    opts = BatchOptions(save=("overlay", "json"), **options)
    return run_batch(tmp_path / "in", tmp_path / "out", lambda: seg, options=opts)


def _files(out: Path) -> dict[str, bytes]:
    return {
        p.relative_to(out).as_posix(): p.read_bytes()
        for p in sorted(out.rglob("*"))
        if p.is_file() and p.name not in ("run.json", "coco.json", LOCK_NAME)
    }


def _wait_for(condition: Any, proc: subprocess.Popen[bytes], seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.01)
    assert proc.poll() is None, "the run ended too early"
    assert condition(), "timed out"


# --------------------------------------------------------------------------- 5: the settings guard
@pytest.mark.parametrize("damage", ["deleted", "truncated", "not an object"])
def test_settings_guard_holds_without_a_good_run_json(tmp_path: Path, damage: str) -> None:
    """After a kill, OOM or power cut run.json may be missing or damaged: per-image JSON still guards."""
    write_images(tmp_path / "in", WIDTHS)
    _batch(tmp_path, FakeSegmenter())
    out = tmp_path / "out"
    before = _files(out)
    run_json = out / "run.json"
    if damage == "deleted":
        run_json.unlink()
    else:
        run_json.write_text('{"settings": {"nms' if damage == "truncated" else "[1, 2]")
    with pytest.raises(
        SegcliError, match=r"a\.png\.json holds results made with other settings \(nms_iou 0\.5"
    ):
        _batch(tmp_path, FakeSegmenter(settings=OTHER))
    with pytest.raises(SegcliError, match=r"a\.png\.json holds results of other weights"):
        _batch(tmp_path, FakeSegmenter(sha256="0" * 64))
    assert _files(out) == before, "a refused run changes nothing"
    assert _batch(tmp_path, FakeSegmenter()).summary["counts"]["skipped"] == len(WIDTHS)


def test_run_json_is_written_when_the_run_starts(tmp_path: Path) -> None:
    """A run that never ends cleanly (here: the process killed inside the engine) leaves
    run.json 'running' with its settings; an engine that fails leaves it 'failed' with the
    error. The settings guard holds after both."""

    class Killed(BaseException):
        """What a kill -9 looks like from inside: nothing after it runs."""

    def crashing(error: BaseException) -> type[LocalEngine]:
        class Crashing(LocalEngine):
            def run(self, *args: Any) -> bool:
                raise error

        return Crashing

    write_images(tmp_path / "in", WIDTHS)
    with pytest.raises(Killed):
        run_batch(tmp_path / "in", tmp_path / "out", FakeSegmenter, engine=crashing(Killed()))
    run = json.loads((tmp_path / "out" / "run.json").read_text())
    assert run["status"] == "running" and run["pid"] == os.getpid() and run["host"] == socket.gethostname()
    assert run["settings"] == FAKE_SETTINGS.to_dict() and run["counts"] == {"inputs": len(WIDTHS)}
    with pytest.raises(SegcliError, match=r"other settings \(nms_iou 0\.5 -> 0\.3\)"):
        _batch(tmp_path, FakeSegmenter(settings=OTHER))
    with pytest.raises(RuntimeError):
        run_batch(
            tmp_path / "in", tmp_path / "out", FakeSegmenter, engine=crashing(RuntimeError("the engine died"))
        )
    run = json.loads((tmp_path / "out" / "run.json").read_text())
    assert run["status"] == "failed" and run["error"] == "RuntimeError: the engine died"
    assert run["settings"] == FAKE_SETTINGS.to_dict() and run["counts"]["total"]["pending"] == len(WIDTHS)
    with pytest.raises(SegcliError, match=r"other settings \(nms_iou 0\.5 -> 0\.3\)"):
        _batch(tmp_path, FakeSegmenter(settings=OTHER))


# --------------------------------------------------------------------------- 6: verifiable outputs
def test_empty_truncated_or_foreign_json_is_redone(tmp_path: Path) -> None:
    write_images(tmp_path / "in", WIDTHS)
    _batch(tmp_path, FakeSegmenter())
    out = tmp_path / "out"
    good = _files(out)
    (out / "a.png.json").write_bytes(b"")  # a power cut before the data reached the disk
    (out / "b.png.json").write_bytes(good["b.png.json"][:40])
    (out / "c.png.json").write_text('{"schema": "something else"}')
    outcome = _batch(tmp_path, FakeSegmenter())
    counts = outcome.summary["counts"]
    assert (counts["done"], counts["skipped"], outcome.exit_code) == (3, 1, 0)
    assert _files(out) == good
    coco = json.loads((out / "coco.json").read_text())
    assert len(coco["images"]) == len(WIDTHS) and len(coco["annotations"]) == 2 * len(WIDTHS)


def test_outputs_reach_the_disk_before_the_json_marks_them_done(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[str] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    [plan] = plan_outputs([tmp_path / "a.png"], tmp_path / "out")
    paths = plan.paths(("overlay", "masks", "json"))
    record = {"schema": "segcli.instances/1"}
    write_outputs(paths, np.zeros((8, 10, 3), np.uint8), two_instances((8, 10)), record)
    folder = str(tmp_path / "out")
    names = [Path(s).name if Path(s).parent.as_posix() == folder else s for s in synced]
    json_at = next(i for i, n in enumerate(names) if n.startswith(".a.png.json."))
    before = names[:json_at]
    assert any(n.startswith(".a.png.overlay.png.") for n in before), names
    assert sum(n.endswith(".png") and ".a.png.masks." in n for n in before) == 2, "each mask file"
    assert before[-1] == folder, "the folder (the other outputs' renames) is synced before the JSON"
    assert names[-1] == folder, "and after it"


# --------------------------------------------------------------------------- 7: one run per folder
def test_a_second_run_into_a_busy_folder_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_images(tmp_path / "in", {f"{i}.png": 10 + i for i in range(8)})
    out = tmp_path / "out"
    cmd = [*fake_cli.COMMAND, "batch", str(tmp_path / "in"), "-o", str(out), "--quiet"]
    env = fake_cli.environment(stall_after=0)
    first = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        _wait_for(lambda: (out / "run.json").is_file(), first)
        in_flight = out / temp_name("7.png.json")  # as if the first run were writing it now
        in_flight.write_text("{")
        use_fake_in_cli(monkeypatch)
        second = runner.invoke(app, ["batch", str(tmp_path / "in"), "-o", str(out), "--quiet"])
        assert second.exit_code == 1
        assert second.stderr.strip() == (
            f"error: output folder {out} is in use by another segcli run (pid {first.pid} on "
            f"{socket.gethostname()}); wait for it to finish or choose another --output"
        )
        assert in_flight.exists(), "the other run's temporary files are left alone"
        first.kill()  # a killed holder leaves no stale lock: the kernel drops it
        first.communicate(timeout=60)
    finally:
        if first.poll() is None:
            first.kill()
    resumed = runner.invoke(app, ["batch", str(tmp_path / "in"), "-o", str(out), "--quiet"])
    assert resumed.exit_code == 0, resumed.output
    assert not in_flight.exists(), "stale temporary files are removed once the lock is ours"


# --------------------------------------------------------------------------- 8: disk full
class _FullDisk(FullDiskFile):
    """``open`` of a full disk: every write fails with ENOSPC, but the first ``run_json_room``
    writes of run.json (counted across files)."""

    run_json_writes = 0
    run_json_room = 0

    def write(self, data: Any) -> int:
        if self.name.startswith(".run.json."):
            type(self).run_json_writes += 1
            if type(self).run_json_writes <= type(self).run_json_room:
                return self.fh.write(data)
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


@pytest.mark.parametrize(
    ("room", "error"),
    [
        (2, "error: cannot write {out}/coco.json (No space left on device)"),
        (1, "error: cannot write {out}/run.json (No space left on device)"),
        (0, "error: cannot write {out}/run.json (No space left on device)"),
    ],
    ids=["room-for-run-json", "full-after-start", "full-from-start"],
)
def test_disk_full_is_one_line_and_exit_1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, room: int, error: str
) -> None:
    write_images(tmp_path / "in", WIDTHS)
    out = tmp_path / "out"
    mark_output(out)  # the disk fills after the output folder was made and marked
    disk = type("Disk", (_FullDisk,), {"run_json_room": room})
    monkeypatch.setattr(segcli.io.files, "open", disk, raising=False)
    monkeypatch.setattr(segcli.outputs.writers, "open", disk, raising=False)
    use_fake_in_cli(monkeypatch)
    result = runner.invoke(app, ["batch", str(tmp_path / "in"), "-o", str(out), "--quiet"])
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert lines[-1] == error.format(out=out)
    assert "Traceback" not in result.output and "unexpected" not in result.output
    if room:  # every image was tried and failed, one line each
        assert sorted(lines[:-1]) == [
            f"failed: {tmp_path / 'in' / n}: cannot write outputs (No space left on device)" for n in WIDTHS
        ]
    else:
        assert len(lines) == 1, "nothing is tried when even run.json cannot be written"
    run = json.loads((out / "run.json").read_text()) if room else None
    if room == 2:
        assert run is not None and run["status"] == "failed" and run["counts"]["failed"] == len(WIDTHS)
        assert run["coco_error"] == error.format(out=out).removeprefix("error: ")
    if room == 1:
        assert run is not None and run["status"] == "running", "the start record stays"
    assert not [p for p in out.rglob("*") if p.name.endswith(".part")]


# --------------------------------------------------------------------------- 9: SIGTERM
def test_sigterm_stops_like_ctrl_c(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_images(tmp_path / "in", {f"{i}.png": 10 + i for i in range(8)})
    out = tmp_path / "out"
    cmd = [*fake_cli.COMMAND, "batch", str(tmp_path / "in"), "-o", str(out)]  # the summary is checked
    stalled = tmp_path / "stalled"  # two images through the model, the third forward stalls
    env = fake_cli.environment(stall_after=2, stalled=stalled)
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _wait_for(stalled.exists, proc)
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 143, stderr.decode()
    assert stderr.decode().strip().splitlines() == [
        "terminated (SIGTERM): finished outputs are kept; run the same command again to resume"
    ]
    assert "segcli batch: interrupted" in stdout.decode()
    run = json.loads((out / "run.json").read_text())
    done = len(list(out.glob("*.png.json")))
    assert run["status"] == "interrupted" and run["counts"]["done"] == done == 2
    assert run["counts"]["inputs"] == 8 and run["counts"]["total"]["pending"] == 8 - done
    assert not [p for p in out.rglob("*") if p.name.endswith(".part")]
    use_fake_in_cli(monkeypatch)
    resumed = runner.invoke(app, ["batch", str(tmp_path / "in"), "-o", str(out), "--quiet"])
    assert resumed.exit_code == 0
    counts = json.loads((out / "run.json").read_text())["counts"]
    assert (counts["skipped"], counts["done"], counts["total"]["done"]) == (done, 8 - done, 8)


# --------------------------------------------------------------------------- 10: --batch-size
def test_batch_size_does_not_change_results(tmp_path: Path, blocks_ckpt: Path) -> None:
    root = tmp_path / "in"
    root.mkdir()
    for i, (h, w) in enumerate([(40, 60), (64, 50), (33, 97), (70, 70), (50, 40)]):
        Image.fromarray(random_image(h, w, seed=i)).save(root / f"{i}.png")
    outputs = []
    for batch_size in ("1", "3"):
        out = tmp_path / f"out{batch_size}"
        args = ["batch", str(root), "-o", str(out), *BATCH_FAST, "--weights", str(blocks_ckpt)]
        result = runner.invoke(app, [*args, "--batch-size", batch_size])
        assert result.exit_code == 0, result.output
        outputs.append(_files(out))
    assert outputs[0] == outputs[1]
    assert sum(len(json.loads(v)["instances"]) for k, v in outputs[0].items() if k.endswith(".png.json")) > 0


# --------------------------------------------------------------------------- 11: memory
def test_budget_caps_decoded_images_held_at_once(tmp_path: Path) -> None:
    plans = plan_outputs(
        write_images(tmp_path / "in", {f"{i}.png": 100 for i in range(6)}, height=100), tmp_path
    )
    seg = FakeSegmenter()
    job = Job.for_segmenter(seg, ("json",), batch_size=6)
    results: list[str] = []
    engine = LocalEngine(seg, decode_budget=2 * 100 * 100 * BYTES_PER_PIXEL)  # two images' worth
    assert not engine.run(plans, job, lambda r: results.append(r.status))
    assert results == ["done"] * 6
    assert seg.calls and max(seg.calls) <= 2, f"batches of {seg.calls}: over the budget"


def _in_forked_child(probe: Callable[[], dict[str, Any]], timeout: float = 120) -> dict[str, Any]:
    """``probe()`` run in a forked child of this process: a process of its own (its own peak
    RSS and address-space limit) with segcli, torch and torchvision already imported.
    Returns probe's result; its exception fails the test with the child's traceback."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: whatever happens, it never returns into pytest
        try:
            try:
                torch.set_num_threads(1)  # OpenMP's thread pool does not survive a fork
                reply = {"result": probe()}
            except BaseException:
                reply = {"error": traceback.format_exc()}
            with os.fdopen(write_end, "w") as pipe:
                pipe.write(json.dumps(reply))
        finally:
            os._exit(0)
    os.close(write_end)
    try:
        with os.fdopen(read_end) as pipe:
            if not select.select([pipe], [], [], timeout)[0]:
                os.kill(pid, signal.SIGKILL)
                pytest.fail(f"the child ran past {timeout} s")
            text = pipe.read()
    finally:
        _, status = os.waitpid(pid, 0)
    assert text, f"the child died (wait status {status})"
    reply = json.loads(text)
    assert "error" not in reply, reply["error"]
    return dict(reply["result"])


def _memory_probe(ckpt: Path) -> dict[str, Any]:
    import resource  # POSIX only

    def vm() -> int:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
        raise RuntimeError("no VmSize")

    seg = Segmenter("blocks", weights=ckpt, device="cpu")  # the model's default input size
    tiny = Segmenter("blocks", weights=ckpt, device="cpu", settings=Settings(min_size=1, max_size=1))
    seg([np.zeros((384, 512, 3), np.uint8)])
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    limit = vm() + (3 << 30)  # a failure here, not a machine out of memory
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    thin = np.full((1, 100_000, 3), 200, np.uint8)
    cases = [(seg, thin), (seg, thin.reshape(100_000, 1, 3)), (tiny, np.zeros((384, 512, 3), np.uint8))]
    for s, image in cases:
        [inst] = s([image])
        assert inst.image_size == image.shape[:2]
    return {
        "peak_mb": (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) / 1024,
        "shape": list(seg.model_input(thin)[0].shape),
    }


@pytest.mark.skipif(not hasattr(os, "fork") or sys.platform != "linux", reason="fork, /proc")
def test_memory_is_bounded_by_the_model_input(blocks_ckpt: Path) -> None:
    """1x100000, 100000x1 and --min-size 1 --max-size 1 cost what the model sees (issue: 6-10 GB)."""
    probed = _in_forked_child(lambda: _memory_probe(blocks_ckpt))
    assert probed["shape"] == [3, 32, 640]
    assert probed["peak_mb"] < 300, probed


def test_sampled_model_input_equals_torchvision_resize() -> None:
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    for (h, w), (ph, pw), scale in [((300, 400), (300, 400), 0.37), ((3, 2000), (60, 2000), 0.1)]:
        image = random_image(h, w, seed=h)
        x = F.pad(torch.from_numpy(image).permute(2, 0, 1).float() / 255, (0, pw - w, 0, ph - h))
        x = (x - torch.tensor(mean)[:, None, None]) / torch.tensor(std)[:, None, None]
        want = F.interpolate(
            x[None], scale_factor=scale, mode="bilinear", recompute_scale_factor=True, align_corners=False
        )[0]
        got = sampled_model_input(image, (ph, pw), (want.shape[-2], want.shape[-1]), mean, std)
        assert got.shape == want.shape and float((got - want).abs().max()) < 1e-3


def _forged_jpeg(width: int, height: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(random_image(64, 64)).save(buf, "JPEG")
    data = bytearray(buf.getvalue())
    struct.pack_into(">HH", data, data.index(b"\xff\xc0") + 5, height, width)
    return bytes(data)


def test_forged_jpeg_header_is_an_error_not_a_grey_image(tmp_path: Path) -> None:
    forged = tmp_path / "forged.jpg"
    forged.write_bytes(_forged_jpeg(12000, 12000))  # 4 KB of data "holding" 144 MP
    with pytest.raises(SegcliError, match=r"forged\.jpg: truncated or forged JPEG \(\d+ bytes cannot hold"):
        read_image(forged)
    for progressive in (False, True):  # the cheapest real JPEG, one grey, still reads
        grey = tmp_path / f"grey{progressive}.jpg"
        Image.new("L", (3000, 2000), 128).save(grey, optimize=True, progressive=progressive)
        assert read_image(grey).size == (2000, 3000)


def test_pillow_keeps_its_pixel_limit_for_other_code(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """segcli reads what --max-pixels allows, without lifting Pillow's guard for the whole process.

    Pillow's limit is lowered to 1,000 pixels here (its errors start at twice the limit), so
    a 20,000-pixel image stands for a 200 MP one: the same refusal, without 200 MP of work."""
    assert Image.MAX_IMAGE_PIXELS is not None and Image.MAX_IMAGE_PIXELS < 200_000_000, "as segcli left it"
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    big = tmp_path / "big.png"
    Image.new("1", (200, 100), 1).save(big)  # over Pillow's error limit (2 x 1,000)
    with pytest.raises(Image.DecompressionBombError):
        Image.open(big)
    assert read_image(big, max_pixels=None).size == (100, 200)
    assert Image.MAX_IMAGE_PIXELS == 1000, "the guard is back for other code"
    with pytest.raises(Image.DecompressionBombError):
        Image.open(big)


# --------------------------------------------------------------------------- 17: run.json truth
def test_summary_says_done_with_failures(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_images(tmp_path / "in", {**WIDTHS, "e.png": 14})
    use_fake_in_cli(monkeypatch, fail_on={12: RuntimeError("boom")})
    result = runner.invoke(app, ["batch", str(tmp_path / "in"), "-o", str(tmp_path / "out")])
    assert result.exit_code == 1
    assert "segcli batch: done with 1 failure" in result.stdout
    run = json.loads((tmp_path / "out" / "run.json").read_text())
    assert run["status"] == "done_with_failures" and run["counts"]["total"]["failed"] == 1


def test_sampled_path_agrees_with_torchvision_path_and_explain_refuses_it(
    blocks_ckpt: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import segcli.inference.segmenter
    from segcli.figures.explain import explain
    from segcli.inference.segmenter import Segmenter

    seg = Segmenter("blocks", weights=blocks_ckpt, device="cpu", settings=Settings(min_size=64, max_size=96))
    image = random_image(90, 120, seed=5)
    full, size = seg.model_input(image)
    monkeypatch.setattr(segcli.inference.segmenter, "SAMPLED_INPUT_PIXELS", 100)
    sampled, sampled_size = seg.model_input(image)
    assert size == sampled_size == (90, 120) and sampled.shape == full.shape
    assert float((sampled - full).abs().max()) < 1e-3
    with pytest.raises(SegcliError, match=r"explain records torchvision's own preprocessing.*120x90"):
        explain(seg, image)
