"""Video: reading (rotation, timestamps, selection, damage), writing (H.264, audio), the
tracker (from literal Instances), and the streaming runner end to end on moving blocks."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator, Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest

from segcli.core.errors import SegcliError
from segcli.core.instances import Instances
from segcli.core.settings import Settings
from segcli.io.video import (
    FrameSelection,
    VideoDecodeError,
    VideoWriter,
    pick_encoder,
    probe_video,
    read_frames,
)
from segcli.models.blocks.motion import ClipFrame, moving_blocks
from segcli.runs.track import (
    UNTRACKED,
    Tracker,
    TrackerConfig,
    TrackLog,
    box_iou,
    crop_iou,
    linear_assignment,
)
from segcli.runs.video import VideoOptions, segment_video, video_output_paths

FPS = 25


# --------------------------------------------------------------------------- helpers
def write_clip(
    path: Path,
    frames: Sequence[np.ndarray],
    *,
    times_ms: Sequence[int] | None = None,
    rotation: int = 0,
    audio: bool = False,
    faststart: bool = True,
) -> Path:
    """Encode RGB frames with PyAV directly (independent of segcli's writer)."""
    h, w = frames[0].shape[:2]
    times = list(times_ms) if times_ms is not None else [round(i * 1000 / FPS) for i in range(len(frames))]
    out = av.open(str(path), "w", format="mp4", options={"movflags": "+faststart"} if faststart else {})
    stream = out.add_stream("libx264", rate=FPS)
    stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
    stream.codec_context.time_base = Fraction(1, 1000)
    stream.codec_context.options = {"crf": "10", "preset": "ultrafast"}
    if rotation:
        stream.set_display_rotation(rotation)
    sound = out.add_stream("aac", rate=16000) if audio else None
    if sound is not None:
        sound.layout = "mono"
    for image, t in zip(frames, times):
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
        frame.pts, frame.time_base = t, Fraction(1, 1000)
        for packet in stream.encode(frame):
            out.mux(packet)
    for packet in stream.encode():
        out.mux(packet)
    if sound is not None:
        total, pos = 16000 * (times[-1] + 40) // 1000, 0
        while pos < total:
            k = min(1024, total - pos)
            wave = np.sin(np.arange(pos, pos + k) * 2 * np.pi * 440 / 16000).astype(np.float32)[None] * 0.3
            chunk = av.AudioFrame.from_ndarray(wave, format="fltp", layout="mono")
            chunk.sample_rate, chunk.pts = 16000, pos
            for packet in sound.encode(chunk):
                out.mux(packet)
            pos += k
        for packet in sound.encode():
            out.mux(packet)
    out.close()
    return path


def marked_frames(n: int, size: tuple[int, int] = (96, 64)) -> list[np.ndarray]:
    """Frames with a white square at the top-left corner and the frame number in green."""
    w, h = size
    frames = []
    for i in range(n):
        image = np.zeros((h, w, 3), np.uint8)
        image[..., 1] = np.uint8(min(i * 8, 127))
        image[:16, :16] = 255
        frames.append(image)
    return frames


def count_frames(path: Path) -> int:
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


def inst(
    boxes: Sequence[Sequence[float]],
    scores: Sequence[float],
    classes: Sequence[int],
    size: tuple[int, int] = (200, 300),
    masks: Sequence[np.ndarray] | None = None,
) -> Instances:
    """Literal instances; masks default to the full box."""
    names = ("__background__", "cube", "sphere")
    if masks is None:
        full = []
        for x0, y0, x1, y1 in boxes:
            m = np.zeros(size, bool)
            m[int(y0) : int(y1), int(x0) : int(x1)] = True
            full.append(m)
        masks = full
    if not boxes:
        return Instances.empty(size)
    return Instances.from_full_masks(
        masks, scores=scores, class_ids=classes, class_names=[names[c] for c in classes], boxes=boxes
    )


class FakeSegmenter:
    """Stands in for ``Segmenter`` where the model does not matter: one box per frame."""

    def __init__(self, fail_after: int | None = None) -> None:
        self.settings = Settings(score_threshold=0.5)
        self.calls = 0
        self.fail_after = fail_after

    def model_info(self) -> dict[str, Any]:
        return {"name": "fake"}

    def __call__(self, images: Sequence[np.ndarray]) -> list[Instances]:
        self.calls += 1
        if self.fail_after is not None and self.calls > self.fail_after:
            raise RuntimeError("boom")
        h, w = images[0].shape[:2]
        return [inst([[2, 2, 20, 20]], [0.9], [1], size=(h, w)) for _ in images]


# --------------------------------------------------------------------------- tracker
def test_linear_assignment_is_optimal() -> None:
    rng = np.random.default_rng(0)
    for _ in range(200):
        n, m = (int(v) for v in rng.integers(1, 6, 2))
        cost = rng.random((n, m))
        pairs = linear_assignment(cost)
        assert len(pairs) == min(n, m)
        assert len({r for r, _ in pairs}) == len({c for _, c in pairs}) == len(pairs)
        if n <= m:
            best = min(sum(cost[i, p[i]] for i in range(n)) for p in itertools.permutations(range(m), n))
        else:
            best = min(sum(cost[p[j], j] for j in range(m)) for p in itertools.permutations(range(n), m))
        assert sum(cost[r, c] for r, c in pairs) == pytest.approx(best)
    assert linear_assignment(np.zeros((0, 3))) == []


def test_iou_helpers() -> None:
    iou = box_iou(np.array([[0, 0, 10, 10]]), np.array([[0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30]]))
    assert iou[0].tolist() == pytest.approx([1.0, 1 / 3, 0.0])
    a = np.ones((4, 4), bool)
    assert crop_iou(a, (0, 0, 4, 4), a, (2, 0, 6, 4)) == pytest.approx(8 / 24)
    assert crop_iou(a, (0, 0, 4, 4), a, (10, 10, 14, 14)) == 0.0


def test_tracker_keeps_ids_of_moving_objects_and_never_reuses_ids() -> None:
    tracker = Tracker()
    seen = []
    for step in range(10):
        x = 10 + 12 * step  # fast: consecutive boxes overlap by only 40 %
        frame = inst([[x, 20, x + 20, 40], [250 - x, 100, 270 - x, 120]], [0.9, 0.8], [1, 1])
        # detections come in a different order every other frame
        order = [1, 0] if step % 2 else [0, 1]
        ids = tracker.update(frame.select(order))
        seen.append(dict(zip(order, ids.tolist())))
    assert all(s == seen[0] for s in seen)
    assert sorted(seen[0].values()) == [0, 1]
    # a new object gets a fresh id, never an old one
    ids = tracker.update(inst([[10, 150, 30, 170]], [0.9], [1]))
    assert ids.tolist() == [2]


def test_tracker_is_class_consistent() -> None:
    tracker = Tracker()
    [a] = tracker.update(inst([[10, 10, 50, 50]], [0.9], [1]))
    [b] = tracker.update(inst([[10, 10, 50, 50]], [0.9], [2]))  # same place, other class
    assert a != b
    [c] = tracker.update(inst([[11, 10, 51, 50]], [0.9], [1]))  # the cube is back within the buffer
    assert c == a


def test_low_scores_continue_tracks_but_start_none() -> None:
    tracker = Tracker(TrackerConfig(high_score=0.5, low_score=0.1))
    [a] = tracker.update(inst([[10, 10, 50, 50]], [0.9], [1]))
    ids = tracker.update(inst([[12, 10, 52, 50], [100, 100, 140, 140]], [0.3, 0.3], [1, 1]))
    assert ids.tolist() == [a, UNTRACKED]  # continues the track; the lone low one starts nothing
    ids = tracker.update(inst([[14, 10, 54, 50]], [0.05], [1]))  # below low_score: ignored
    assert ids.tolist() == [UNTRACKED]


def test_lost_tracks_come_back_within_the_buffer_only() -> None:
    tracker = Tracker(TrackerConfig(max_lost=3))
    empty = inst([], [], [])
    [a] = tracker.update(inst([[10, 10, 50, 50]], [0.9], [1]))
    for _ in range(3):
        tracker.update(empty)
    [b] = tracker.update(inst([[10, 10, 50, 50]], [0.9], [1]))
    assert b == a
    for _ in range(4):
        tracker.update(empty)
    assert tracker.live_tracks == 0
    [c] = tracker.update(inst([[10, 10, 50, 50]], [0.9], [1]))
    assert c != a


def test_velocity_predicts_through_a_gap() -> None:
    tracker = Tracker()
    ids = [tracker.update(inst([[x, 10, x + 20, 30]], [0.9], [1]))[0] for x in (0, 10, 20)]
    tracker.update(inst([], [], []))  # missed once; the object moves on at 10 px per frame
    [back] = tracker.update(inst([[40, 10, 60, 30]], [0.9], [1]))  # no overlap with the last box
    assert ids == [ids[0]] * 3 and back == ids[0]


def test_mask_iou_breaks_ties_between_equal_boxes() -> None:
    size = (60, 60)
    left = np.zeros(size, bool)
    left[10:50, 10:30] = True
    right = np.zeros(size, bool)
    right[10:50, 30:50] = True
    box = [10, 10, 50, 50]  # both objects have this box (e.g. interleaved shapes)
    tracker = Tracker()
    first = tracker.update(inst([box, box], [0.9, 0.9], [1, 1], size=size, masks=[left, right]))
    for _ in range(3):  # whatever the order, each mask keeps its id
        swapped = tracker.update(inst([box, box], [0.9, 0.9], [1, 1], size=size, masks=[right, left]))
        assert swapped.tolist() == first[::-1].tolist()
        again = tracker.update(inst([box, box], [0.9, 0.9], [1, 1], size=size, masks=[left, right]))
        assert again.tolist() == first.tolist()


def test_track_log_summarises_tracks() -> None:
    log = TrackLog()
    log.add(0, inst([[0, 0, 10, 10], [20, 20, 30, 30]], [0.8, 0.4], [1, 2]), np.array([0, UNTRACKED]))
    log.add(2, inst([[0, 0, 10, 10]], [0.6], [1]), np.array([0]))
    assert log.entries() == [
        {"id": 0, "label": "cube", "first_frame": 0, "last_frame": 2, "frames": 2, "mean_score": 0.7}
    ]


def test_a_track_keeps_its_colour_and_label_in_the_overlay() -> None:
    from segcli.draw.annotators import OverlayAnnotator, instance_color
    from segcli.runs.video import UNTRACKED_COLOR, draw_frame, track_colors, track_labels

    assert track_colors(np.array([5, UNTRACKED, 0])) == [
        instance_color(5),
        UNTRACKED_COLOR,
        instance_color(0),
    ]
    frame = inst([[10, 10, 60, 60], [100, 100, 150, 150]], [0.9, 0.8], [1, 2])
    assert track_labels(frame, np.array([7, UNTRACKED])).class_names == ("cube #7", "sphere")
    image = np.zeros((200, 300, 3), np.uint8)
    # whatever its index in the frame, track 7 is drawn in track 7's colour
    for ids, i in ((np.array([7, 3]), 0), (np.array([3, 7]), 1)):
        out = draw_frame(OverlayAnnotator(), image, frame, ids)
        x0, y0, x1, y1 = (int(v) for v in frame.boxes[i])
        tint = out[(y0 + y1) // 2, (x0 + x1) // 2].astype(int)
        expected = np.array(instance_color(7)) * 0.45
        assert np.abs(tint - expected).max() <= 2


# --------------------------------------------------------------------------- reading and writing
def test_pyav_wheel_encodes_h264() -> None:
    assert pick_encoder() == "libx264"


def test_probe_and_read_plain_clip(tmp_path: Path) -> None:
    clip = write_clip(tmp_path / "c.mp4", marked_frames(20))
    info = probe_video(clip)
    assert (info.width, info.height, info.frames, info.rotation) == (96, 64, 20, 0)
    assert info.fps == pytest.approx(25) and info.duration == pytest.approx(0.8)
    frames = list(read_frames(clip))
    assert [f.index for f in frames] == list(range(20))
    assert [f.time_s for f in frames] == pytest.approx([i / 25 for i in range(20)])
    assert frames[0].pixels.shape == (64, 96, 3) and frames[0].pixels[:8, :8].min() > 200


def test_rotation_metadata_gives_upright_frames(tmp_path: Path) -> None:
    # the display matrix says: rotate the coded 96x64 frame 90 degrees counterclockwise
    clip = write_clip(tmp_path / "phone.mp4", marked_frames(6), rotation=90)
    info = probe_video(clip)
    assert (info.width, info.height, info.rotation) == (64, 96, 90)
    first = next(read_frames(clip)).pixels
    assert first.shape == (96, 64, 3)
    # the coded top-left corner is now the bottom-left one
    assert first[-10:, :10].min() > 200 and first[:10, :10].max() < 100


def test_variable_frame_rate_keeps_true_timestamps(tmp_path: Path) -> None:
    times = [0, 20, 100, 120, 300, 310, 500]
    clip = write_clip(tmp_path / "vfr.mp4", marked_frames(len(times)), times_ms=times)
    assert [round(f.time_s * 1000) for f in read_frames(clip)] == times


def test_selection_start_end_stride_max_frames(tmp_path: Path) -> None:
    clip = write_clip(tmp_path / "c.mp4", marked_frames(30))
    picked = list(read_frames(clip, FrameSelection(start=0.3, end=1.0, stride=3)))
    assert [f.index for f in picked] == [8, 11, 14, 17, 20, 23]  # 0.32 s is the first frame at/after 0.3
    assert [f.time_s for f in picked] == pytest.approx([i / 25 for i in (8, 11, 14, 17, 20, 23)])
    assert len(list(read_frames(clip, FrameSelection(max_frames=4)))) == 4
    with pytest.raises(SegcliError, match="--end"):
        FrameSelection(start=2, end=1)
    with pytest.raises(SegcliError, match="--stride"):
        FrameSelection(stride=0)


def test_truncated_clip_keeps_frames_before_the_damage(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    noisy = [rng.integers(0, 256, (64, 96, 3), dtype=np.uint8) for _ in range(30)]  # incompressible
    clip = write_clip(tmp_path / "full.mp4", noisy)
    cut = tmp_path / "cut.mp4"
    data = clip.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    got: list[int] = []
    with pytest.raises(VideoDecodeError) as err:
        got.extend(f.index for f in read_frames(cut))
    assert 5 < err.value.frame < 25
    assert got == list(range(err.value.frame))
    assert f"frame {err.value.frame}" in str(err.value)


def test_mp4_without_index_is_unreadable(tmp_path: Path) -> None:
    clip = write_clip(tmp_path / "plain.mp4", marked_frames(10), faststart=False)  # index at the end
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(clip.read_bytes()[:2000])
    with pytest.raises(SegcliError, match="not a video segcli can read"):
        probe_video(cut)


def test_writer_pads_odd_sizes_copies_audio_and_is_atomic(tmp_path: Path) -> None:
    source = write_clip(tmp_path / "sound.mp4", marked_frames(10), audio=True)
    assert probe_video(source).audio == "aac"
    from segcli.io.video import AudioSource

    out = tmp_path / "o.mp4"
    writer = VideoWriter(out, width=95, height=63, fps=25, audio=AudioSource(source))
    for i in range(10):
        writer.write(np.full((63, 95, 3), i * 10, np.uint8), i / 25)
    assert not out.exists()  # nothing under the final name before commit
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".part")]
    writer.commit()
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".part")]
    with av.open(str(out)) as container:
        video = container.streams.video[0]
        assert (video.codec_context.name, video.width, video.height) == ("h264", 96, 64)
        assert video.format.name == "yuv420p"
        assert container.streams.audio and container.streams.audio[0].codec_context.name == "aac"
    assert count_frames(out) == 10
    aborted = VideoWriter(tmp_path / "gone.mp4", width=32, height=32, fps=25)
    aborted.write(np.zeros((32, 32, 3), np.uint8), 0.0)
    aborted.abort()
    assert not list(tmp_path.glob("*gone*"))


