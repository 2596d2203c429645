"""Frame-to-frame tracking of ``Instances``: a small ByteTrack-style tracker.

Each call of :meth:`Tracker.update` takes one processed frame's instances and
returns one track id per instance (``-1``: not tracked). Association follows
ByteTrack (Zhang et al., 2022) in two stages:

1. detections scoring at least ``high_score`` are matched against every live track
   (tracked ones and ones lost less than ``max_lost`` frames ago);
2. the remaining detections scoring at least ``low_score`` are matched against the
   tracks still unmatched that were seen in the previous frame (a low score is
   often an occluded or blurred object, good enough to continue a track but not to
   start one).

The cost of a pair is the IoU of the detection's box with the track's predicted
box (its last box moved by its smoothed velocity), plus ``mask_weight`` times the
IoU of the masks (the track's last mask moved the same way): mask IoU decides
between candidates whose box IoUs are close, e.g. two overlapping objects of one
class. Pairs of different classes or below the stage's IoU floor never match. The
assignment is optimal (Hungarian method; it maximises the number of matches, then
the total similarity). Unmatched high-score detections start new tracks; tracks
unmatched for more than ``max_lost`` processed frames are removed; ids are never
reused.

Everything is NumPy; the tracker holds the last box and mask of each live track
only, so memory does not grow with the clip's length.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from segcli.core.instances import Instances

UNTRACKED = -1
"""Track id of an instance that belongs to no track (a low-score detection that continued none)."""


@dataclass(frozen=True)
class TrackerConfig:
    """Knobs of :class:`Tracker` (scores in [0, 1], ``max_lost`` in processed frames)."""

    high_score: float = 0.5
    low_score: float = 0.1
    match_iou: float = 0.2  # stage 1: least box IoU of a match (ByteTrack's match_thresh 0.8 as a cost)
    low_match_iou: float = 0.5  # stage 2: stricter, low-score boxes are less reliable
    max_lost: int = 30  # a track unmatched for more processed frames than this is removed
    mask_weight: float = 0.1  # mask IoU's weight in the similarity (the tie-break)
    velocity_smoothing: float = 0.5  # weight of the newest motion in the velocity estimate

    def __post_init__(self) -> None:
        if not 0.0 <= self.low_score <= self.high_score <= 1.0:
            raise ValueError(
                f"need 0 <= low_score <= high_score <= 1, got {self.low_score}, {self.high_score}"
            )
        if self.max_lost < 0:
            raise ValueError(f"max_lost must be >= 0, got {self.max_lost}")
        for name in ("match_iou", "low_match_iou", "velocity_smoothing"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")


@dataclass
class _Track:
    id: int
    class_id: int
    box: np.ndarray  # (4,) float64, last matched box
    velocity: np.ndarray  # (4,) float64, box change per processed frame
    mask: np.ndarray  # bool crop of the last matched mask
    mask_box: np.ndarray  # (4,) int64, where that crop lies
    last_step: int  # step of the last match
    hits: int = 1

    def predicted_box(self, step: int) -> np.ndarray:
        return self.box + self.velocity * (step - self.last_step)

    def predicted_shift(self, step: int) -> tuple[int, int]:
        d = self.velocity * (step - self.last_step)
        return round(float(d[0] + d[2]) / 2), round(float(d[1] + d[3]) / 2)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box in ``a`` (N, 4) with every box in ``b`` (M, 4), x1 y1 x2 y2 -> (N, M)."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    area_a = np.clip(a[:, 2] - a[:, 0], 0, None) * np.clip(a[:, 3] - a[:, 1], 0, None)
    area_b = np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)
    iw = np.clip(np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
    ih = np.clip(np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]), 0, None)
    inter = iw * ih
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


def crop_iou(mask_a: np.ndarray, box_a: Sequence[int], mask_b: np.ndarray, box_b: Sequence[int]) -> float:
    """IoU of two boolean crops placed at ``box_a`` / ``box_b`` (x0 y0 x1 y1, end-exclusive)."""
    area_a, area_b = int(np.count_nonzero(mask_a)), int(np.count_nonzero(mask_b))
    if area_a + area_b == 0:
        return 0.0
    x0, y0 = max(box_a[0], box_b[0]), max(box_a[1], box_b[1])
    x1, y1 = min(box_a[2], box_b[2]), min(box_a[3], box_b[3])
    inter = 0
    if x1 > x0 and y1 > y0:
        pa = mask_a[y0 - box_a[1] : y1 - box_a[1], x0 - box_a[0] : x1 - box_a[0]]
        pb = mask_b[y0 - box_b[1] : y1 - box_b[1], x0 - box_b[0] : x1 - box_b[0]]
        inter = int(np.count_nonzero(pa & pb))
    return inter / (area_a + area_b - inter)


def linear_assignment(cost: np.ndarray) -> list[tuple[int, int]]:
    """Minimum-cost assignment of rows to columns (Hungarian method, O(n²m), NumPy).

    Every row is assigned when there are at most as many rows as columns (else every
    column). Returns (row, column) pairs sorted by row.
    """
    cost = np.asarray(cost, dtype=np.float64)
    if cost.ndim != 2:
        raise ValueError(f"cost must be 2-D, got shape {cost.shape}")
    if not np.isfinite(cost).all():
        raise ValueError("cost must be finite (use a large value for forbidden pairs)")
    n, m = cost.shape
    if n == 0 or m == 0:
        return []
    transposed = n > m
    if transposed:
        cost, n, m = cost.T, m, n
    u = np.zeros(n + 1)
    v = np.zeros(m + 1)
    owner = np.zeros(m + 1, dtype=np.int64)  # owner[j]: row (1-based) assigned to column j, 0: none
    way = np.zeros(m + 1, dtype=np.int64)
    for i in range(1, n + 1):
        owner[0] = i
        j0 = 0
        minv = np.full(m + 1, np.inf)
        used = np.zeros(m + 1, dtype=bool)
        while True:
            used[j0] = True
            i0 = owner[j0]
            free = ~used[1:]
            reduced = cost[i0 - 1] - u[i0] - v[1:]
            better = free & (reduced < minv[1:])
            minv[1:][better] = reduced[better]
            way[1:][better] = j0
            candidates = np.where(free, minv[1:], np.inf)
            j1 = int(np.argmin(candidates)) + 1
            delta = candidates[j1 - 1]
            u[owner[used]] += delta
            v[used] -= delta
            minv[1:][free] -= delta
            j0 = j1
            if owner[j0] == 0:
                break
        while j0:
            j1 = int(way[j0])
            owner[j0] = owner[j1]
            j0 = j1
    pairs = [(int(owner[j]) - 1, j - 1) for j in range(1, m + 1) if owner[j]]
    if transposed:
        pairs = [(c, r) for r, c in pairs]
    return sorted(pairs)


class Tracker:
    """ByteTrack-style association of instances across frames (see the module docstring).

    >>> tracker = Tracker()
    >>> ids = tracker.update(instances)  # doctest: +SKIP  (one id per instance, -1: untracked)
    """

    def __init__(self, config: TrackerConfig | None = None) -> None:
        self.config = config or TrackerConfig()
        self._tracks: list[_Track] = []
        self._next_id = 0
        self._step = -1

    @property
    def live_tracks(self) -> int:
        """Tracks currently kept (tracked or lost within the buffer)."""
        return len(self._tracks)

    def _similarity(
        self, tracks: list[_Track], instances: Instances, dets: np.ndarray, floor: float
    ) -> np.ndarray:
        """(tracks, dets) similarity; -inf where a pair may not match."""
        sim = np.full((len(tracks), len(dets)), -np.inf)
        if not len(tracks) or not len(dets):
            return sim
        predicted = np.stack([t.predicted_box(self._step) for t in tracks])
        iou = box_iou(predicted, instances.boxes[dets])
        same_class = np.array([t.class_id for t in tracks])[:, None] == instances.class_ids[dets][None, :]
        ok = same_class & (iou >= floor) & (iou > 0)
        for r, c in zip(*np.nonzero(ok)):
            track = tracks[r]
            dx, dy = track.predicted_shift(self._step)
            moved = track.mask_box + np.array([dx, dy, dx, dy])
            d = int(dets[c])
            m_iou = crop_iou(track.mask, moved.tolist(), instances.masks[d], instances.mask_boxes[d].tolist())
            sim[r, c] = iou[r, c] + self.config.mask_weight * m_iou
        return sim

    def _match(
        self, tracks: list[_Track], instances: Instances, dets: np.ndarray, floor: float
    ) -> list[tuple[int, int]]:
        """Optimal (track index, detection index into ``dets``) pairs among allowed ones."""
        sim = self._similarity(tracks, instances, dets, floor)
        allowed = np.isfinite(sim)
        if not allowed.any():
            return []
        big = 2.0 + self.config.mask_weight  # beyond any real cost: maximises the number of matches first
        cost = np.where(allowed, (1.0 + self.config.mask_weight) - np.where(allowed, sim, 0.0), 10 * big)
        return [(r, c) for r, c in linear_assignment(cost) if allowed[r, c]]

    def _update_track(self, track: _Track, instances: Instances, d: int) -> None:
        box = instances.boxes[d].astype(np.float64)
        gap = max(self._step - track.last_step, 1)
        motion = (box - track.box) / gap
        a = self.config.velocity_smoothing
        track.velocity = motion if track.hits == 1 else a * motion + (1 - a) * track.velocity
        track.hits += 1
        track.box = box
        track.mask = instances.masks[d]
        track.mask_box = instances.mask_boxes[d].copy()
        track.last_step = self._step

    def update(self, instances: Instances) -> np.ndarray:
        """Associate one frame's instances with the tracks; returns (N,) int64 track ids."""
        self._step += 1
        cfg = self.config
        ids = np.full(len(instances), UNTRACKED, dtype=np.int64)
        scores = instances.scores
        high = np.nonzero(scores >= cfg.high_score)[0]
        low = np.nonzero((scores >= cfg.low_score) & (scores < cfg.high_score))[0]

        pool = list(self._tracks)
        matched: set[int] = set()  # id() of tracks matched this frame
        for r, c in self._match(pool, instances, high, cfg.match_iou):
            self._update_track(pool[r], instances, int(high[c]))
            ids[high[c]] = pool[r].id
            matched.add(id(pool[r]))
        unmatched_high = [int(d) for d in high if ids[d] == UNTRACKED]

        recent = [t for t in pool if id(t) not in matched and t.last_step == self._step - 1]
        for r, c in self._match(recent, instances, low, cfg.low_match_iou):
            self._update_track(recent[r], instances, int(low[c]))
            ids[low[c]] = recent[r].id
            matched.add(id(recent[r]))

        self._tracks = [t for t in pool if self._step - t.last_step <= cfg.max_lost]
        for d in unmatched_high:
            track = _Track(
                id=self._next_id,
                class_id=int(instances.class_ids[d]),
                box=instances.boxes[d].astype(np.float64),
                velocity=np.zeros(4),
                mask=instances.masks[d],
                mask_box=instances.mask_boxes[d].copy(),
                last_step=self._step,
            )
            self._next_id += 1
            self._tracks.append(track)
            ids[d] = track.id
        return ids


# --------------------------------------------------------------------------- summaries
@dataclass
class _TrackStats:
    label: str
    first_frame: int
    last_frame: int
    frames: int = 0
    score_sum: float = 0.0


@dataclass
class TrackLog:
    """Per-track statistics over a clip: label, first/last frame, frames seen, mean score."""

    _stats: dict[int, _TrackStats] = field(default_factory=dict)

    def add(self, frame: int, instances: Instances, ids: np.ndarray) -> None:
        for i, tid in enumerate(ids.tolist()):
            if tid == UNTRACKED:
                continue
            stats = self._stats.get(tid)
            if stats is None:
                stats = self._stats[tid] = _TrackStats(instances.class_names[i], frame, frame)
            stats.last_frame = frame
            stats.frames += 1
            stats.score_sum += float(instances.scores[i])

    def __len__(self) -> int:
        return len(self._stats)

    def entries(self) -> list[dict[str, Any]]:
        """One JSON-ready dict per track, by id."""
        return [
            {
                "id": tid,
                "label": s.label,
                "first_frame": s.first_frame,
                "last_frame": s.last_frame,
                "frames": s.frames,
                "mean_score": round(s.score_sum / s.frames, 4),
            }
            for tid, s in sorted(self._stats.items())
        ]
