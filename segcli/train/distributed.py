"""``segcli train --engine ray --workers N``: data-parallel training with Ray Train.

Ray Train's ``TorchTrainer`` starts N workers on the cluster ``batch --engine ray`` uses (a
local one by default, or ``--ray-address`` / ``RAY_ADDRESS``) and sets up
``torch.distributed`` (gloo on CPUs, nccl on GPUs). Each worker runs the same
:func:`segcli.train.loop.run_train` with a :class:`Parallel`: every step's batch is shared
out between the workers (``--batch-size`` is the global batch, so the schedule, the step
count and the loss curve are a one-process run's), each worker's gradients are weighted by
its share of the images and summed in one all-reduce (what DDP does, without its bucketed
overlap; DDP proper would need ``find_unused_parameters`` for images without objects), and
worker 0 alone writes ``last.pt``, ``best.pt``, ``train.json`` and validates. The files are
the local engine's, so ``--resume`` continues a Ray run with either engine.

The driver (this process) checks the options and the data first (bad data is exit 2 before
Ray starts), then shows the run's progress from ``train.json`` as worker 0 writes it.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import threading
from pathlib import Path
from typing import Any

import torch

from segcli.core.errors import SegcliError, UsageError, first_line
from segcli.core.jsonio import parse_json
from segcli.train.loop import TrainEvents, TrainOptions, TrainResult, check_output, run_train
from segcli.train.parallel import Parallel

INSTALL_HINT = 'segcli train --engine ray needs Ray Train: pip install "segcli[ray]"'


def _worker(config: dict[str, Any]) -> None:
    """Ray Train's per-worker function: one :class:`Parallel` run of the options."""
    import ray.train
    import torch.distributed as dist

    ctx = ray.train.get_context()
    threads = int(config.get("threads") or 0)
    if threads > 0:
        torch.set_num_threads(threads)
    if torch.cuda.is_available() and config.get("gpu"):
        import ray.train.torch

        device = ray.train.torch.get_device()
    else:
        device = torch.device("cpu")
    parallel = Parallel(ctx.get_world_rank(), ctx.get_world_size(), dist.get_backend(), device)
    opts = dataclasses.replace(TrainOptions(**config["opts"]), device=str(device), progress=False)
    run_train(opts, parallel=parallel)


def _options_dict(opts: TrainOptions) -> dict[str, Any]:
    out = dataclasses.asdict(opts)
    for key in ("output", "images", "val_images"):
        if out[key] is not None:
            out[key] = Path(out[key]).absolute()
    return out


def run_train_ray(
    opts: TrainOptions,
    *,
    workers: int = 2,
    address: str | None = None,
    events: TrainEvents | None = None,
    cpus_per_worker: float = 1.0,
    gpus_per_worker: float = 0.0,
) -> TrainResult:
    """Run ``opts`` with ``workers`` data-parallel Ray Train workers (see the module docstring)."""
    from segcli.train.data import read_dataset

    events = events or TrainEvents()
    if workers < 1:
        raise UsageError(f"--workers must be at least 1, got {workers}")
    if opts.batch_size is not None and opts.batch_size < workers:
        raise UsageError(
            f"--batch-size {opts.batch_size} is the global batch: give at least one image per worker "
            f"(--workers {workers})"
        )
    try:
        import ray
        import ray.train
        from ray.train.torch import TorchTrainer
    except ImportError as exc:
        raise UsageError(f"{INSTALL_HINT} ({first_line(exc)})") from None
    out = Path(opts.output).absolute()
    check_output(out, opts.resume)
    if not opts.resume:  # the data check, before Ray starts: bad data is exit 2 at once
        read_dataset(opts.data, opts.images)
        if opts.val is not None:
            read_dataset(opts.val, opts.val_images)
    owned = False
    if not ray.is_initialized():
        target = address or os.environ.get("RAY_ADDRESS") or None
        options: dict[str, Any] = {
            "address": target,
            "include_dashboard": False,
            "log_to_driver": False,
            "logging_level": logging.ERROR,
        }
        if not target:  # a local instance with room for every worker
            options["num_cpus"] = max(os.cpu_count() or 1, int(workers * cpus_per_worker))
        try:
            ray.init(**options)
        except ConnectionError as exc:
            raise SegcliError(f"cannot connect to the Ray cluster at {target} ({first_line(exc)})") from None
        owned = True
    events.note(
        f"Ray Train: {workers} workers x {cpus_per_worker:g} CPU{'s' if cpus_per_worker != 1 else ''}"
    )
    config = {
        "opts": _options_dict(opts),
        "threads": max(1, int(cpus_per_worker)),
        "gpu": gpus_per_worker > 0,
    }
    resources = {"CPU": cpus_per_worker, **({"GPU": gpus_per_worker} if gpus_per_worker else {})}
    trainer = TorchTrainer(
        _worker,
        train_loop_config=config,
        scaling_config=ray.train.ScalingConfig(
            num_workers=workers, use_gpu=gpus_per_worker > 0, resources_per_worker=resources
        ),
        run_config=ray.train.RunConfig(storage_path=str(out / ".ray"), name="train"),
    )
    failure: list[BaseException] = []

    def fit() -> None:
        try:
            trainer.fit()
        except BaseException as exc:
            failure.append(exc)

    thread = threading.Thread(target=fit, name="segcli-ray-train", daemon=True)
    thread.start()
    shown = 0
    try:
        while thread.is_alive():
            thread.join(0.5)
            shown = _show_epochs(out, shown, events)
        shown = _show_epochs(out, shown, events)
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM: the workers stop with Ray; last.pt is kept
        if owned:
            ray.shutdown()
            owned = False
        _mark_interrupted(out)
        raise
    finally:
        if owned:
            ray.shutdown()
    if failure:
        error = failure[0]
        cause = getattr(error, "__cause__", None) or error
        if isinstance(cause, SegcliError):
            raise cause
        raise SegcliError(f"the Ray Train run failed: {first_line(cause)}") from None
    shutil.rmtree(out / ".ray", ignore_errors=True)  # Ray Train's own run state: not needed after
    record = parse_json((out / "train.json").read_text(encoding="utf-8"))
    best = out / "best.pt"
    return TrainResult(out, out / "last.pt", best if best.is_file() else None, record)


def _mark_interrupted(out: Path) -> None:
    """train.json says how the run ended (worker 0, stopped with Ray, could not)."""
    from segcli.io.files import atomic_write_bytes
    from segcli.outputs.writers import dumps

    try:
        record = parse_json((out / "train.json").read_text(encoding="utf-8"))
        record["status"] = "interrupted"
        atomic_write_bytes(out / "train.json", dumps(record))
    except (OSError, ValueError):
        pass


def _show_epochs(out: Path, shown: int, events: TrainEvents) -> int:
    try:
        record = parse_json((out / "train.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return shown
    epochs = record.get("epochs") or []
    for rec in epochs[shown:]:
        if "val" in rec:
            events.epoch_done(rec)
            shown += 1
        else:
            break
    return shown