def test_writer_reencodes_audio_browsers_cannot_play(tmp_path: Path) -> None:
    from segcli.io.video import AudioSource

    source = tmp_path / "pcm.mov"
    with av.open(str(source), "w") as out:
        video = out.add_stream("libx264", rate=FPS)
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        sound = out.add_stream("pcm_s16le", rate=16000)
        sound.layout = "stereo"
        for image in marked_frames(25, size=(64, 48)):
            for packet in video.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                out.mux(packet)
        for packet in video.encode():
            out.mux(packet)
        wave = (np.sin(np.arange(16000) * 0.2) * 8000).astype(np.int16)
        chunk = av.AudioFrame.from_ndarray(np.repeat(wave, 2)[None], format="s16", layout="stereo")
        chunk.sample_rate, chunk.pts = 16000, 0
        for packet in [*sound.encode(chunk), *sound.encode()]:
            out.mux(packet)
    assert probe_video(source).audio == "pcm_s16le"
    target = tmp_path / "o.mp4"
    writer = VideoWriter(target, width=64, height=48, fps=FPS, audio=AudioSource(source, start=0.2))
    for f in read_frames(source, FrameSelection(start=0.2)):
        writer.write(f.pixels, f.time_s)
    writer.commit()
    assert writer.audio_note is not None and "re-encoded to AAC" in writer.audio_note
    with av.open(str(target)) as container:
        audio = container.streams.audio[0]
        assert audio.codec_context.name == "aac"
        assert float(audio.duration * audio.time_base) == pytest.approx(0.8, abs=0.1)  # cut at --start


