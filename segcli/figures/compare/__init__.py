"""``segcli compare semantic-vs-instance``: one image as classification, detection, semantic and
instance segmentation, and the numbers that tell the last two apart.

- :mod:`segcli.figures.compare.stats`: the per-class numbers and the ``segcli.compare/1`` record;
- :mod:`segcli.figures.compare.figure`: the four panels and the 2x2 figure;
- :mod:`segcli.figures.compare.run`: one image end to end (:func:`run_compare`).

``segcli compare proposals`` (the same image at several RPN proposal counts) lives in
:mod:`segcli.figures.compare.proposals`, imported on its own.

Nothing here imports torch until a semantic model is run.
"""

from __future__ import annotations

from segcli.figures.compare.figure import (
    PANEL_TITLES,
    ClassificationAnnotator,
    GridLayout,
    PanelBox,
    SemanticAnnotator,
    compare_panels,
    compose_figure,
    grid_layout,
    panel_size,
    resize_label_map,
    semantic_color,
    title_font,
)
from segcli.figures.compare.run import (
    SEMANTIC_SOURCES,
    CompareResult,
    FigureResult,
    check_semantic_source,
    figure_paths,
    run_compare,
    run_figure,
    write_figure,
)
from segcli.figures.compare.stats import (
    CONNECTIVITY,
    SCHEMA,
    VOC_TO_COCO,
    ClassStats,
    class_stats,
    coco_name,
    compare_record,
    count_regions,
    voc_names_as_coco,
)

__all__ = [
    "CONNECTIVITY",
    "PANEL_TITLES",
    "SCHEMA",
    "SEMANTIC_SOURCES",
    "VOC_TO_COCO",
    "ClassStats",
    "ClassificationAnnotator",
    "CompareResult",
    "FigureResult",
    "GridLayout",
    "PanelBox",
    "SemanticAnnotator",
    "check_semantic_source",
    "class_stats",
    "coco_name",
    "compare_panels",
    "compare_record",
    "compose_figure",
    "count_regions",
    "figure_paths",
    "grid_layout",
    "panel_size",
    "resize_label_map",
    "run_compare",
    "run_figure",
    "semantic_color",
    "title_font",
    "voc_names_as_coco",
    "write_figure",
]
