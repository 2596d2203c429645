"""Output plans and names: which files an input gets (``--save`` kinds), their names (mirrored
tree, shortened with a hash past NAME_MAX, collisions suffixed), completeness, the output marker."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from segcli.core.errors import SegcliError, UsageError
from segcli.core.jsonio import parse_json
from segcli.io.files import NAME_MAX, atomic_write_bytes, make_folders, name_bytes, truncate_name
from segcli.io.video import is_video_path
from segcli.outputs.records import SCHEMA

OUTPUT_KINDS = ("overlay", "json", "masks", "idmap", "polygons", "yolo", "labelme")
DEFAULT_SAVE = ("overlay", "json")
YOLO_DIR = "yolo"
LABELME_DIR = "labelme"


def parse_save(text: str, defaults: Sequence[str] = DEFAULT_SAVE) -> tuple[str, ...]:
    """``--save`` as output kinds: a list replaces ``defaults``; a list that starts with ``+``
    (``+masks``, ``+masks,idmap``) is added to them. ``polygons`` lives in the JSON, so it brings
    ``json`` along."""
    additive = text.strip().startswith("+")
    parts = [part.strip().lstrip("+").strip().lower() for part in text.split(",")]
    kinds = tuple(dict.fromkeys(part for part in parts if part))
    unknown = [k for k in kinds if k not in OUTPUT_KINDS]
    if unknown or not kinds:
        raise UsageError(
            f"--save {text!r}: unknown output {unknown[0]!r}; choose from {', '.join(OUTPUT_KINDS)}"
            if unknown
            else "--save names no output"
        )
    if additive:
        kinds = tuple(dict.fromkeys((*defaults, *kinds)))
    if "polygons" in kinds and "json" not in kinds:
        kinds = (*kinds, "json")
    return kinds


def numbered_folder(base: Path, *, limit: int = 10_000) -> Path:
    """A new folder for this run: ``base`` if it does not exist yet, else the first of
    ``base-2``, ``base-3``, ... that does not. Made here with an exclusive ``mkdir``, so two runs
    started at once never share one (an existing folder, even an empty one, is never taken)."""
    make_folders(base.parent)
    for n in range(1, limit + 1):
        candidate = base if n == 1 else base.with_name(f"{base.name}-{n}")
        try:
            os.mkdir(candidate)
        except FileExistsError:
            continue
        return candidate
    raise SegcliError(f"{base}-2 ... {base}-{limit} all exist: pick another --output")


def outputs_present(plan: OutputPlan, kinds: Iterable[str]) -> bool:
    """Whether any output of ``plan`` (of these ``kinds``) is already on the disk."""
    return any(path.exists() for path in plan.paths(kinds).values())


# --------------------------------------------------------------------------- planning
OUTPUT_SUFFIXES = {
    "json": ".json",
    "polygons": ".json",  # polygons are a field of the JSON
    "overlay": ".overlay{ext}",  # .jpg for JPEG inputs, else .png
    "masks": ".masks",
    "idmap": ".idmap.png",
}
EXTRA_SUFFIXES = (".idmap.preview.png", ".compare.json", ".explain.json", ".proposals.json")
"""Other names derived from an input's: the id map's colour preview, the figures' JSON."""
LONGEST_SUFFIX = max(len(x) for x in (*OUTPUT_SUFFIXES.values(), *EXTRA_SUFFIXES))
"""The longest suffix segcli adds to an input's name (``.idmap.preview.png``)."""
MAX_BASE_BYTES = NAME_MAX - LONGEST_SUFFIX
"""Longer input names are shortened (see :func:`fit_name`) so that every derived name fits."""
RESERVED_NAMES = frozenset(
    {"run.json", "coco.json", "coco-results.json", ".segcli-output", YOLO_DIR, LABELME_DIR}
)
"""What a run writes at the top of its output folder: no input's outputs may take these names."""


def path_tag(text: str) -> str:
    """8 hex digits from ``text`` (its on-disk bytes): the suffix that keeps outputs apart."""
    return hashlib.sha1(os.fsencode(text)).hexdigest()[:8]


def fit_name(name: str, key: str, limit: int = MAX_BASE_BYTES) -> str:
    """``name`` if it fits in ``limit`` bytes, else ``<prefix>~<path_tag(key)><suffix>``.

    Deterministic (the same ``key`` gives the same name, so a resumed run finds its outputs),
    unique (the tag comes from the whole ``key``), the image suffix kept for readers.
    """
    if name_bytes(name) <= limit:
        return name
    suffix = Path(name).suffix
    if name_bytes(suffix) > 16:
        suffix = ""
    tag = f"~{path_tag(key)}{suffix}"
    return truncate_name(name, limit - name_bytes(tag)) + tag


@dataclass(frozen=True)
class OutputPlan:
    """Where one input's outputs go. ``key`` is ``base`` relative to the output folder: the
    input's path relative to the run's root, unless a suffix had to keep it apart (unique).

    ``stem`` is ``key`` without its extension (unique in the run): YOLO-seg and LabelMe
    pair a label file with its image by that name (``photo.jpg`` -> ``photo.txt``).
    """

    source: Path
    key: str
    base: Path
    stem: str = ""

    @property
    def out_dir(self) -> Path:
        """The run's output folder (``base`` is ``out_dir / key``)."""
        return self.base.parents[len(Path(self.key).parts) - 1]

    @property
    def is_video(self) -> bool:
        return is_video_path(self.source)

    def paths(self, save: Iterable[str]) -> dict[str, Path]:
        if self.is_video:
            return video_paths(self.base, save)
        name = self.base.name
        ext = ".jpg" if self.source.suffix.lower() in (".jpg", ".jpeg") else ".png"
        stem = self.stem or Path(self.key).with_suffix("").as_posix()
        out: dict[str, Path] = {}
        for kind in save:
            if kind == "yolo":
                out[kind] = self.out_dir / YOLO_DIR / "labels" / f"{stem}.txt"
            elif kind == "labelme":
                out[kind] = self.out_dir / LABELME_DIR / f"{stem}.json"
            else:
                out[kind] = self.base.with_name(name + OUTPUT_SUFFIXES[kind].format(ext=ext))
        return out