# --------------------------------------------------------------------------- the runner
def test_runner_outputs_and_stride_with_a_fake_model(tmp_path: Path) -> None:
    clip = write_clip(tmp_path / "c.mp4", marked_frames(20), audio=True)
    outputs = video_output_paths(tmp_path / "out" / "c.mp4", ["overlay", "json"])
    opts = VideoOptions(selection=FrameSelection(stride=2), batch_size=3)
    result = segment_video(FakeSegmenter(), clip, outputs, options=opts)
    assert (result.status, result.processed) == ("done", 10)
    assert count_frames(outputs["overlay"]) == 10
    lines = [json.loads(line) for line in outputs["jsonl"].read_text().splitlines()]
    assert [r["frame"] for r in lines] == list(range(0, 20, 2))
    assert lines[3]["schema"] == "segcli.instances/1" and lines[3]["time_s"] == pytest.approx(0.24)
    assert lines[3]["instances"][0]["track_id"] == 0
    summary = json.loads(outputs["json"].read_text())
    assert summary["schema"] == "segcli.video/1" and summary["status"] == "complete"
    assert (summary["frames"], summary["processed"], summary["settings"]["stride"]) == (20, 10, 2)
    assert summary["tracks"] == [
        {"id": 0, "label": "cube", "first_frame": 0, "last_frame": 18, "frames": 10, "mean_score": 0.9}
    ]
    assert summary["overlay"]["audio"] == "copied"
    with av.open(str(outputs["overlay"])) as container:  # stride keeps the clip's timing
        assert float(container.streams.video[0].duration * container.streams.video[0].time_base) > 0.7


