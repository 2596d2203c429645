"""Batch engines: how planned inputs become outputs.

An engine takes the plans still to do and a picklable :class:`~segcli.runs.engines.base.Job`,
runs the three stages of every input (read -> segment -> write, in :mod:`.base`) and reports
one small :class:`~segcli.runs.engines.base.ItemResult` per input through ``emit``. Engines
differ only in where and how concurrently the stages run:

- ``local`` (:class:`segcli.runs.engines.local.LocalEngine`): threads on this machine,
  decode and write overlapping the forward pass.
- ``ray`` (:mod:`segcli.runs.engines.ray`): a Ray Data actor pool; each actor builds its own
  segmenter from a :class:`~segcli.runs.engines.base.SegmenterSpec` and writes its own outputs.

Both call the same stage functions, so their outputs are byte-identical. Skipping complete
inputs, run files and the settings check live in :func:`segcli.runs.batch.run_batch`, above
the engines. :func:`select_engine` is the one place an engine is chosen by name.
"""

from __future__ import annotations

from collections.abc import Callable

from segcli.core.errors import SegcliError, UsageError
from segcli.runs.engines.base import Engine, SegmenterLike, SegmenterSpec
from segcli.runs.engines.local import LocalEngine
from segcli.runs.engines.ray import RayEngine, RayOptions, import_ray

ENGINES = ("local", "ray")


def select_engine(
    name: str, *, source: SegmenterSpec | None = None, ray: RayOptions | None = None
) -> Callable[[SegmenterLike], Engine]:
    """The engine called ``name``, as what :func:`segcli.runs.batch.run_batch` takes: a function
    of the loaded segmenter. ``local`` runs on that segmenter; ``ray`` (``source`` required: the
    workers build their own segmenter from it) is built here, so its options and Ray itself are
    checked before any model loads. A bad name or a Ray option without ``ray`` is a
    :class:`UsageError`."""
    ray = (ray or RayOptions()).check()
    if name not in ENGINES:
        raise UsageError(f"unknown --engine {name!r}; choose from {', '.join(ENGINES)}")
    if name == "local":
        if ray.given():
            raise UsageError(f"--{ray.given()[0].replace('_', '-')} needs --engine ray")
        return LocalEngine
    if source is None:
        raise UsageError("--engine ray needs a segmenter spec its workers can build")
    import_ray()  # Ray itself is imported here, only when this engine is chosen
    engine = RayEngine(
        source,
        address=ray.address,
        workers=ray.workers,
        cpus_per_worker=ray.cpus_per_worker,
        gpus_per_worker=ray.gpus_per_worker or 0.0,
    )
    try:  # nothing listening at the address: one line now, not a wait for ever after the model loads
        engine.check_reachable()
    except UsageError:
        raise
    except SegcliError as exc:
        raise UsageError(str(exc)) from None
    return lambda _driver_segmenter: engine


__all__ = ["ENGINES", "RayOptions", "select_engine"]
