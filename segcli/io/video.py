"""Video files: probing, streaming upright frames, and writing browser-playable H.264.

Decoding and encoding go through PyAV, whose wheels bundle FFmpeg (with libx264), so
no system FFmpeg is needed. Frames come out as RGB uint8 arrays the way a player shows
them (the display matrix of phone videos is applied), each with its true timestamp
(``pts * time_base``, so variable-frame-rate clips keep their timing).
"""

from __future__ import annotations

import contextlib
import math
import os
import stat
import struct
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, cast

import numpy as np

from segcli.core.errors import SegcliError, UsageError, first_line
from segcli.io.files import make_temp
from segcli.io.images import pixel_count

if TYPE_CHECKING:
    import av
    import av.container
    import av.packet

VIDEO_EXTENSIONS = frozenset({".mp4", ".mov", ".m4v", ".mkv", ".avi", ".webm"})

H264_ENCODERS = ("libx264", "libopenh264", "h264")
"""H.264 encoders tried in order; PyAV's wheels ship libx264."""
FALLBACK_ENCODER = "libvpx-vp9"
"""Used only when no H.264 encoder exists: VP9 in MP4 plays in Chrome, Firefox and Edge."""
MP4_AUDIO_COPY = frozenset({"aac", "mp3", "opus", "flac", "alac"})
"""Audio codecs copied into the MP4 as they are (browsers play them); others are re-encoded to AAC."""
AAC_RATES = frozenset(
    {96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350}
)
"""Sample rates AAC takes; other rates are resampled to 48 kHz."""
ENCODER_BYTES_PER_PIXEL = 64
"""What libx264 holds per pixel of a frame with segcli's settings (lookahead, B-frames, frame
threads): measured 62 bytes at 8000x8000, 23 without lookahead and B-frames. Frames whose
encoder would hold more than the video's memory budget are encoded that way
(``VideoWriter(low_memory=True)``)."""
MAX_GAP_S = 3600.0
"""The longest pause between two overlay frames: MP4 stores frame durations (and B-frame
offsets) in 32 bits of 1/90000 s (6.6 h), so a longer pause in the clip's timestamps is
shortened to one frame in the overlay (and noted); the JSONL keeps every frame's true time."""


CODEC_THREADS = 2
"""Threads of the decoder and of the encoder each (FFmpeg's default is one per core or more):
the cores are the model's; two codec threads keep well ahead of any model at 1080p."""


def is_video_path(path: Path) -> bool:
    return path.suffix.lower() in VIDEO_EXTENSIONS


def require_av() -> None:
    """Fail with one line (not a traceback) where PyAV, a core dependency, is missing."""
    try:
        import av  # noqa: F401
    except ImportError as exc:  # pragma: no cover - av is a core dependency
        raise SegcliError(f"videos need PyAV: pip install 'av>=18' ({first_line(exc)})") from None


# --------------------------------------------------------------------------- orientation
def display_matrix(frame: av.VideoFrame) -> tuple[int, ...] | None:
    """The frame's 3x3 display matrix (16.16 fixed point, row-major), or None."""
    data = frame.side_data.get("DISPLAYMATRIX")
    if data is None:
        return None
    raw = bytes(data)
    return struct.unpack("=9i", raw[:36]) if len(raw) >= 36 else None


def upright(pixels: np.ndarray, rotation: int, matrix: tuple[int, ...] | None) -> np.ndarray:
    """Apply a display matrix the way FFmpeg's ``autorotate`` does (``rotation`` is PyAV's
    ``VideoFrame.rotation``: degrees counterclockwise); returns a contiguous array."""
    theta = -int(rotation)
    theta -= 360 * int(np.floor(theta / 360 + 0.9 / 360))
    m = matrix or (65536, 0, 0, 0, 65536, 0, 0, 0, 1 << 30)
    if abs(theta - 90) < 1:
        out = np.swapaxes(pixels, 0, 1) if m[3] > 0 else np.rot90(pixels, k=-1)  # cclock_flip / clock
    elif abs(theta - 180) < 1:
        out = pixels
        if m[0] < 0:
            out = out[:, ::-1]
        if m[4] < 0:
            out = out[::-1]
    elif abs(theta - 270) < 1:
        out = np.rot90(pixels, k=-1)[::-1] if m[3] < 0 else np.rot90(pixels, k=1)  # clock_flip / cclock
    else:  # no rotation (or an odd angle, which players do not agree on either): flips only
        out = pixels[::-1] if m[4] < 0 else pixels
    return np.ascontiguousarray(out)


