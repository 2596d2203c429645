"""``segcli compare semantic-vs-instance`` on one image, end to end: segment, map, count, draw, write.

The semantic map comes either from the instances themselves (``derived``: each pixel the
class of the instance that owns it, :meth:`Instances.label_map`) or from a torchvision
semantic model of the registry (``segcli.inference.forward.semantic_segment``, VOC class indices, named
the COCO way with :func:`voc_names_as_coco`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from segcli.core.errors import UsageError
from segcli.figures.compare.figure import compare_panels, compose_figure, count_lines
from segcli.figures.compare.stats import ClassStats, class_stats, compare_record, voc_names_as_coco
from segcli.io.images import DEFAULT_MAX_PIXELS, atomic_write_bytes, read_image
from segcli.io.locks import output_lock
from segcli.models.registry import SEMANTIC_MODELS
from segcli.outputs.plans import fit_name
from segcli.outputs.records import dumps
from segcli.outputs.writers import encode_image

if TYPE_CHECKING:
    from segcli.models.weights import Loaded
    from segcli.runs.engines.base import SegmenterLike

SEMANTIC_SOURCES: tuple[str, ...] = ("derived", *SEMANTIC_MODELS)
"""``--semantic`` choices: ``derived`` from the instances, the others the registry's semantic models."""


def check_semantic_source(source: str, weights: Path | None = None) -> str:
    """Validate ``--semantic`` (and that ``--semantic-weights`` goes with a model)."""
    name = source.strip().lower()
    if name not in SEMANTIC_SOURCES:
        raise UsageError(f"unknown --semantic {source!r}; choose one of: {', '.join(SEMANTIC_SOURCES)}")
    if weights is not None and name == "derived":
        *rest, last = SEMANTIC_MODELS
        raise UsageError(
            f"--semantic-weights needs a semantic model: pass --semantic {', '.join(rest)} or {last}"
        )
    return name


# --------------------------------------------------------------------------- files
def figure_paths(image_path: Path, out_dir: Path, kind: str) -> tuple[Path, Path]:
    """``<out>/<image name>.<kind>.png`` and ``<out>/<image name>.<kind>.json`` (a name too
    long for the file system shortened as batch outputs are, :func:`segcli.outputs.plans.fit_name`)."""
    name = fit_name(Path(image_path).name, Path(image_path).name)
    return out_dir / f"{name}.{kind}.png", out_dir / f"{name}.{kind}.json"


def write_figure(figure_path: Path, json_path: Path, figure: np.ndarray, record: dict[str, Any]) -> None:
    """Write the figure, then the JSON (atomically, each): a JSON file means its figure is there.
    The folder is locked (shared) meanwhile: a batch running there refuses this, or is refused."""
    with output_lock(json_path.parent, shared=True):
        atomic_write_bytes(figure_path, encode_image(figure, ".png"))
        atomic_write_bytes(json_path, dumps(record))


# --------------------------------------------------------------------------- one image, end to end
@dataclass(frozen=True)
class FigureResult:
    """What a one-image figure command (compare, compare proposals, explain) wrote."""

    figure_path: Path
    json_path: Path
    record: dict[str, Any]

    def paths(self) -> dict[str, Path]:
        return {"figure": self.figure_path, "json": self.json_path}


T = TypeVar("T")


def run_figure(
    segmenter: SegmenterLike,
    image_path: Path,
    out_dir: Path,
    kind: str,
    max_pixels: int | None,
    analyse: Callable[[np.ndarray], T],
    make_record: Callable[..., dict[str, Any]],
    draw: Callable[[np.ndarray, T], np.ndarray],
) -> tuple[Path, Path, dict[str, Any], T]:
    """Read ``image_path``, ``analyse`` its pixels, write ``draw(pixels, analysis)`` and
    ``make_record(analysis, image_path=, model=, settings=, figure=)`` as
    <image name>.<kind>.png / .json; returns (figure path, JSON path, record, analysis)."""
    image_path = Path(image_path)
    pixels = read_image(image_path, max_pixels=max_pixels).pixels
    analysis = analyse(pixels)
    figure_path, json_path = figure_paths(image_path, out_dir, kind)
    record = make_record(
        analysis,
        image_path=str(image_path),
        model=segmenter.model_info(),
        settings=segmenter.settings.to_dict(),
        figure=figure_path.name,
    )
    write_figure(figure_path, json_path, draw(pixels, analysis), record)
    return figure_path, json_path, record, analysis


@dataclass(frozen=True)
class CompareResult(FigureResult):
    """What :func:`run_compare` wrote, and the numbers it wrote there."""

    stats: tuple[ClassStats, ...]


def run_compare(
    segmenter: SegmenterLike,
    image_path: Path,
    out_dir: Path,
    *,
    semantic_model: Loaded | None = None,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
) -> CompareResult:
    """Segment ``image_path``, build its semantic map, write the figure and the JSON.

    Without ``semantic_model`` the map is derived from the instances (``"derived"``);
    with one (``segcli.models.weights.load_model(name, task="semantic")``) it is that model's, in
    VOC classes named the COCO way.
    """
    image_path = Path(image_path)
    pixels = read_image(image_path, max_pixels=max_pixels).pixels
    [instances] = segmenter([pixels])
    if semantic_model is None:
        semantic = "derived"
        semantic_map = instances.label_map(instances.class_ids, dtype=np.int32)
        names = dict(enumerate(segmenter.categories))
        semantic_info = None
    else:
        from segcli.inference.forward import semantic_segment

        semantic = semantic_model.spec.name
        semantic_map = semantic_segment(semantic_model, pixels)
        names = voc_names_as_coco(semantic_model.categories)
        semantic_info = semantic_model.info()
    stats = class_stats(instances, semantic_map, names)
    figure = compose_figure(
        compare_panels(pixels, instances, semantic_map, names, semantic=semantic), footer=count_lines(stats)
    )
    figure_path, json_path = figure_paths(image_path, out_dir, "compare")
    record = compare_record(
        stats,
        image_path=str(image_path),
        image_size=instances.image_size,
        semantic=semantic,
        figure=figure_path.name,
        model=segmenter.model_info(),
        semantic_model=semantic_info,
        settings=segmenter.settings.to_dict(),
    )
    write_figure(figure_path, json_path, figure, record)
    return CompareResult(figure_path=figure_path, json_path=json_path, record=record, stats=tuple(stats))
