"""Videos that used to stop a whole run: timestamp gaps the muxer cannot store, PCM audio in
AVI/MKV, frames over --max-pixels or the memory budget, several video streams. One bad video
fails alone; memory is bounded by bytes, as for images."""

from __future__ import annotations

import json
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest

import segcli.io.video
import segcli.runs.video
from segcli.core.errors import SegcliError
from segcli.io.video import MAX_GAP_S, probe_video, read_frames
from segcli.runs.batch import BatchOptions, run_batch
from segcli.runs.engines.local import BYTES_PER_PIXEL
from segcli.runs.engines.ray import RayEngine
from segcli.runs.video import VideoOptions, segment_video, video_output_paths
from tests.fakes import FakeSegmenter, write_images
from tests.ray_fakes import FakeSpec

TB = Fraction(1, 1000)


def marked(n: int, size: tuple[int, int] = (96, 64)) -> list[np.ndarray]:
    w, h = size
    return [np.full((h, w, 3), (i * 20) % 250, np.uint8) for i in range(n)]


def write_video(
    path: Path,
    streams: Sequence[tuple[int, int]] = ((96, 64),),
    *,
    times_ms: Sequence[int] | None = None,
    audio: str | None = None,
    audio_codec: str = "pcm_s16le",
    fmt: str | None = None,
    frames: int = 6,
) -> Path:
    """A clip of ``frames`` frames per video stream (sizes ``streams``; stream k's frames are
    ``k * 100`` grey), each at ``times_ms``, with ``audio`` (a layout) if given."""
    times = list(times_ms) if times_ms is not None else [i * 40 for i in range(frames)]
    fmt = fmt or {".mkv": "matroska", ".avi": "avi", ".mov": "mov", ".mp4": "mp4"}[path.suffix]
    path.parent.mkdir(parents=True, exist_ok=True)
    out = av.open(str(path), "w", format=fmt)
    videos = []
    for w, h in streams:
        stream = out.add_stream("libx264" if fmt != "avi" else "mpeg4", rate=25)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.codec_context.time_base = TB if fmt != "avi" else Fraction(1, 25)  # AVI: constant rate
        videos.append(stream)
    sound = None
    if audio is not None:
        sound = out.add_stream(audio_codec, rate=16000)
        sound.layout = audio
        sound.format = "s16"
    for k, (stream, (w, h)) in enumerate(zip(videos, streams)):
        for t in times:
            image = np.full((h, w, 3), k * 100, np.uint8)
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts, frame.time_base = (t, TB) if fmt != "avi" else (t // 40, Fraction(1, 25))
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    if sound is not None:
        channels = {"mono": 1, "stereo": 2, "5.1": 6}[audio]  # type: ignore[index]
        total = 16000 * (times[-1] + 40) // 1000
        wave = (np.sin(np.arange(total) * 0.2) * 8000).astype(np.int16)
        data = np.repeat(wave[:, None], channels, axis=1).reshape(1, -1)
        chunk = av.AudioFrame.from_ndarray(np.ascontiguousarray(data), format="s16", layout=audio)
        chunk.sample_rate, chunk.pts = 16000, 0
        for packet in sound.encode(chunk):
            out.mux(packet)
        for packet in sound.encode():
            out.mux(packet)
    out.close()
    return path


def _segment(source: Path, out: Path, **options: Any) -> segcli.runs.video.VideoResult:
    return segment_video(
        FakeSegmenter(),
        source,
        video_output_paths(out / source.name, ("overlay", "json")),
        options=VideoOptions(**options),
    )


def _overlay(out: Path, source: Path) -> Path:
    return out / f"{source.name}.overlay.mp4"


# --------------------------------------------------------------------------- timestamp gaps
@pytest.mark.parametrize("gap_s", [MAX_GAP_S + 1, 24_000, 10**6, 2**40, 2**60 / 1000])
def test_a_pause_the_muxer_cannot_store_is_shortened_in_the_overlay(tmp_path: Path, gap_s: float) -> None:
    gap = int(gap_s * 1000)
    source = write_video(tmp_path / "gap.mkv", times_ms=[0, 40, 80 + gap, 120 + gap, 160 + gap])
    result = _segment(source, tmp_path / "out")
    assert result.status == "done", result.reason
    assert result.summary is not None and result.summary["overlay"]["shortened_pauses"] == 1
    lines = (tmp_path / "out" / "gap.mkv.jsonl").read_text().splitlines()
    times = [json.loads(line)["time_s"] for line in lines]
    assert times[:2] == [0.0, 0.04] and times[2] == pytest.approx(0.08 + gap / 1000, rel=1e-9)
    with av.open(str(_overlay(tmp_path / "out", source))) as clip:
        pts = [float(f.time) for f in clip.decode(video=0)]
    assert len(pts) == 5 and pts[-1] < 1.0, pts  # the pause became one frame


def test_pauses_the_muxer_can_store_keep_their_timing(tmp_path: Path) -> None:
    source = write_video(tmp_path / "hour.mkv", times_ms=[0, 40, 3_000_000, 3_000_040])
    result = _segment(source, tmp_path / "out")
    assert result.status == "done" and result.summary["overlay"]["shortened_pauses"] == 0  # type: ignore[index]
    with av.open(str(_overlay(tmp_path / "out", source))) as clip:
        pts = [round(float(f.time), 2) for f in clip.decode(video=0)]
    assert pts == [0.0, 0.04, 3000.0, 3000.04]


class _OtherEngine:
    """Any engine: videos never go through it (they run in the driver), so they must fail alone
    on every engine."""

    name = "other"

    def run(self, plans: Sequence[Any], job: Any, emit: Any) -> bool:
        from segcli.runs.engines.base import process_plans

        for result in process_plans(FakeSegmenter(), plans, job):
            emit(result)
        return False

    def describe(self) -> dict[str, Any]:
        return {"name": self.name}


@pytest.mark.parametrize("engine", ["local", "ray", "other"])
@pytest.mark.parametrize("where", ["commit", "write", "segment_video", "probe_video"])
def test_a_video_the_muxer_refuses_fails_alone_on_every_engine(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, engine: str, where: str
) -> None:
    root = tmp_path / "in"
    if engine != "ray":
        write_images(root, {"a.png": 10})
    write_video(root / "bad.mkv")
    write_video(root / "good.mkv")
    error = av.error.PatchWelcomeError(1163346256, "Not yet implemented in FFmpeg, patches welcome")

    def refuse(original: Any) -> Any:
        def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
            target = getattr(self, "path", None) or (args[0] if args else None)
            if "bad.mkv" in str(target):
                raise error
            return original(self, *args, **kwargs)

        return wrapper

    if where == "commit":
        monkeypatch.setattr(segcli.io.video.VideoWriter, "commit", refuse(segcli.io.video.VideoWriter.commit))
    elif where == "write":
        monkeypatch.setattr(segcli.io.video.VideoWriter, "write", refuse(segcli.io.video.VideoWriter.write))
    else:
        real = getattr(segcli.runs.video, where)

        def broken(*args: Any, **kwargs: Any) -> Any:
            source = args[1] if where == "segment_video" else args[0]
            if "bad.mkv" in str(source):
                raise RuntimeError("a bug the clip found")
            return real(*args, **kwargs)

        monkeypatch.setattr(segcli.runs.video, where, broken)
    make = {
        "local": None,
        "ray": lambda seg: RayEngine(FakeSpec()),  # no images: Ray is never started
        "other": lambda seg: _OtherEngine(),
    }[engine]
    out = tmp_path / "out"
    outcome = run_batch(root, out, FakeSegmenter, engine=make)
    run = json.loads((out / "run.json").read_text())
    assert run["status"] == "done_with_failures" and outcome.exit_code == 1
    assert [f["path"] for f in run["failed"]] == [str(root / "bad.mkv")]
    assert "bad.mkv" in run["failed"][0]["reason"] and "\n" not in run["failed"][0]["reason"]
    assert (out / "good.mkv.json").is_file() and not (out / "bad.mkv.json").exists()
    assert not [p for p in out.iterdir() if p.name.endswith(".part")]
    monkeypatch.undo()
    again = run_batch(root, out, FakeSegmenter, engine=make)  # a rerun tries it again, and does it
    assert again.exit_code == 0 and (out / "bad.mkv.json").is_file()


# --------------------------------------------------------------------------- audio
@pytest.mark.parametrize("suffix", [".avi", ".mkv", ".mov"])
@pytest.mark.parametrize(("layout", "channels"), [("mono", 1), ("stereo", 2), ("5.1", 2)])
def test_pcm_audio_is_reencoded_to_aac(tmp_path: Path, suffix: str, layout: str, channels: int) -> None:
    source = write_video(tmp_path / f"pcm{suffix}", audio=layout)
    result = _segment(source, tmp_path / "out")
    assert result.status == "done", result.reason
    assert result.summary["overlay"]["audio"].startswith("re-encoded to AAC")  # type: ignore[index]
    with av.open(str(_overlay(tmp_path / "out", source))) as clip:
        sound = clip.streams.audio[0]
        assert (sound.codec_context.name, sound.codec_context.channels) == ("aac", channels)
        assert sum(f.samples for f in clip.decode(sound)) > 0


def test_audio_that_cannot_be_encoded_or_decoded_is_dropped_with_a_note(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = write_video(tmp_path / "pcm.mkv", audio="stereo")
    monkeypatch.setattr(segcli.io.video, "_aac_problem", lambda rate, layout: "no such encoder")
    result = _segment(source, tmp_path / "a")
    assert result.status == "done"
    assert result.summary["overlay"]["audio"] == (  # type: ignore[index]
        "audio dropped: cannot encode pcm_s16le as AAC (no such encoder)"
    )
    monkeypatch.undo()

    def broken(self: Any, packet: Any) -> None:
        raise av.error.InvalidDataError(1094995529, "Invalid data found when processing input")

    monkeypatch.setattr(segcli.io.video.VideoWriter, "_transcode", broken)
    result = _segment(source, tmp_path / "b")
    assert result.status == "done" and result.processed == 6
    assert result.summary["overlay"]["audio"].startswith("audio stopped after")  # type: ignore[index]


# --------------------------------------------------------------------------- pixels and bytes
@pytest.mark.parametrize("limit", [1, 96 * 64 - 1, 1000])
def test_frames_over_max_pixels_fail_the_video_before_decoding(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, limit: int
) -> None:
    source = write_video(tmp_path / "big.mkv")
    monkeypatch.setattr(segcli.runs.video, "read_frames", lambda *a, **k: pytest.fail("decoded"))
    result = _segment(source, tmp_path / "out", max_pixels=limit)
    assert result.status == "failed" and "over the" in result.reason and "--max-pixels" in result.reason
    monkeypatch.undo()
    with pytest.raises(SegcliError, match="--max-pixels"):
        next(read_frames(source, max_pixels=limit))  # a frame larger than declared is caught too
    assert _segment(source, tmp_path / "ok", max_pixels=96 * 64).status == "done"


def test_batch_applies_max_pixels_to_videos(tmp_path: Path) -> None:
    root = tmp_path / "in"
    write_video(root / "big.mkv", [(96, 64)])
    write_video(root / "small.mkv", [(32, 24)])
    outcome = run_batch(root, tmp_path / "out", FakeSegmenter, options=BatchOptions(max_pixels=32 * 24))
    run = outcome.summary
    assert [f["path"] for f in run["failed"]] == [str(root / "big.mkv")]
    assert "--max-pixels" in run["failed"][0]["reason"]


@pytest.mark.parametrize(("frames_allowed", "batch_size"), [(1, 1), (1, 4), (2, 3), (0, 2)])
def test_frames_in_flight_are_bounded_by_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, frames_allowed: int, batch_size: int
) -> None:
    """The budget holds ``frames_allowed`` frames (0: less than one, which is still allowed
    alone); batches shrink to fit instead of waiting for frames that cannot come."""
    source = write_video(tmp_path / "clip.mkv", frames=12)
    frame_cost = BYTES_PER_PIXEL * 96 * 64
    peaks: list[int] = []
    real = segcli.runs.video._ByteBudget.adjust

    def adjust(self: Any, n: int) -> None:
        real(self, n)
        peaks.append(self.held)

    real_acquire = segcli.runs.video._ByteBudget.acquire

    def acquire(self: Any, n: int, stop: Any) -> bool:
        ok = real_acquire(self, n, stop)
        peaks.append(self.held)
        return ok

    monkeypatch.setattr(segcli.runs.video._ByteBudget, "adjust", adjust)
    monkeypatch.setattr(segcli.runs.video._ByteBudget, "acquire", acquire)
    budget = max(frames_allowed * frame_cost, 1)
    result = _segment(source, tmp_path / "out", memory_budget=budget, batch_size=batch_size)
    assert result.status == "done" and result.processed == 12
    assert max(peaks) <= max(frames_allowed, 1) * frame_cost
    assert peaks[-1] == 0, "every frame's bytes are released once written"


# --------------------------------------------------------------------------- streams
@pytest.mark.parametrize(
    ("streams", "main"),
    [
        (((32, 24), (96, 64)), 1),  # a preview stream first, the camera's second
        (((96, 64), (32, 24)), 0),
        (((48, 32), (96, 64), (64, 48)), 1),
        (((96, 64), (96, 64)), 0),  # equal: the first
    ],
)
def test_the_largest_video_stream_is_the_one_segmented(
    tmp_path: Path, streams: tuple[tuple[int, int], ...], main: int
) -> None:
    source = write_video(tmp_path / "two.mkv", streams)
    info = probe_video(source)
    assert (info.width, info.height) == streams[main]
    frames = list(read_frames(source))
    assert len(frames) == 6 and frames[0].pixels.shape[:2] == streams[main][::-1]
    assert abs(int(frames[0].pixels.mean()) - main * 100) <= 2, "that stream's own pixels"
    result = _segment(source, tmp_path / "out")
    assert result.status == "done" and result.summary["video"]["width"] == streams[main][0]  # type: ignore[index]


@pytest.mark.parametrize(
    ("budget", "low"), [(1 << 30, False), (64 * 96 * 64, False), (64 * 96 * 64 - 1, True), (1, True)]
)
def test_frames_too_large_for_the_encoders_lookahead_are_encoded_without_it(
    tmp_path: Path, budget: int, low: bool
) -> None:
    """libx264 holds a dozen frames (lookahead, B-frames): 4 GB above the frame at 8000x8000.
    Where that would pass the memory budget, the overlay is encoded without them."""
    source = write_video(tmp_path / "clip.mkv", frames=8)
    result = _segment(source, tmp_path / "out", memory_budget=budget)
    assert result.status == "done" and result.summary["overlay"]["low_memory"] is low  # type: ignore[index]
    with av.open(str(_overlay(tmp_path / "out", source))) as clip:
        assert sum(1 for _ in clip.decode(video=0)) == 8
