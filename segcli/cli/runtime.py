"""The runtime seam: what the commands get from outside (today: how a segmenter is loaded).

The app reads a :class:`Runtime` from the Typer/click context (``ctx.obj``), so a test or an
embedding program passes its own (``app(obj=Runtime(load_segmenter=...))``, or
``CliRunner().invoke(app, args, obj=...)``) instead of patching module attributes. Without
one, :data:`DEFAULT` serves.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from segcli.cli.console import _say_loaded

if TYPE_CHECKING:
    from segcli.cli.options import ModelOptions
    from segcli.runs.engines.base import SegmenterLike


def load_segmenter(opts: ModelOptions, *, quiet: bool = False) -> SegmenterLike:
    """Build the segmenter ``opts`` describe; say which model runs where unless ``quiet``."""
    seg = opts.spec().build(progress=not quiet)
    if not quiet:
        _say_loaded("model", seg.model_info(), seg.device)
    return seg


@dataclass
class Runtime:
    """What the commands take from their surroundings."""

    load_segmenter: Callable[..., SegmenterLike] = field(default=load_segmenter)
    """``load_segmenter(model_options, quiet=...)``: the segmenter a command runs."""


DEFAULT = Runtime()


def runtime() -> Runtime:
    """The :class:`Runtime` of the command being run: the context's ``obj`` when it is one."""
    try:  # typer >= 0.25 carries its own click; older ones use click's
        from typer.main import get_current_context
    except ImportError:  # pragma: no cover
        # the same function in click, under the name the type checker has seen just above
        from click import get_current_context  # type: ignore[no-redef]

    ctx = get_current_context(silent=True)
    found = ctx.find_object(Runtime) if ctx is not None else None
    return found if found is not None else DEFAULT