# --------------------------------------------------------------------------- probing
@dataclass(frozen=True)
class VideoInfo:
    """What a clip declares, and its upright frame size."""

    path: Path
    width: int  # upright (after the display matrix)
    height: int
    fps: float  # average frame rate
    frames: int  # declared frame count, or estimated from the duration (``frames_estimated``)
    frames_estimated: bool
    duration: float | None  # seconds
    rotation: int  # display-matrix rotation, degrees counterclockwise (PyAV's convention)
    codec: str
    audio: str | None  # audio codec name, None without audio

    def to_dict(self) -> dict[str, object]:
        return {
            "width": self.width,
            "height": self.height,
            "fps": round(self.fps, 6),
            "frames": self.frames,
            "frames_estimated": self.frames_estimated,
            "duration": round(self.duration, 6) if self.duration is not None else None,
            "rotation": self.rotation,
            "codec": self.codec,
            "audio": self.audio,
        }


def _open(path: Path) -> av.container.InputContainer:
    require_av()
    import av

    try:  # a FIFO, socket or device is refused at once: FFmpeg would wait on it for ever
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise SegcliError(f"{path}: no such file") from None
    except OSError as exc:
        raise SegcliError(f"{path}: cannot open ({exc.strerror or exc})") from None
    if stat.S_ISDIR(mode):
        raise SegcliError(f"{path}: is a folder, not a video")
    if not stat.S_ISREG(mode):
        kind = "a FIFO" if stat.S_ISFIFO(mode) else "a device or socket"
        raise SegcliError(f"{path}: is {kind}, not a video file")
    try:
        return av.open(str(path), "r")
    except av.error.FFmpegError as exc:
        hint = ""
        if path.suffix.lower() in (".mp4", ".m4v", ".mov"):
            hint = " (an MP4 cut short before its index is written cannot be recovered)"
        raise SegcliError(f"{path}: not a video segcli can read ({first_line(exc)}){hint}") from None
    except OSError as exc:
        raise SegcliError(f"{path}: cannot open ({exc.strerror or exc})") from None


def _video_stream(container: av.container.InputContainer, path: Path) -> av.video.stream.VideoStream:
    """The clip's main video stream: the largest (by declared pixels) that is not a cover
    picture or thumbnail; on equal sizes the first. A phone's or camera's preview stream,
    or cover art, is never what is segmented."""
    import av

    streams = list(container.streams.video)
    if not streams:
        raise SegcliError(f"{path}: has no video stream")
    still = av.stream.Disposition.attached_pic | av.stream.Disposition.timed_thumbnails

    def rank(stream: av.video.stream.VideoStream) -> tuple[bool, int]:
        moving = not (int(stream.disposition) & int(still))
        ctx = stream.codec_context
        return moving, int(ctx.width or 0) * int(ctx.height or 0)

    best = streams[0]
    for stream in streams[1:]:
        if rank(stream) > rank(best):
            best = stream
    return best


def _stream_fps(stream: av.video.stream.VideoStream) -> float:
    for rate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if rate:
            return float(rate)
    return 30.0


def _stream_duration(
    container: av.container.InputContainer, stream: av.video.stream.VideoStream
) -> float | None:
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    if container.duration:
        return container.duration / 1_000_000
    return None


def _check_pixels(path: Path, width: int, height: int, max_pixels: int | None) -> None:
    if max_pixels is not None and width * height > max_pixels:
        raise SegcliError(
            f"{path}: its frames are {width}x{height} = {pixel_count(width * height)}, over the "
            f"{pixel_count(max_pixels)} limit (raise it with --max-pixels)"
        )


