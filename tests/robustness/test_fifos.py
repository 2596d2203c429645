"""FIFOs, sockets and devices named like images or videos, given to predict or listed in
--from-list, are refused at once (never waited on); a stop signal that C code reports as a
file's error is the stop (exit 143 or 130), not that input's failure."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import segcli.runs.video
from segcli.cli import app
from segcli.runs.video import VideoResult
from tests import fake_cli
from tests.conftest import REPO
from tests.fakes import use_fake_in_cli, write_images
from tests.robustness.test_video_hostile import write_video

runner = CliRunner()


def _specials(folder: Path) -> list[Path]:
    """A FIFO (no writer), a socket and a device, each named like a video or an image."""
    folder.mkdir(parents=True, exist_ok=True)
    made = []
    for name in ("fifo.mp4", "fifo.mkv", "fifo.png", "fifo.jpg"):
        os.mkfifo(folder / name)
        made.append(folder / name)
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(folder / "sock.avi"))
    made.append(folder / "sock.avi")
    for name, device in (
        ("zero.mov", "/dev/zero"),
        ("null.webm", "/dev/null"),
        ("random.png", "/dev/urandom"),
    ):
        (folder / name).symlink_to(device)
        made.append(folder / name)
    return made


def _run(args: list[str], timeout: float = 120) -> tuple[subprocess.CompletedProcess[str], float]:
    started = time.monotonic()
    done = subprocess.run(
        [*fake_cli.COMMAND, *args],
        cwd=REPO,
        env=fake_cli.environment(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return done, time.monotonic() - started


def test_predict_refuses_special_files_at_once(tmp_path: Path) -> None:
    specials = _specials(tmp_path / "in")
    clip = write_video(tmp_path / "in" / "good.mkv")
    done, seconds = _run(["predict", *map(str, specials), str(clip), "-o", str(tmp_path / "out"), "-q"])
    assert done.returncode == 1, done.stderr
    failed = [line for line in done.stderr.splitlines() if line.startswith("failed:")]
    assert len(failed) == len(specials), done.stderr
    for path in specials:
        line = next(line for line in failed if f" {path}:" in line)
        assert "is a FIFO" in line or "device or socket" in line, line
    assert (tmp_path / "out" / "good.mkv.json").is_file(), "the good clip is done"
    assert seconds < 60


def test_from_list_refuses_special_files_at_once(tmp_path: Path) -> None:
    specials = _specials(tmp_path / "in")
    write_images(tmp_path / "in", {"a.png": 10})
    listing = tmp_path / "list.txt"
    listing.write_text("".join(f"{p}\n" for p in [*specials, tmp_path / "in" / "a.png"]))
    out = tmp_path / "out"
    done, seconds = _run(["batch", "--from-list", str(listing), "-o", str(out), "-q"])
    assert done.returncode == 1, done.stderr
    run = json.loads((out / "run.json").read_text())
    assert run["status"] == "done_with_failures" and run["counts"]["done"] == 1
    reasons = {f["path"]: f["reason"] for f in run["failed"]}
    assert sorted(reasons) == sorted(map(str, specials))
    assert all("is a FIFO" in r or "device or socket" in r for r in reasons.values()), reasons
    assert seconds < 60


def test_sigterm_while_waiting_for_a_list_exits_143(tmp_path: Path) -> None:
    """``--from-list <(slow command)``: waiting on the list is legitimate; SIGTERM then stops."""
    listing = tmp_path / "list.fifo"
    os.mkfifo(listing)
    proc = subprocess.Popen(
        [*fake_cli.COMMAND, "batch", "--from-list", str(listing), "-o", str(tmp_path / "out")],
        cwd=REPO,
        env=fake_cli.environment(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        time.sleep(3)  # start-up, then the wait on the list
        assert proc.poll() is None
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 143, stderr
    assert "failed" not in stderr


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
@pytest.mark.parametrize("command", ["predict", "batch"])
def test_a_signal_ffmpeg_reports_as_a_file_error_is_the_stop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, signum: int, command: str
) -> None:
    """What PyAV does on a FIFO, and on any open interrupted by a signal: the KeyboardInterrupt
    is lost and the open fails with EINTR, "Interrupted system call"."""
    first = write_video(tmp_path / "in" / "a.mkv")
    write_video(tmp_path / "in" / "b.mkv")
    use_fake_in_cli(monkeypatch)

    def interrupted(segmenter: Any, source: Path, *args: Any, **kwargs: Any) -> VideoResult:
        try:
            os.kill(os.getpid(), signum)
            time.sleep(5)  # the handler runs here
        except KeyboardInterrupt:
            pass  # swallowed, as inside PyAV
        return VideoResult(
            source, "failed", reason=f"{source}: not a video ([Errno 4] Interrupted system call)"
        )

    monkeypatch.setattr(segcli.runs.video, "segment_video", interrupted)
    out = tmp_path / "out"
    args = [str(first)] if command == "predict" else [str(tmp_path / "in")]
    result = runner.invoke(app, [command, *args, "-o", str(out)])
    assert result.exit_code == (143 if signum == signal.SIGTERM else 130), result.output
    assert "failed:" not in result.stderr and "Interrupted system call" not in result.output
    if command == "batch":
        run = json.loads((out / "run.json").read_text())
        assert run["status"] == "interrupted" and run["failed"] == []


def test_an_earlier_commands_signal_is_not_a_later_runs_stop() -> None:
    """A SIGTERM that stopped one command (in process: a test, a library caller) must not make
    a later library run take its videos' failures for a stop."""
    from segcli.core.signals import stop_on_sigterm, stop_requested, terminated

    with pytest.raises(KeyboardInterrupt), stop_on_sigterm():
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)
    assert terminated(), "the last block's signal is still known (for its exit code)"
    assert not stop_requested(), "outside a block, nothing is being stopped"
    with stop_on_sigterm():
        assert not stop_requested(), "a new block starts clean"
