"""What several commands share: the output/run options, the checks every command runs before
any model loads, and the segmenter loader behind the runtime seam.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from segcli.cli.completion import complete_save
from segcli.cli.options import (
    PANEL_OUTPUTS,
    PANEL_RUN,
    ModelOptions,
)
from segcli.core.errors import SegcliError, UsageError
from segcli.core.settings import DEFAULT_MAX_PIXELS, TILED_MAX_PIXELS

if TYPE_CHECKING:
    pass


# The model options (--model ... --max-size) are declared once, in segcli.cli.options.ModelOptions.
OutputOpt = Annotated[
    Path,
    typer.Option("--output", "-o", help="Output folder.", file_okay=False, rich_help_panel=PANEL_OUTPUTS),
]


SaveOpt = Annotated[
    str | None,
    typer.Option(
        "--save",
        autocompletion=complete_save,
        help="Comma-separated outputs: overlay, json, masks (one PNG per instance, named 000-label.png), "
        "idmap (16-bit id map plus a colour preview), polygons, yolo, labelme. Default: overlay,json. "
        "A list replaces the default; one starting with + adds to it (--save +masks: overlay, json, masks).",
        rich_help_panel=PANEL_OUTPUTS,
    ),
]


BatchSizeOpt = Annotated[
    int,
    typer.Option("--batch-size", help="Images per forward pass (helps on GPU).", rich_help_panel=PANEL_RUN),
]


MaxPixelsOpt = Annotated[
    int,
    typer.Option(
        "--max-pixels",
        help="Refuse images declaring more pixels than this (decompression bombs).",
        rich_help_panel=PANEL_RUN,
    ),
]


TiledMaxPixelsOpt = Annotated[
    int | None,
    typer.Option(
        "--max-pixels",
        help=f"Refuse images declaring more pixels than this (decompression bombs) [{DEFAULT_MAX_PIXELS:,}; "
        f"{TILED_MAX_PIXELS:,} with --tile].",
        show_default=False,
        rich_help_panel=PANEL_RUN,
    ),
]
"""``--max-pixels`` of the commands that take ``--tile``: its default rises with ``--tile``."""


def _max_pixels(max_pixels: int | None, model_opts: ModelOptions) -> int:
    """``--max-pixels`` as given, else its default: higher with ``--tile`` (tiles are read from a
    memory map of the image, so memory no longer grows with it)."""
    if max_pixels is not None:
        return max_pixels
    return TILED_MAX_PIXELS if model_opts.tiling is not None else DEFAULT_MAX_PIXELS


ImageArg = Annotated[
    Path,
    typer.Argument(
        help="Image file.", metavar="IMAGE", exists=True, dir_okay=False, readable=False, show_default=False
    ),
]
"""The one image of compare, compare proposals and explain (opened later, with a clear error)."""


QuietOpt = Annotated[
    bool,
    typer.Option(
        "--quiet",
        "-q",
        help="Errors and warnings only: no progress bar, per-image lines, tables or file list.",
        rich_help_panel=PANEL_RUN,
    ),
]


def _check_writable(out_dir: Path) -> None:
    """Make ``out_dir`` and write its output marker (which proves it writable), or fail in one line;
    a folder a batch is writing into is refused here too, before any model loads."""
    from segcli.io.locks import check_output_free
    from segcli.outputs.plans import mark_output

    try:
        mark_output(out_dir)
    except OSError as exc:
        raise SegcliError(f"cannot write to output folder {out_dir} ({exc.strerror or exc})") from None
    check_output_free(out_dir)


def _check_run_options(batch_size: int = 1, max_pixels: int | None = None) -> None:
    """Usage errors of the options outside ``ModelOptions`` (before any model loads)."""
    if batch_size < 1:
        raise UsageError(f"--batch-size must be at least 1, got {batch_size}")
    if max_pixels is not None and max_pixels < 1:
        raise UsageError(f"--max-pixels must be at least 1, got {max_pixels}")


def _check_model_run(model_opts: ModelOptions, batch_size: int = 1, max_pixels: int | None = None) -> str:
    """Every usage error of the model and run options (exit 2), before the output folder is
    made or any model loads: settings, model name, --classes, batch size, pixel limit, and a
    --precision the device cannot run. Returns the precision that will run."""
    model_opts.check()
    _check_run_options(batch_size, max_pixels)
    return model_opts.check_precision()


def unique_paths(paths: Sequence[Path]) -> list[Path]:
    """``paths`` in order, each file once: a file named twice (also as ``./a.png`` or through
    another relative path) is processed once."""
    seen: set[Path] = set()
    out = []
    for path in paths:
        key = path.resolve()
        if key not in seen:
            seen.add(key)
            out.append(path)
    return out