def video_paths(base: Path, save: Iterable[str]) -> dict[str, Path]:
    """Outputs of a video named after ``base`` (e.g. ``out/clip.mp4``).

    ``overlay`` -> ``clip.mp4.overlay.mp4``; ``json`` -> ``clip.mp4.jsonl`` (one record per
    frame) under the key ``jsonl``; the ``segcli.video/1`` summary ``clip.mp4.json`` (key
    ``json``) comes with any of them: written last, it marks the video complete. Nothing
    when ``save`` is empty (``predict --json -``). ``masks``, ``idmap``, ``polygons``, ``yolo``
    and ``labelme`` are image outputs, not made for videos (the JSONL holds every frame's masks).
    """
    kinds = set(save)
    name = base.name
    paths: dict[str, Path] = {}
    if not kinds:
        return paths
    if "overlay" in kinds:
        paths["overlay"] = base.with_name(f"{name}.overlay.mp4")
    if "json" in kinds:
        paths["jsonl"] = base.with_name(f"{name}.jsonl")
    paths["json"] = base.with_name(f"{name}.json")
    return paths


def _output_names(name: str) -> set[str]:
    """Every name (case-folded) an input whose output base is ``name`` may write beside it."""
    return {
        (name + suffix.format(ext=ext)).casefold()
        for suffix in (*OUTPUT_SUFFIXES.values(), EXTRA_SUFFIXES[0])
        for ext in (".jpg", ".png")
    }


def plan_outputs(sources: Sequence[Path], out_dir: Path, root: Path | None = None) -> list[OutputPlan]:
    """One plan per source; outputs mirror the tree under ``root`` (or use bare names).

    Two sources never share an output, and no output takes the name of a folder the tree
    needs (an input folder ``a.png.json/`` beside ``a.png``) or of a run file: such a name
    (also when it differs only in case, for case-insensitive disks) gets a suffix made from
    its path. Names too long for the file system are shortened (:func:`fit_name`).
    """
    rels = [src.relative_to(root) if root is not None else Path(src.name) for src in sources]
    counts: dict[str, int] = {}
    stems: dict[str, int] = {}
    for rel in rels:
        counts[rel.as_posix().casefold()] = counts.get(rel.as_posix().casefold(), 0) + 1
        stem = rel.with_suffix("").as_posix().casefold()
        stems[stem] = stems.get(stem, 0) + 1
    folders = {parent.as_posix().casefold() for rel in rels for parent in rel.parents}
    plans = []
    for src, rel in zip(sources, rels):
        tag = path_tag(str(src.resolve()))
        parent, name = rel.parent, rel.name
        clash = counts[rel.as_posix().casefold()] > 1 or any(
            (parent / out).as_posix().casefold() in folders for out in _output_names(name)
        )
        name = fit_name(f"{name}~{tag}", str(src.resolve())) if clash else fit_name(name, rel.as_posix())
        stem_name = rel.with_suffix("").name
        if stems[rel.with_suffix("").as_posix().casefold()] > 1:  # photo.jpg and photo.png: one label name
            stem_name = f"{stem_name}~{tag}"
        stem_name = fit_name(stem_name, rel.as_posix(), NAME_MAX - len(".json"))
        if parent.parts and parent.parts[0].casefold() in RESERVED_NAMES:  # an input folder "run.json/"
            top = parent.parts[0]
            parent = Path(f"{top}~{path_tag(top)}", *parent.parts[1:])
        plans.append(
            OutputPlan(
                source=src,
                key=(parent / name).as_posix(),
                base=out_dir / parent / name,
                stem=(parent / stem_name).as_posix(),
            )
        )
    return plans


def outputs_complete(paths: dict[str, Path]) -> bool:
    """All outputs exist (a path the file system refuses counts as missing) and the per-image
    JSON, if among them, is a complete record."""
    try:
        if not all(p.exists() for p in paths.values()):
            return False
    except OSError:
        return False
    return "json" not in paths or read_record(paths["json"]) is not None


def read_record(path: Path) -> dict[str, Any] | None:
    """The ``segcli.instances/1`` record at ``path``, or None if it is missing, empty,
    truncated or not such a record (a file to redo, not to trust)."""
    try:
        record = parse_json(path.read_bytes())
    except (OSError, ValueError):
        return None
    if (
        not isinstance(record, dict)
        or record.get("schema") != SCHEMA
        or not isinstance(record.get("image"), dict)
        or not isinstance(record.get("instances"), list)
    ):
        return None
    return record


OUTPUT_MARKER = ".segcli-output"
"""A file in every folder segcli writes outputs to; ``batch`` does not descend into such folders."""


def mark_output(out_dir: Path) -> None:
    """Create ``out_dir`` (and parents) and write its :data:`OUTPUT_MARKER` if missing.

    Written at the start of a run, before any output: a later ``batch`` over a folder that
    holds this one skips it instead of segmenting overlays. An error here (read-only disk,
    ``out_dir`` a file) is the caller's first sign that the folder cannot be written.
    """
    make_folders(out_dir)
    marker = out_dir / OUTPUT_MARKER
    if not marker.is_file():
        atomic_write_bytes(marker, b"segcli output folder: segcli batch does not descend into it.\n")