def test_runner_no_track_and_overlay_only(tmp_path: Path) -> None:
    clip = write_clip(tmp_path / "c.mp4", marked_frames(8))
    outputs = video_output_paths(tmp_path / "c.mp4", ["overlay"])
    assert set(outputs) == {"overlay", "json"}
    result = segment_video(FakeSegmenter(), clip, outputs, options=VideoOptions(track=False))
    assert result.status == "done"
    summary = json.loads(outputs["json"].read_text())
    assert summary["tracks"] is None and summary["settings"]["track"] is False
    assert not (tmp_path / "c.mp4.jsonl").exists()


def test_runner_truncated_clip_writes_frames_before_the_damage(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    clip = write_clip(
        tmp_path / "full.mp4", [rng.integers(0, 256, (64, 96, 3), dtype=np.uint8) for _ in range(30)]
    )
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(clip.read_bytes()[: clip.stat().st_size // 2])
    outputs = video_output_paths(tmp_path / "out" / "cut.mp4", ["overlay", "json"])
    result = segment_video(FakeSegmenter(), cut, outputs)
    assert result.status == "failed" and result.failed_frame is not None
    assert result.processed == result.failed_frame > 0
    assert f"frame {result.failed_frame}" in result.reason
    summary = json.loads(outputs["json"].read_text())
    assert summary["status"] == "failed" and summary["failed_frame"] == result.failed_frame
    assert len(outputs["jsonl"].read_text().splitlines()) == result.processed
    assert count_frames(outputs["overlay"]) == result.processed


def test_runner_model_failure_leaves_no_outputs(tmp_path: Path) -> None:
    clip = write_clip(tmp_path / "c.mp4", marked_frames(12))
    out = tmp_path / "out"
    outputs = video_output_paths(out / "c.mp4", ["overlay", "json"])
    result = segment_video(FakeSegmenter(fail_after=3), clip, outputs)
    assert result.status == "failed" and "model failed" in result.reason
    assert list(out.iterdir()) == []  # no final file, no temp file
    unreadable = tmp_path / "bad.mp4"
    unreadable.write_bytes(b"not a video at all")
    result = segment_video(FakeSegmenter(), unreadable, video_output_paths(out / "bad.mp4", ["json"]))
    assert result.status == "failed" and "not a video" in result.reason
    assert list(out.iterdir()) == []


def test_runner_without_frames_in_the_range_fails_cleanly(tmp_path: Path) -> None:
    clip = write_clip(tmp_path / "c.mp4", marked_frames(8))  # 0.32 s
    out = tmp_path / "out"
    opts = VideoOptions(selection=FrameSelection(start=5.0))
    result = segment_video(
        FakeSegmenter(), clip, video_output_paths(out / "c.mp4", ["overlay", "json"]), options=opts
    )
    assert result.status == "failed" and "no frames to process between --start 5.0" in result.reason
    assert list(out.iterdir()) == []


def test_runner_interrupt_leaves_no_outputs(tmp_path: Path) -> None:
    clip = write_clip(tmp_path / "c.mp4", marked_frames(12))
    out = tmp_path / "out"

    class Interrupting(FakeSegmenter):
        def __call__(self, images: Sequence[np.ndarray]) -> list[Instances]:
            if self.calls >= 2:
                raise KeyboardInterrupt
            return super().__call__(images)

    with pytest.raises(KeyboardInterrupt):
        segment_video(Interrupting(), clip, video_output_paths(out / "c.mp4", ["overlay", "json"]))
    assert list(out.iterdir()) == []


# --------------------------------------------------------------------------- blocks model, moving blocks
def _match(pred: Instances, frame: ClipFrame, min_iou: float = 0.5) -> dict[int, int]:
    """Ground-truth object id -> index of the predicted instance covering it (mask IoU)."""
    out: dict[int, int] = {}
    used: set[int] = set()
    for key, obj in frame.objects.items():
        best, best_i = min_iou, -1
        for i in range(len(pred)):
            if i in used:
                continue
            m = pred.full_mask(i)
            iou = float((m & obj.mask).sum()) / max(float((m | obj.mask).sum()), 1.0)
            if iou > best:
                best, best_i = iou, i
        if best_i >= 0:
            out[key] = best_i
            used.add(best_i)
    return out


@pytest.fixture()
def one_torch_thread() -> Iterator[None]:
    """The decode and encode threads share the CPU with the model: keep the test's timing sane
    on a loaded machine (two intra-op threads on two busy cores stall each other)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.mark.blocks
@pytest.mark.usefixtures("one_torch_thread")
def test_blocks_model_counts_and_tracks_moving_blocks(tmp_path: Path) -> None:
    from segcli.inference.segmenter import Segmenter

    truth = list(moving_blocks(7, 30, size=(256, 192), count=3, speed=4.0))
    clip = write_clip(tmp_path / "blocks.mp4", [f.image for f in truth])
    seg = Segmenter("blocks", device="cpu", settings=Settings(min_size=192, max_size=384), progress=False)
    outputs = video_output_paths(tmp_path / "out" / "blocks.mp4", ["overlay", "json"])
    result = segment_video(seg, clip, outputs, options=VideoOptions(batch_size=2))
    assert result.status == "done" and result.processed == len(truth)
    records = [json.loads(line) for line in outputs["jsonl"].read_text().splitlines()]
    assert len(records) == result.processed
    assert count_frames(outputs["overlay"]) == result.processed

    from segcli.core.masks import rle_decode

    good_counts = 0
    ids_of: dict[int, list[int | None]] = {}
    for frame, record in zip(truth, records):
        good_counts += abs(len(record["instances"]) - len(frame.objects)) <= 1
        masks = [rle_decode(item["mask"]) for item in record["instances"]]
        pred = (
            Instances.from_full_masks(
                masks,
                scores=[i["score"] for i in record["instances"]],
                class_ids=[i["category_id"] for i in record["instances"]],
                class_names=[i["label"] for i in record["instances"]],
            )
            if masks
            else Instances.empty((192, 256))
        )
        matched = _match(pred, frame)
        for key in frame.objects:
            i = matched.get(key)
            ids_of.setdefault(key, []).append(record["instances"][i]["track_id"] if i is not None else None)
    assert good_counts >= 0.95 * len(truth)
    assert len(ids_of) == 3
    for key, ids in ids_of.items():
        top = max(set(ids), key=lambda t: ids.count(t))
        assert top is not None and ids.count(top) >= 0.95 * len(ids), (key, ids)
    summary = json.loads(outputs["json"].read_text())
    assert len(summary["tracks"]) == 3


# --------------------------------------------------------------------------- command line
def _cli(*args: str, ckpt: Path) -> Any:
    from typer.testing import CliRunner

    from segcli.cli import app
    from tests.conftest import BATCH_FAST

    return CliRunner().invoke(app, [*args, "--weights", str(ckpt), *BATCH_FAST], catch_exceptions=False)


@pytest.mark.usefixtures("one_torch_thread")
def test_cli_predict_mixes_images_and_videos(tmp_path: Path, blocks_ckpt: Path) -> None:
    from tests.conftest import PHOTOS

    clip = write_clip(tmp_path / "clip.mp4", marked_frames(12))
    out = tmp_path / "out"
    result = _cli(
        "predict", str(clip), str(PHOTOS / "chelsea.jpg"), "-o", str(out), "--stride", "2", ckpt=blocks_ckpt
    )
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == [
        ".segcli-output",
        ".segcli.lock",
        "chelsea.jpg.json",
        "chelsea.jpg.overlay.jpg",
        "clip.mp4.json",
        "clip.mp4.jsonl",
        "clip.mp4.overlay.mp4",
    ]
    summary = json.loads((out / "clip.mp4.json").read_text())
    assert summary["processed"] == 6 and summary["settings"]["stride"] == 2
    assert len((out / "clip.mp4.jsonl").read_text().splitlines()) == 6
    assert count_frames(out / "clip.mp4.overlay.mp4") == 6
    piped = _cli(
        "predict",
        str(clip),
        "--json",
        "-",
        "--max-frames",
        "3",
        "--no-track",
        "-o",
        str(tmp_path / "none"),
        ckpt=blocks_ckpt,
    )
    assert piped.exit_code == 0
    assert not (tmp_path / "none").exists()  # --json - alone writes no file, for videos too
    [line] = piped.stdout.splitlines()  # one summary line per video, nothing else on stdout
    record = json.loads(line)
    assert record["schema"] == "segcli.video/1" and record["processed"] == 3 and record["tracks"] is None


def test_cli_bad_video_range_is_a_usage_error_before_the_model_loads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from segcli.cli import app
    from tests.fakes import use_fake_in_cli

    loaded = use_fake_in_cli(monkeypatch)
    clip = write_clip(tmp_path / "clip.mp4", marked_frames(4))
    for args, message in (  # Typer's own checks (min=1) word the range their way: the option is named
        (["--start", "2", "--end", "1"], "Invalid value for --end: --end (1.0) must be after --start (2.0)"),
        (["--stride", "0"], "Invalid value for '--stride': "),
        (["--max-frames", "0"], "Invalid value for '--max-frames': "),
    ):
        result = CliRunner().invoke(
            app, ["predict", str(clip), "--model", "coco", "-o", str(tmp_path), *args]
        )
        assert result.exit_code == 2, (args, result.output)
        assert message in " ".join(result.stderr.replace("│", " ").split()), result.stderr
    assert loaded == [], "no model loaded for a usage error"


def damaged_frames(out: Path) -> int:
    """Frames the damaged clip of the test below got through before its damage."""
    return int(json.loads((out / "cut.mp4.json").read_text())["processed"])


@pytest.mark.usefixtures("one_torch_thread")
def test_cli_batch_videos_resume_damage_and_no_videos(tmp_path: Path, blocks_ckpt: Path) -> None:
    from tests.conftest import PHOTOS

    root = tmp_path / "in"
    (root / "sub").mkdir(parents=True)
    write_clip(root / "a.mp4", marked_frames(8))
    write_clip(root / "sub" / "b.MOV", marked_frames(6))
    rng = np.random.default_rng(2)
    full = write_clip(
        tmp_path / "full.mp4", [rng.integers(0, 256, (64, 96, 3), dtype=np.uint8) for _ in range(30)]
    )
    (root / "cut.mp4").write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    (root / "cat.jpg").write_bytes((PHOTOS / "chelsea.jpg").read_bytes())
    out = tmp_path / "out"

    first = _cli("batch", str(root), "-o", str(out), ckpt=blocks_ckpt)
    assert first.exit_code == 1  # the damaged clip
    run = json.loads((out / "run.json").read_text())
    assert run["counts"] == {
        "inputs": 4,
        "done": 3,
        "skipped": 0,
        "failed": 1,
        "instances": run["counts"]["instances"],
        "images": 1,
        "videos": 2,
        "frames": 8 + 6 + damaged_frames(out),
        "total": {"done": 3, "failed": 1, "pending": 0, "instances": run["counts"]["total"]["instances"]},
    }
    rate = pytest.approx(1 / run["seconds"], rel=5e-3)  # run.json's seconds are rounded
    assert run["images_per_second"] == rate  # a video is not an image
    assert run["frames_per_second"] == pytest.approx(run["counts"]["frames"] / run["seconds"], rel=5e-3)
    assert run["video"]["stride"] == 1
    [failed] = run["failed"]
    assert failed["path"].endswith("cut.mp4") and "frame" in failed["reason"]
    damaged = json.loads((out / "cut.mp4.json").read_text())
    assert damaged["status"] == "failed" and damaged["processed"] == damaged["failed_frame"] > 0
    coco = json.loads((out / "coco.json").read_text())
    assert [im["file_name"] for im in coco["images"]] == ["cat.jpg"]  # videos are not in coco.json
    assert (out / "sub" / "b.MOV.overlay.mp4").is_file()

    # a killed run: b.MOV's summary never got written (its outputs may be there, or temp files)
    (out / "sub" / "b.MOV.json").unlink()
    (out / "sub" / ".b.MOV.jsonl.x0000000.part").write_text("left by a killed run")
    before = (out / "a.mp4.json").stat().st_mtime_ns
    second = _cli("batch", str(root), "-o", str(out), ckpt=blocks_ckpt)
    run = json.loads((out / "run.json").read_text())
    assert (run["counts"]["done"], run["counts"]["skipped"], run["counts"]["failed"]) == (1, 2, 1)
    assert second.exit_code == 1 and "earlier run" in run["failed"][0]["reason"]
    assert (out / "a.mp4.json").stat().st_mtime_ns == before
    assert (out / "sub" / "b.MOV.json").is_file() and not list((out / "sub").glob(".*.part"))

    only_images = _cli("batch", str(root), "-o", str(tmp_path / "img"), "--no-videos", ckpt=blocks_ckpt)
    assert only_images.exit_code == 0
    assert json.loads((tmp_path / "img" / "run.json").read_text())["counts"]["inputs"] == 1