def probe_video(path: str | Path, *, max_pixels: int | None = None) -> VideoInfo:
    """Read a clip's declared properties; decodes the first frame for its display matrix.
    Frames larger than ``max_pixels`` are refused before any is decoded."""
    path = Path(path)
    import av

    with _open(path) as container:
        stream = _video_stream(container, path)
        _check_pixels(
            path, int(stream.codec_context.width or 0), int(stream.codec_context.height or 0), max_pixels
        )
        fps = _stream_fps(stream)
        duration = _stream_duration(container, stream)
        frames = int(stream.frames or 0)
        estimated = frames <= 0
        if estimated:
            frames = round(duration * fps) if duration else 0
        width, height = stream.codec_context.width, stream.codec_context.height
        rotation = 0
        try:
            first = next(container.decode(stream), None)
        except av.error.FFmpegError as exc:
            raise SegcliError(f"{path}: cannot decode its first frame ({first_line(exc)})") from None
        if first is None:
            raise SegcliError(f"{path}: holds no video frame")
        _check_pixels(path, first.width, first.height, max_pixels)
        rotation = int(first.rotation)
        shape = upright(
            np.zeros((first.height, first.width, 1), np.uint8), rotation, display_matrix(first)
        ).shape
        height, width = int(shape[0]), int(shape[1])
        audio = container.streams.audio[0].codec_context.name if container.streams.audio else None
        return VideoInfo(
            path=path,
            width=width,
            height=height,
            fps=fps,
            frames=frames,
            frames_estimated=estimated,
            duration=duration,
            rotation=rotation,
            codec=stream.codec_context.name,
            audio=audio,
        )


# --------------------------------------------------------------------------- reading
@dataclass(frozen=True)
class DecodedFrame:
    """One upright RGB frame: its number in the clip (from 0) and its time in seconds."""

    index: int
    time_s: float
    pixels: np.ndarray  # (H, W, 3) uint8 RGB


class VideoDecodeError(SegcliError):
    """Decoding stopped early (damaged or truncated data); frames before ``frame`` were fine."""

    def __init__(self, message: str, frame: int) -> None:
        super().__init__(message)
        self.frame = frame


MAX_SECONDS = 1e9
"""The largest ``--start`` / ``--end`` (31 years): times are turned into integer timestamps."""


@dataclass(frozen=True)
class FrameSelection:
    """Which frames to read: ``[start, end)`` in seconds, every ``stride``-th, at most ``max_frames``."""

    stride: int = 1
    start: float | None = None
    end: float | None = None
    max_frames: int | None = None

    def __post_init__(self) -> None:
        if self.stride < 1:
            raise UsageError(f"--stride must be at least 1, got {self.stride}")
        for name in ("start", "end"):
            value = getattr(self, name)
            if value is not None and not (math.isfinite(value) and 0 <= value <= MAX_SECONDS):
                raise UsageError(f"--{name} must be between 0 and {MAX_SECONDS:g} seconds, got {value}")
        if self.end is not None and self.end <= (self.start or 0.0):
            raise UsageError(f"--end ({self.end}) must be after --start ({self.start or 0})")
        if self.max_frames is not None and self.max_frames < 1:
            raise UsageError(f"--max-frames must be at least 1, got {self.max_frames}")

    def to_dict(self) -> dict[str, object]:
        return {"stride": self.stride, "start": self.start, "end": self.end, "max_frames": self.max_frames}


_TIME_EPS = 1e-4  # seconds: a frame this close before --start still counts as at --start


