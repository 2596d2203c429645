"""Every command that writes into a folder coexists with, or is refused by, another one
writing there: predict/compare/explain share the folder, batch/eval/demo own it."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from segcli.cli import app
from segcli.core.errors import SegcliError
from segcli.figures.compare.run import write_figure
from segcli.io.files import temp_name
from segcli.io.locks import output_lock
from segcli.runs.batch import run_batch
from tests import fake_cli
from tests.conftest import REPO
from tests.fakes import FakeSegmenter, use_fake_in_cli, write_images

runner = CliRunner()
HOLDER = (
    "import sys; from pathlib import Path; from segcli.io.locks import output_lock\n"
    "with output_lock(Path(sys.argv[1]), shared=sys.argv[2] == 'shared'):\n"
    "    print('held', flush=True); sys.stdin.read()\n"
)


@contextmanager
def _held(folder: Path, mode: str) -> Iterator[subprocess.Popen[str]]:
    """Another process holding ``folder``'s lock in ``mode`` for the block."""
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(folder), mode],
        cwd=REPO,
        env=fake_cli.environment(),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
        yield proc
    finally:
        proc.kill()
        proc.communicate(timeout=60)


def _busy(folder: Path, pid: int) -> str:
    return (
        f"output folder {folder} is in use by another segcli run (pid {pid} on {socket.gethostname()}); "
        "wait for it to finish or choose another --output"
    )


def test_shared_holders_coexist_and_exclude_an_owner(tmp_path: Path) -> None:
    with _held(tmp_path, "shared") as other:
        with output_lock(tmp_path, shared=True):  # predict beside predict
            pass
        with pytest.raises(SegcliError) as refused, output_lock(tmp_path):
            pass
        assert str(refused.value) == _busy(tmp_path, other.pid)
    with _held(tmp_path, "exclusive") as other:
        for shared in (True, False):
            with pytest.raises(SegcliError) as refused, output_lock(tmp_path, shared=shared):
                pass
            assert str(refused.value) == _busy(tmp_path, other.pid)
    with output_lock(tmp_path):  # the holders are gone: the kernel released their locks
        pass


def test_the_lock_is_reentrant_in_a_thread_not_across_threads(tmp_path: Path) -> None:
    with output_lock(tmp_path):
        with output_lock(tmp_path), output_lock(tmp_path, shared=True):  # eval around its batch
            pass
        errors: list[BaseException] = []

        def other_thread() -> None:
            try:
                with output_lock(tmp_path, shared=True):
                    pass
            except SegcliError as exc:
                errors.append(exc)

        thread = threading.Thread(target=other_thread)
        thread.start()
        thread.join()
        assert len(errors) == 1 and "in use by another segcli run" in str(errors[0])
    shared_then_owner = pytest.raises(SegcliError, match="cannot also be taken over")
    with output_lock(tmp_path, shared=True), shared_then_owner, output_lock(tmp_path):
        pass
    with output_lock(tmp_path):  # every level was released
        pass


def test_library_writers_take_the_lock(tmp_path: Path) -> None:
    write_images(tmp_path / "in", {"a.png": 10})
    out = tmp_path / "out"
    with _held(out, "shared") as other:  # a predict is writing there
        with pytest.raises(SegcliError) as refused:
            run_batch(tmp_path / "in", out, FakeSegmenter)
        assert str(refused.value) == _busy(out, other.pid)
    with _held(out, "exclusive") as other:  # a batch is writing there
        with pytest.raises(SegcliError):
            write_figure(out / "a.compare.png", out / "a.compare.json", np.zeros((4, 4, 3), np.uint8), {})
        assert not (out / "a.compare.json").exists()
        from segcli.demo import run_demo

        with pytest.raises(SegcliError):
            run_demo(out, segmenter=FakeSegmenter())
        from segcli.evaluation.evaluate import run_eval

        gt = tmp_path / "gt.json"
        gt.write_text(json.dumps({"images": [], "annotations": [], "categories": []}))
        with pytest.raises(SegcliError):
            run_eval(gt, out, predictions=gt)
        assert not (out / "eval.json").exists()
        from segcli.train import TrainOptions, run_train

        with pytest.raises(SegcliError, match="in use by another segcli run"):
            run_train(TrainOptions(data="scenes:blocks", output=out, device="cpu"))
        assert not (out / "train.json").exists()


def _start(args: list[str], tmp_path: Path, name: str) -> tuple[subprocess.Popen[bytes], Path]:
    stalled = tmp_path / f"{name}.stalled"
    proc = subprocess.Popen(
        [*fake_cli.COMMAND, *args, "--quiet"],
        cwd=REPO,
        env=fake_cli.environment(stall_after=0, stalled=stalled),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 60
    while not stalled.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert stalled.exists() and proc.poll() is None, "the command did not reach its forward pass"
    return proc, stalled


def test_commands_into_one_folder_coexist_or_refuse(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_images(tmp_path / "in", {"a.png": 10, "b.png": 11})
    image = tmp_path / "in" / "a.png"
    out = tmp_path / "out"
    use_fake_in_cli(monkeypatch)
    gt = tmp_path / "gt.json"
    gt.write_text(json.dumps({"images": [], "annotations": [], "categories": []}))

    # a predict in its forward pass: its temp files must survive anything started beside it
    predict, _ = _start(["predict", str(image), "-o", str(out), "--save", "json"], tmp_path, "predict")
    try:
        in_flight = out / temp_name("a.png.json")
        in_flight.write_text("{")
        batch = runner.invoke(app, ["batch", str(tmp_path / "in"), "-o", str(out), "--quiet"])
        assert batch.exit_code == 1 and batch.stderr.strip() == "error: " + _busy(out, predict.pid)
        evaluated = runner.invoke(app, ["eval", str(gt), "--predictions", str(gt), "-o", str(out)])
        assert evaluated.exit_code == 1 and "in use by another segcli run" in evaluated.stderr
        assert in_flight.exists() and not (out / "run.json").exists() and not (out / "eval.json").exists()
        beside = runner.invoke(app, ["predict", str(tmp_path / "in" / "b.png"), "-o", str(out), "-q"])
        assert beside.exit_code == 0, beside.output  # predicts coexist
        compared = runner.invoke(app, ["compare", "semantic-vs-instance", str(image), "-o", str(out), "-q"])
        assert compared.exit_code == 0, compared.output
        assert (out / "b.png.json").is_file() and (out / "a.png.compare.json").is_file()
    finally:
        predict.kill()
        predict.communicate(timeout=60)

    # a batch in its forward pass: nothing else may write there
    batch_proc, _ = _start(["batch", str(tmp_path / "in"), "-o", str(out)], tmp_path, "batch")
    try:
        before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file() and p.name != ".segcli.lock"}
        for args in (
            ["predict", str(image), "-o", str(out)],
            ["compare", "semantic-vs-instance", str(image), "-o", str(out)],
            ["compare", "proposals", str(image), "-o", str(out)],
            ["explain", str(image), "-o", str(out)],
            ["eval", str(gt), "--predictions", str(gt), "-o", str(out)],
        ):
            refused = runner.invoke(app, args)
            assert refused.exit_code == 1, (args, refused.output)
            assert refused.stderr.strip() == "error: " + _busy(out, batch_proc.pid), args
        after = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file() and p.name != ".segcli.lock"}
        assert after == before, "nothing written by the refused commands"
    finally:
        batch_proc.kill()
        batch_proc.communicate(timeout=60)
    resumed = runner.invoke(app, ["batch", str(tmp_path / "in"), "-o", str(out), "--quiet", "--overwrite"])
    assert resumed.exit_code == 0, resumed.output