def read_frames(
    path: str | Path, selection: FrameSelection | None = None, *, max_pixels: int | None = None
) -> Iterator[DecodedFrame]:
    """Decode ``path`` frame by frame (streaming), upright, as RGB uint8.

    ``index`` counts frames from the clip's first frame. After ``start`` (a seek to the
    key frame before it), the first index is derived from its time and the average frame
    rate: exact for constant-frame-rate clips, an estimate for variable ones (``time_s``
    is always the frame's own timestamp). Raises :class:`VideoDecodeError` where the data
    is damaged (a decoder error, a frame flagged corrupt, or a clip that ends well before
    its declared duration), after yielding every good frame before it. A frame larger than
    ``max_pixels`` (a clip whose size grows mid-stream) stops it with a :class:`SegcliError`.
    """
    import av

    path = Path(path)
    sel = selection or FrameSelection()
    with _open(path) as container:
        stream = _video_stream(container, path)
        stream.thread_type = "AUTO"
        stream.codec_context.thread_count = CODEC_THREADS
        fps = _stream_fps(stream)
        time_base = stream.time_base or Fraction(1, 90000)
        origin = float(stream.start_time * time_base) if stream.start_time is not None else 0.0
        if sel.start:
            target = int((sel.start + origin) / time_base)
            try:
                container.seek(target, stream=stream, backward=True, any_frame=False)
            except av.error.FFmpegError as exc:
                raise SegcliError(f"{path}: cannot seek to {sel.start} s ({first_line(exc)})") from None
        index: int | None = None if sel.start else -1
        kept_from = None  # index of the first frame at or after --start
        yielded = 0
        last_time = None
        frames = container.decode(stream)
        while True:
            where = 0 if index is None else index + 1
            try:
                frame = next(frames, None)
            except av.error.FFmpegError as exc:
                raise VideoDecodeError(
                    f"{path}: damaged data at frame {where}, decoding stopped ({first_line(exc)})", where
                ) from None
            if frame is None:
                break
            if frame.pts is None:
                time_s = (last_time + 1.0 / fps) if last_time is not None else 0.0
            else:
                time_s = float(frame.pts * time_base) - origin
            last_time = time_s
            if index is None:
                if sel.start and time_s < sel.start - _TIME_EPS:
                    continue
                index = round(time_s * fps)
            else:
                index += 1
            if sel.start and time_s < sel.start - _TIME_EPS:
                continue
            if sel.end is not None and time_s >= sel.end - _TIME_EPS:
                return
            if frame.is_corrupt:
                raise VideoDecodeError(f"{path}: frame {index} is damaged, decoding stopped", index)
            if kept_from is None:
                kept_from = index
            if (index - kept_from) % sel.stride:
                continue
            _check_pixels(path, frame.width, frame.height, max_pixels)
            rgb = frame.to_ndarray(format="rgb24")
            yield DecodedFrame(index, time_s, upright(rgb, int(frame.rotation), display_matrix(frame)))
            yielded += 1
            if sel.max_frames is not None and yielded >= sel.max_frames:
                return
        # The stream ended: was that its declared end?
        duration = _stream_duration(container, stream)
        if duration is not None and last_time is not None:
            slack = 3.0 / fps + (1.0 if container.streams.audio and not stream.duration else 0.0)
            if last_time + 1.0 / fps < duration - slack:
                where = (index or 0) + 1
                raise VideoDecodeError(
                    f"{path}: data ends at frame {where} ({last_time + 1.0 / fps:.2f} s of "
                    f"{duration:.2f} s); the file is truncated",
                    where,
                )


# --------------------------------------------------------------------------- writing
def _aac_problem(rate: int, layout: str) -> str | None:
    """Why PyAV's AAC encoder cannot take ``rate`` Hz ``layout`` audio (None: it can)."""
    import av

    try:
        ctx = av.CodecContext.create("aac", "w")
        ctx.sample_rate = rate
        ctx.layout = layout
        ctx.format = "fltp"
        ctx.bit_rate = 160_000
        ctx.open()
    except (av.error.FFmpegError, ValueError) as exc:
        return first_line(exc)
    return None


def pick_encoder() -> str:
    """The first H.264 encoder PyAV's FFmpeg has; VP9 when there is none."""
    import av

    for name in (*H264_ENCODERS, FALLBACK_ENCODER):
        try:
            av.codec.Codec(name, "w")
        except (av.error.FFmpegError, ValueError):
            continue
        return name
    raise SegcliError("PyAV's FFmpeg has neither an H.264 nor a VP9 encoder; cannot write overlay videos")


@dataclass(frozen=True)
class AudioSource:
    """Audio of ``path`` up to ``end`` seconds, to copy into the overlay from its first frame's
    time on (``start``: where to seek to first)."""

    path: Path
    start: float = 0.0
    end: float | None = None


class VideoWriter:
    """Writes RGB frames as an MP4 (H.264, yuv420p, faststart) to a temp file; :meth:`commit`
    renames it into place, :meth:`abort` removes it. Audio, when given, is interleaved as the
    video advances: copied when browsers play its codec, otherwise re-encoded to AAC.

    Frames carry their own times (``time_s``), so variable frame rates and ``--stride`` keep
    the clip's timing and the audio stays in sync. Odd sizes are padded by one edge pixel
    (4:2:0 chroma needs even sides).
    """

    def __init__(
        self,
        path: Path,
        *,
        width: int,
        height: int,
        fps: float,
        audio: AudioSource | None = None,
        crf: int = 20,
        preset: str = "veryfast",
        low_memory: bool = False,
    ) -> None:
        import av

        self.path = path
        self.width, self.height = width, height
        self.encoded_size = (width + width % 2, height + height % 2)
        self._tmp = make_temp(path)
        tmp = str(self._tmp)
        self.codec = pick_encoder()
        self.time_base = Fraction(1, 90000)
        self.fps = fps if fps > 0 else 30.0
        self._t0: float | None = None
        self._last_pts = -1
        self._skipped = 0  # ticks of long pauses cut out of the overlay (MAX_GAP_S)
        self.frames = 0
        self.audio_note: str | None = None
        self.shortened_gaps = 0
        try:
            self._out = av.open(tmp, "w", format="mp4", options={"movflags": "+faststart"})
            rate = Fraction(self.fps).limit_denominator(100000)
            # pick_encoder names a video encoder (any name: PyAV types the stream by literal names)
            stream = cast("av.VideoStream", self._out.add_stream(self.codec, rate=rate))
            stream.width, stream.height = self.encoded_size
            stream.pix_fmt = "yuv420p"
            stream.codec_context.thread_count = CODEC_THREADS
            stream.codec_context.time_base = self.time_base
            self.low_memory = low_memory
            if self.codec == "libx264":
                options = {"crf": str(crf), "preset": preset, "profile": "high"}
                if low_memory:  # no lookahead, no B-frames: x264 holds one frame, not a dozen
                    options["tune"] = "zerolatency"
                stream.codec_context.options = options
            self._video = stream
            self._audio_in: av.container.InputContainer | None = None
            self._audio_packets: Iterator[av.packet.Packet[av.AudioStream]] | None = None
            self._audio_pending: av.packet.Packet[av.AudioStream] | None = None
            self._audio_out: av.AudioStream | None = None
            self._resampler: av.AudioResampler | None = None
            self._audio_source = audio
            self._audio_done = 0.0
            if audio is not None:
                self._open_audio(audio)
        except BaseException:
            self.abort()
            raise

    # ---- audio
    def _open_audio(self, audio: AudioSource) -> None:
        import av

        try:
            src = av.open(str(audio.path), "r")
        except (av.error.FFmpegError, OSError) as exc:
            self.audio_note = f"audio not copied ({first_line(exc)})"
            return
        if not src.streams.audio:
            src.close()
            return
        ain = src.streams.audio[0]
        self._audio_in = src
        if ain.codec_context.name in MP4_AUDIO_COPY:
            self._audio_out = self._out.add_stream_from_template(ain)
        else:  # e.g. PCM (mov, avi, mkv), Vorbis (webm), AC-3: browsers do not play these in MP4
            rate = ain.codec_context.sample_rate or 48000
            rate = rate if rate in AAC_RATES else 48000
            # by channel count, never the source's layout object: AVI and MKV PCM declare an
            # "unspecified" order the AAC encoder refuses; more than two channels are downmixed
            layout = "mono" if ain.codec_context.channels == 1 else "stereo"
            problem = _aac_problem(rate, layout)
            if problem is not None:
                self.audio_note = f"audio dropped: cannot encode {ain.codec_context.name} as AAC ({problem})"
                self._audio_in = None
                src.close()
                return
            out = self._out.add_stream("aac", rate=rate)
            out.layout = layout
            out.bit_rate = 160_000
            self._audio_out = out
            self._resampler = av.AudioResampler(format="fltp", layout=layout, rate=rate)
            self.audio_note = f"re-encoded to AAC (browsers do not play {ain.codec_context.name} in MP4)"
        # PyAV types a stream's time base as optional; a demuxed stream always has one
        self._audio_tb = cast(Fraction, ain.time_base)
        self._audio_origin = float(ain.start_time * self._audio_tb) if ain.start_time is not None else 0.0
        if audio.start:
            target = int((audio.start + self._audio_origin) / self._audio_tb)
            src.seek(target, stream=ain, backward=True, any_frame=False)
        self._audio_packets = src.demux(ain)

    def _mux_audio_until(self, until: float | None) -> None:
        """Mux source audio packets up to ``until`` seconds of the output (None: to the end).

        The output's time 0 is the first written frame's source time; audio before it is
        dropped and the rest shifted by it, so picture and sound stay in sync. Audio that
        cannot be decoded, encoded or muxed stops the audio (noted), never the video.
        """
        import av

        try:
            self._mux_audio(until)
        except (av.error.FFmpegError, ValueError, OverflowError) as exc:
            self._stop_audio(f"audio stopped after {self._audio_done:.2f} s ({first_line(exc)})")

    def _stop_audio(self, note: str) -> None:
        self._audio_packets = None
        self._audio_pending = None
        self._resampler = None
        self.audio_note = note

    def _mux_audio(self, until: float | None) -> None:
        if self._audio_packets is None or self._audio_out is None or self._t0 is None:
            return
        import av

        end = self._audio_source.end if self._audio_source else None
        while True:
            packet = self._audio_pending
            if packet is None:
                try:
                    packet = next(self._audio_packets, None)
                except av.error.FFmpegError:
                    packet = None
                if packet is None:
                    self._audio_packets = None
                    return
                if packet.pts is None or packet.size == 0:
                    continue
            assert packet.pts is not None  # checked above, when the (pending) packet was read
            t = float(packet.pts * self._audio_tb) - self._audio_origin
            if until is not None and t - self._t0 >= until:
                self._audio_pending = packet
                return
            self._audio_pending = None
            if end is not None and t >= end:
                self._audio_packets = None
                return
            if t < self._t0 - 1e-3:
                continue
            self._audio_done = t - self._t0
            if self._resampler is not None:
                self._transcode(packet)
                continue
            shift = round((self._t0 + self._audio_origin) / self._audio_tb)
            packet.pts -= shift
            if packet.dts is not None:
                packet.dts -= shift
            packet.stream = self._audio_out
            self._out.mux(packet)

    def _flush_audio(self) -> None:
        import av

        try:
            self._transcode(None)
        except (av.error.FFmpegError, ValueError) as exc:
            self.audio_note = f"audio end lost ({first_line(exc)})"

    def _transcode(self, packet: av.packet.Packet[av.AudioStream] | None) -> None:
        """Decode ``packet`` (None: flush), resample, encode to AAC and mux."""
        assert self._resampler is not None and self._audio_out is not None
        frames = list(packet.decode()) if packet is not None else [None]
        for frame in frames:
            if frame is not None:
                frame.pts = None  # the encoder numbers the samples from the output's time 0
            for chunk in self._resampler.resample(frame):
                for out in self._audio_out.encode(chunk):
                    self._out.mux(out)
        if packet is None:
            for out in self._audio_out.encode(None):
                self._out.mux(out)

    # ---- video
    def write(self, rgb: np.ndarray, time_s: float) -> None:
        """Encode one frame shown at ``time_s`` (seconds in the source clip)."""
        import av

        if rgb.shape[:2] != (self.height, self.width):
            raise SegcliError(f"frame of {rgb.shape[1]}x{rgb.shape[0]} in a {self.width}x{self.height} video")
        if self.encoded_size != (self.width, self.height):
            pad_h, pad_w = self.encoded_size[1] - self.height, self.encoded_size[0] - self.width
            rgb = np.pad(rgb, ((0, pad_h), (0, pad_w), (0, 0)), mode="edge")
        if self._t0 is None:
            self._t0 = time_s
        pts = round((time_s - self._t0) / self.time_base) - self._skipped
        if self._last_pts >= 0 and pts - self._last_pts > MAX_GAP_S / self.time_base:
            cut = pts - self._last_pts - max(round(1 / (self.fps * self.time_base)), 1)
            self._skipped += cut
            pts -= cut
            self.shortened_gaps += 1
            if self._audio_packets is not None:  # the sound after the pause has no place now
                self._stop_audio(f"audio stopped at a pause of {cut * self.time_base:.0f} s in the clip")
        pts = max(pts, self._last_pts + 1)
        self._last_pts = pts
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
        frame.pts = pts
        frame.time_base = self.time_base
        for packet in self._video.encode(frame):
            self._out.mux(packet)
        self.frames += 1
        self._mux_audio_until(float(pts * self.time_base))

    def commit(self) -> None:
        """Flush the encoder, finish the audio, close the file and rename it into place."""
        try:
            for packet in self._video.encode(None):
                self._out.mux(packet)
            if self._t0 is not None:
                self._mux_audio_until(self._last_pts * float(self.time_base) + 1.0 / self.fps)
                if self._resampler is not None:
                    self._flush_audio()
            self._close()
            os.replace(self._tmp, self.path)
        except BaseException:
            self.abort()
            raise

    def _close(self) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if self._audio_in is not None:
                self._audio_in.close()
                self._audio_in = None
            out = getattr(self, "_out", None)
            if out is not None:
                del self._out  # closed: the getattr above finds none the next time
                out.close()

    def abort(self) -> None:
        """Drop the temp file (the final path is never touched)."""
        with contextlib.suppress(Exception):
            self._close()
        self._tmp.unlink(missing_ok=True)
