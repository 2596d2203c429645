"""``run_train``: one training run, from the data check to ``best.pt``.

The run folder (``-o runs/NAME``) ends up holding

- ``last.pt``: the weights, the optimiser, the random-number states and the position in the
  run (written atomically at every epoch end, every ``save_every`` minutes and on Ctrl-C or
  SIGTERM); ``--resume`` continues from it.
- ``best.pt``: the weights of the epoch with the best validation mask AP.
- ``train.json`` (``segcli.train/1``): the settings, the data summary, per-epoch losses and
  validation AP (COCOeval's, by ``segcli eval``'s own code: see :mod:`segcli.train.validate`).
- ``curves.png``; ``val.json`` (when the validation set is not a COCO file as it is) and
  ``val/`` (the latest validation's ``eval.json``, ``coco.json`` and per-class PR curves).

Both checkpoints carry the class names, the model they were trained as, their input size and
the training settings (:class:`segcli.models.weights.CheckpointMeta`), so ``segcli predict
--weights runs/NAME/best.pt`` needs no other option.

Determinism: the data order, each example's scale and flip, the model's initialisation and
its samplers depend only on ``--seed`` (and the epoch and position), and every random state
is saved in ``last.pt``; with ``--epochs``, a run killed and resumed (``kill -9``, Ctrl-C,
SIGTERM) ends with the same weights as one never stopped, up to float rounding. With
``--time`` the schedule follows the clock, so a run depends on the machine's speed (a resumed
run gets what is left of its budget).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import math
import os
import signal
import socket
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import torch
from torch import Tensor

from segcli.core.errors import SegcliError, UsageError
from segcli.core.jsonio import parse_json
from segcli.train.augment import Augment, example_rng, load_pixels, make_example
from segcli.train.data import (
    SCENE_VAL_COUNT,
    Dataset,
    Sample,
    read_dataset,
    scene_from_render,
    split_dataset,
)
from segcli.train.schedule import SCHEDULES, Schedule
from segcli.train.validate import ValSet, evaluate_checkpoint, write_val_coco

if TYPE_CHECKING:
    from segcli.train.parallel import Parallel

TRAIN_SCHEMA = "segcli.train/1"
RUN_FILES = ("train.json", "last.pt", "best.pt")
OPTIMIZERS = ("sgd", "adamw")
NORMS = ("auto", "frozen", "train")
LOSS_NAMES = ("loss_classifier", "loss_box_reg", "loss_mask", "loss_objectness", "loss_rpn_box_reg")
"""What torchvision's Mask R-CNN returns in training mode."""
MAX_BAD_STEPS = 20
"""Consecutive steps with a non-finite loss before the run gives up (a learning rate too high)."""
SPLIT_SEED = 0
"""The held-out split of DATA is fixed: it does not follow --seed."""

DEFAULTS: dict[str, Any] = {
    "model": "coco",
    "weights": None,
    "epochs": 10,
    "time_minutes": None,
    "batch_size": 2,
    "lr": None,  # per optimiser: DEFAULT_LR
    "optimizer": "sgd",
    "momentum": 0.9,
    "weight_decay": None,  # per optimiser: DEFAULT_WEIGHT_DECAY
    "schedule": "cosine",
    "warmup": 0.05,
    "min_size": None,  # the model's own
    "max_size": None,
    "precision": "auto",
    "freeze": "auto",
    "seed": 0,
    "scale_jitter": 0.25,
    "hflip": 0.5,
    "val_fraction": 0.1,
    "grad_clip": 10.0,
    "keep_rows": True,
    "norms": "auto",
}
DEFAULT_LR = {"sgd": 0.01, "adamw": 1e-4}
DEFAULT_WEIGHT_DECAY = {"sgd": 1e-4, "adamw": 0.01}
RECIPE_FIELDS = tuple(DEFAULTS)


@dataclass(frozen=True)
class TrainOptions:
    """One run. ``None`` is "the default" (:data:`DEFAULTS`), or with ``resume`` "what the run
    was started with"; a value given with ``resume`` must equal the recorded one."""

    data: str
    output: Path
    images: Path | None = None
    val: str | None = None
    val_images: Path | None = None
    model: str | None = None
    weights: str | None = None  # a path, None (the model's own weights) or "none" (random)
    epochs: int | None = None
    time_minutes: float | None = None
    batch_size: int | None = None
    lr: float | None = None
    optimizer: str | None = None
    momentum: float | None = None
    weight_decay: float | None = None
    schedule: str | None = None
    warmup: float | None = None
    min_size: int | None = None
    max_size: int | None = None
    precision: str | None = None
    freeze: str | None = None
    seed: int | None = None
    scale_jitter: float | None = None
    hflip: float | None = None
    val_fraction: float | None = None
    grad_clip: float | None = None
    keep_rows: bool | None = None
    norms: str | None = None
    device: str = "auto"
    resume: bool = False
    save_every: float = 5.0  # minutes between mid-epoch saves of last.pt
    progress: bool = True  # the download progress of COCO weights


@dataclass
class TrainResult:
    output: Path
    last: Path
    best: Path | None
    record: dict[str, Any]

    @property
    def best_ap(self) -> float | None:
        best = self.record.get("best") or {}
        value = best.get("mask_AP")
        return float(value) if isinstance(value, (int, float)) else None


class TrainEvents:
    """Hooks a caller overrides to show progress (the CLI: a bar, or a line per epoch)."""

    def note(self, text: str) -> None:
        """A line about the run (data split, head replacement, resume point)."""

    def epoch_started(self, epoch: int, epochs: int | None, steps: int) -> None:
        """``epochs`` is None with a time budget."""

    def step(
        self, epoch: int, done: int, steps: int, loss: float, images_per_second: float, eta: float
    ) -> None:
        """``eta``: seconds left in this epoch (or of the budget, whichever is shorter)."""

    def validating(self, epoch: int) -> None: ...

    def epoch_done(self, record: dict[str, Any]) -> None: ...


# --------------------------------------------------------------------------- settings
def _finite(
    name: str, value: float, *, low: float | None = None, high: float | None = None, open_low: bool = False
) -> None:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        raise UsageError(f"{name} must be a finite number, got {value!r}")
    if low is not None and (value < low or (open_low and value == low)):
        raise UsageError(f"{name} must be {'above' if open_low else 'at least'} {low:g}, got {value:g}")
    if high is not None and value > high:
        raise UsageError(f"{name} must be at most {high:g}, got {value:g}")


def check_settings(s: dict[str, Any]) -> None:
    """Usage errors of the recipe (exit 2, before any data is read)."""
    if s["epochs"] is not None and s["time_minutes"] is not None:
        raise UsageError("give --epochs or --time, not both")
    if s["epochs"] is not None and (
        isinstance(s["epochs"], bool) or not isinstance(s["epochs"], int) or s["epochs"] < 1
    ):
        raise UsageError(f"--epochs must be at least 1, got {s['epochs']}")
    if s["time_minutes"] is not None:
        _finite("--time (minutes)", s["time_minutes"], low=0.0, open_low=True)
    if not isinstance(s["batch_size"], int) or s["batch_size"] < 1:
        raise UsageError(f"--batch-size must be at least 1, got {s['batch_size']}")
    if s["optimizer"] not in OPTIMIZERS:
        raise UsageError(f"--optimizer {s['optimizer']!r}: choose {', '.join(OPTIMIZERS)}")
    _finite("--lr", s["lr"], low=0.0, open_low=True, high=10.0)
    _finite("--momentum", s["momentum"], low=0.0, high=0.999)
    _finite("--weight-decay", s["weight_decay"], low=0.0, high=1.0)
    if s["schedule"] not in SCHEDULES:
        raise UsageError(f"--schedule {s['schedule']!r}: choose {', '.join(SCHEDULES)}")
    _finite("--warmup", s["warmup"], low=0.0, high=1e9)
    if 0 < s["warmup"] < 1 and s["warmup"] > 0.5:
        raise UsageError(f"--warmup {s['warmup']:g}: a fraction of the run must be at most 0.5")
    if s["warmup"] >= 1 and s["warmup"] != int(s["warmup"]):
        raise UsageError(f"--warmup {s['warmup']:g}: give a fraction below 1 or a whole number of steps")
    for name in ("min_size", "max_size"):
        value = s[name]
        if value is not None and (not isinstance(value, int) or not 32 <= value <= 10000):
            raise UsageError(f"--{name.replace('_', '-')} must be a whole number in 32..10000, got {value}")
    if s["min_size"] is not None and s["max_size"] is not None and s["min_size"] > s["max_size"]:
        raise UsageError(f"--min-size ({s['min_size']}) must not exceed --max-size ({s['max_size']})")
    if not isinstance(s["seed"], int) or s["seed"] < 0:
        raise UsageError(f"--seed must be a whole number >= 0, got {s['seed']}")
    _finite("--scale-jitter", s["scale_jitter"], low=0.0, high=0.9)
    _finite("--flip", s["hflip"], low=0.0, high=1.0)
    _finite("--val-fraction", s["val_fraction"], low=0.0, high=0.5, open_low=True)
    _finite("--grad-clip", s["grad_clip"], low=0.0)
    if s["norms"] not in NORMS:
        raise UsageError(f"--norms {s['norms']!r}: choose {', '.join(NORMS)}")


def resolve_settings(opts: TrainOptions, recorded: dict[str, Any] | None) -> dict[str, Any]:
    """The full recipe: given values, else the recorded ones (``--resume``), else the defaults."""
    given = {k: getattr(opts, k) for k in RECIPE_FIELDS}
    if recorded is not None:
        clash = []
        for k, v in given.items():
            if v is None or k not in recorded:
                continue
            if k == "epochs" and recorded.get("time_minutes") is not None:
                clash.append("--epochs (the run has a --time budget)")
            elif k == "time_minutes" and recorded.get("epochs") is not None:
                clash.append("--time (the run counts --epochs)")
            elif v != recorded[k] and not (k == "weights" and str(v) == str(recorded[k])):
                clash.append(
                    f"--{k.replace('_', '-').replace('time-minutes', 'time')} {v} (the run has {recorded[k]})"
                )
        if clash:
            raise UsageError(
                f"--resume continues the run as it was started: {'; '.join(clash)}; leave these options out"
            )
        settings = {k: recorded.get(k, DEFAULTS[k]) for k in RECIPE_FIELDS}
    else:
        settings = {k: DEFAULTS[k] if v is None else v for k, v in given.items()}
        if opts.time_minutes is not None and opts.epochs is None:
            settings["epochs"] = None
        if settings["lr"] is None:
            settings["lr"] = DEFAULT_LR.get(settings["optimizer"], 0.01)
        if settings["weight_decay"] is None:
            settings["weight_decay"] = DEFAULT_WEIGHT_DECAY.get(settings["optimizer"], 1e-4)
        if settings["weights"] is not None and settings["weights"] != "none":
            settings["weights"] = str(Path(settings["weights"]).expanduser().absolute())
    check_settings(settings)
    return settings


# --------------------------------------------------------------------------- the run folder
def check_output(out: Path, resume: bool) -> None:
    if out.exists() and not out.is_dir():
        raise UsageError(f"-o {out} is a file; give a folder for the run")
    held = [name for name in RUN_FILES if (out / name).exists()]
    if resume:
        if not (out / "last.pt").is_file():
            raise UsageError(f"--resume: {out} holds no last.pt to continue from")
        return
    if held:
        raise UsageError(
            f"{out} already holds a training run ({', '.join(held)}); pass --resume to continue it, "
            "or choose another -o"
        )


WRITTEN_FILES = (*RUN_FILES, "curves.png", "val.json")
"""What a run writes at the top of its folder (the temporary files a kill leaves are theirs)."""


def _remove_stale_parts(out: Path) -> None:
    """Remove the temporary files a killed run left: only names segcli provably made (see
    :func:`segcli.io.files.is_segcli_temp`), or an earlier version's ``.<name>.XXXXXXXX.part``
    of a file a run writes here; never a user's ``.notes.part``."""
    from segcli.io.files import is_segcli_temp, legacy_temp_target

    if out.is_dir():
        for entry in out.iterdir():
            ours = is_segcli_temp(entry.name) or legacy_temp_target(entry.name) in WRITTEN_FILES
            if ours and entry.is_file() and not entry.is_symlink():
                with contextlib.suppress(OSError):
                    entry.unlink()


def _fingerprint(ds: Dataset) -> str:
    digest = hashlib.sha1()
    digest.update(ds.format.encode())
    digest.update(str(ds.scenes_per_epoch).encode())
    for s in ds.samples:
        digest.update(f"{s.where}|{s.height}|{s.width}|{len(s.objects)}\n".encode("utf-8", "surrogateescape"))
    return digest.hexdigest()[:16]


# --------------------------------------------------------------------------- signals
@contextlib.contextmanager
def deferred_interrupts() -> Iterator[dict[str, int | None]]:
    """Ctrl-C and SIGTERM set a flag that the loop checks between steps (so no step is cut in
    half and ``last.pt`` is saved where the run is); a second one interrupts at once."""
    from segcli.core.signals import record_signal

    state: dict[str, int | None] = {"signal": None}
    if threading.current_thread() is not threading.main_thread():
        yield state
        return

    def handler(signum: int, frame: object) -> None:
        if state["signal"] is not None:
            raise KeyboardInterrupt
        state["signal"] = signum
        if signum == signal.SIGTERM:
            record_signal(signum)

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield state
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


# --------------------------------------------------------------------------- data feeding
@dataclass
class Feeder:
    """Examples for (epoch, position): the order, scale and flip depend only on the seed."""

    train: Dataset
    augment: Augment
    seed: int
    batch_size: int
    rank: int = 0  # a data-parallel worker's share of every batch: picks[rank::world]
    world: int = 1

    @property
    def per_epoch(self) -> int:
        return self.train.scenes_per_epoch if self.train.format == "scenes" else len(self.train.samples)

    @property
    def steps_per_epoch(self) -> int:
        return max(1, math.ceil(self.per_epoch / self.batch_size))

    def order(self, epoch: int) -> np.ndarray:
        return np.random.default_rng([self.seed, epoch, 0x0D3]).permutation(self.per_epoch)

    def sample(self, epoch: int, index: int) -> tuple[Sample, np.ndarray, Any]:
        if self.train.format == "scenes":
            from segcli.models.blocks.scenes import TRAIN_SEEDS, render_scene

            seed = TRAIN_SEEDS[(self.seed * 7_919_993 + epoch * self.per_epoch + index) % len(TRAIN_SEEDS)]
            rendered = render_scene(seed)
            return scene_from_render(seed, rendered), rendered.image, rendered
        sample = self.train.samples[index]
        pixels, scene = load_pixels(sample)
        return sample, pixels, scene

    def batch(self, epoch: int, step: int) -> list[tuple[Tensor, dict[str, Tensor]]]:
        order = self.order(epoch)
        picks = order[step * self.batch_size : (step + 1) * self.batch_size][self.rank :: self.world]
        out = []
        for index in picks.tolist():
            sample, pixels, scene = self.sample(epoch, index)
            rng = example_rng(self.seed, epoch, index)
            out.append(make_example(sample, self.augment, rng, pixels=pixels, scene=scene))
        return out


# --------------------------------------------------------------------------- checkpoints
def _state_fp32(module: torch.nn.Module) -> dict[str, Tensor]:
    return {k: v.detach().to("cpu", copy=True).contiguous() for k, v in module.state_dict().items()}


def save_checkpoint(path: Path, payload: dict[str, Any]) -> float:
    """Write ``payload`` to ``path`` atomically; seconds it took."""
    from segcli.io.files import atomic_path, fsync_dir

    t = time.monotonic()
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    fsync_dir(path.parent)
    return time.monotonic() - t


def _rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# --------------------------------------------------------------------------- the run
@dataclass
class _Clock:
    """Seconds of this run, resumed parts included (the --time budget counts these)."""

    before: float = 0.0
    started: float = field(default_factory=time.monotonic)

    def elapsed(self) -> float:
        return self.before + time.monotonic() - self.started


def _param_groups(module: torch.nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    decay = [p for n, p in module.named_parameters() if p.requires_grad and p.ndim > 1]
    rest = [p for n, p in module.named_parameters() if p.requires_grad and p.ndim <= 1]
    return [{"params": decay, "weight_decay": weight_decay}, {"params": rest, "weight_decay": 0.0}]


def _optimizer(module: torch.nn.Module, s: dict[str, Any]) -> torch.optim.Optimizer:
    groups = _param_groups(module, s["weight_decay"])
    if s["optimizer"] == "adamw":
        return torch.optim.AdamW(groups, lr=s["lr"], betas=(s["momentum"], 0.999))
    return torch.optim.SGD(groups, lr=s["lr"], momentum=s["momentum"])


def _val_for(
    train: Dataset,
    val_arg: str | None,
    val_images: Path | None,
    fraction: float,
    out: Path,
    base: Sequence[str],
) -> tuple[Dataset, Dataset, str]:
    """(train, val, how the validation set was chosen)."""
    if val_arg is not None:
        val = read_dataset(val_arg, val_images, base_categories=base, categories=train.categories)
        return train, val, f"--val {val_arg}: {len(val.samples)} images"
    if train.format == "scenes":
        from segcli.models.blocks.scenes import HELDOUT_SEED_BASE

        count = min(SCENE_VAL_COUNT, max(4, train.scenes_per_epoch // 10))
        samples = [scene_sample_for_val(HELDOUT_SEED_BASE + 3_000_000 + k) for k in range(count)]
        val = dataclasses.replace(train, samples=samples, scenes_per_epoch=len(samples))
        return train, val, f"{count} held-out generated scenes (seeds never trained on)"
    if train.val_source is not None:
        val = train.val_source
        return train, val, f"the dataset's own val split: {len(val.samples)} images"
    n = len(train.samples)
    tr, val = split_dataset(train, fraction, SPLIT_SEED)
    if tr is val:
        return tr, val, "DATA has 1 image: it trains and validates on it (pass --val to validate on others)"
    return (
        tr,
        val,
        (
            f"{len(val.samples)} of {n} images of DATA held out for validation (a fixed split, seed "
            f"{SPLIT_SEED}; --val VAL to choose), {len(tr.samples)} train"
        ),
    )


def _validated_epochs(out: Path) -> dict[str, Any] | None:
    """train.json's epochs and best, if it can be read (a validation finished before a kill)."""

    try:
        data = parse_json((out / "train.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and isinstance(data.get("epochs"), list) else None


def scene_sample_for_val(seed: int) -> Sample:
    from segcli.models.blocks.scenes import render_scene

    return scene_from_render(seed, render_scene(seed))


def _prepare_val(val: Dataset, how: str, out: Path, val_is_file: bool) -> ValSet:
    """A COCO --val file is evaluated as it is when COCOeval can read it (every annotation
    has a ``bbox`` and an ``area``); anything else is written as ``val.json``."""
    if val_is_file and val.coco_file is not None and val.images_root is not None:
        data = parse_json(val.coco_file.read_text(encoding="utf-8"))
        if all(isinstance(a, dict) and "bbox" in a and "area" in a for a in data["annotations"]):
            return ValSet(val.coco_file, val.images_root, len(val.samples), how)
        how += " (its annotations lack bbox/area, which COCOeval needs: evaluated as val.json)"
    return write_val_coco(val, out, how)


def _spec_for(model: str | None, weights: str | None) -> Any:
    from segcli.models.registry import get_spec
    from segcli.models.weights import checkpoint_spec, load_checkpoint

    if weights is None or weights == "none":
        return get_spec(model or DEFAULTS["model"])
    path = Path(weights)
    ckpt = load_checkpoint(path, mmap=True)
    return checkpoint_spec(ckpt.meta, model, path)


def run_train(
    opts: TrainOptions, events: TrainEvents | None = None, *, parallel: Parallel | None = None
) -> TrainResult:
    """One training run (see the module docstring). Bad data is a :class:`DataError` (a
    ``UsageError``) before any step; Ctrl-C/SIGTERM save ``last.pt`` and raise
    ``KeyboardInterrupt``.

    ``parallel``: this process is one worker of a data-parallel run
    (:mod:`segcli.train.distributed`): each step's batch is shared out between the workers and
    their gradients averaged; worker 0 alone writes files and validates. The writer holds the
    output folder's lock (exclusive) throughout: another segcli command writing there is
    refused, or refuses this run.
    """
    if parallel is not None and parallel.rank != 0:
        return _run_train(opts, events, parallel=parallel, hold=None)
    from segcli.io.locks import check_output_free

    out = Path(opts.output)
    check_output(out, opts.resume)  # its usage errors first, as before
    if out.is_dir():
        check_output_free(out, shared=False)  # a folder in use: refused before any model loads
    with contextlib.ExitStack() as hold:  # the lock, from when the folder is made to the end
        return _run_train(opts, events, parallel=parallel, hold=hold)


def _run_train(
    opts: TrainOptions,
    events: TrainEvents | None,
    *,
    parallel: Parallel | None,
    hold: contextlib.ExitStack | None,
) -> TrainResult:
    lead = parallel is None or parallel.rank == 0
    events = events or TrainEvents()
    out = Path(opts.output)
    if lead:
        check_output(out, opts.resume)
    resume_state: dict[str, Any] | None = None
    recorded: dict[str, Any] | None = None
    if opts.resume:
        from segcli.models.weights import load_checkpoint

        raw = load_checkpoint(out / "last.pt").raw or {}
        saved = raw.get("resume")
        resume_state = cast("dict[str, Any]", saved) if isinstance(saved, dict) else None
        if resume_state is None:
            raise UsageError(f"--resume: {out / 'last.pt'} holds no training state")
        recorded = resume_state["settings"]
        if opts.data != resume_state.get("data"):
            raise UsageError(
                f"--resume: the run trained on {resume_state.get('data')}, not {opts.data}; "
                "give the same DATA"
            )
    s = resolve_settings(opts, recorded)
    if opts.resume and recorded is not None:
        s["weights"] = recorded["weights"]
    from segcli.models.precision import resolve_precision
    from segcli.models.weights import resolve_device

    device = resolve_device(opts.device)
    try:
        precision = resolve_precision(s["precision"], device)
    except UsageError:
        raise
    except SegcliError as exc:
        raise UsageError(str(exc)) from None
    spec = _spec_for(s["model"] if opts.model is not None or opts.resume else None, s["weights"])
    if opts.model is None and not opts.resume:
        s["model"] = spec.name
    from segcli.models.roi import settle_roi_scales
    from segcli.train.model import (
        apply_freeze,
        build_start,
        check_trainable,
        enable_autocast,
        freeze_prefixes,
        start_categories,
        training_mode,
    )

    prefixes = freeze_prefixes(spec, s["freeze"])
    base = start_categories(spec, s["weights"])
    images = (
        opts.images
        if not opts.resume
        else (Path(resume_state["images"]) if resume_state and resume_state.get("images") else None)
    )
    data = read_dataset(opts.data, images, base_categories=base)
    val_arg = opts.val if not opts.resume else (resume_state or {}).get("val")
    val_images = (
        opts.val_images
        if not opts.resume
        else (Path(resume_state["val_images"]) if resume_state and resume_state.get("val_images") else None)
    )
    train, val, how = _val_for(data, val_arg, val_images, s["val_fraction"], out, base)
    fingerprint = _fingerprint(train)
    if resume_state is not None and resume_state.get("fingerprint") != fingerprint:
        raise UsageError(f"--resume: DATA has changed since the run started ({opts.data}); start a new run")
    for line in data.notes[:10]:
        events.note(line)
    if len(data.notes) > 10:
        events.note(f"... and {len(data.notes) - 10} more notes (train.json lists them)")
    events.note(f"validation: {how}")

    min_size = s["min_size"] or spec.defaults.min_size
    max_size = max(s["max_size"] or spec.defaults.max_size, min_size)
    torch.manual_seed(s["seed"])  # the new layers' initialisation: the same on every worker
    start = build_start(
        spec,
        None if s["weights"] is None else s["weights"],
        train.categories,
        keep_rows=s["keep_rows"],
        progress=opts.progress,
    )
    if start.head["replaced"]:
        kept = start.head["kept"]
        events.note(
            f"new class-specific layers for {len(train.classes)} classes ({', '.join(train.classes[:8])}"
            f"{', ...' if len(train.classes) > 8 else ''}); "
            + (f"rows kept for {', '.join(kept)}" if kept else "no class shared with the start")
        )
    module = start.module
    frozen_norms = s["norms"] == "frozen" or (s["norms"] == "auto" and start.pretrained)
    counts = apply_freeze(module, prefixes, frozen_norms=frozen_norms)
    check_trainable(module)
    module.to(device)
    if parallel is not None:
        parallel.broadcast_parameters(module)
    settle_roi_scales(module)
    autocast_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
    wrapped = enable_autocast(module, autocast_dtype, device.type) if autocast_dtype is not None else []
    optimizer = _optimizer(module, s)
    scaler = torch.amp.GradScaler("cuda") if precision == "fp16" and device.type == "cuda" else None
    schedule = Schedule(s["lr"], s["schedule"], s["warmup"])
    feeder = Feeder(
        train,
        Augment(min_size, max_size, s["scale_jitter"], s["hflip"]),
        s["seed"],
        s["batch_size"],
        rank=0 if parallel is None else parallel.rank,
        world=1 if parallel is None else parallel.world,
    )
    steps_per_epoch = feeder.steps_per_epoch
    total_steps = steps_per_epoch * s["epochs"] if s["epochs"] is not None else None
    budget = s["time_minutes"] * 60.0 if s["time_minutes"] is not None else None

    if lead:
        if hold is not None:
            from segcli.io.locks import output_lock

            hold.enter_context(output_lock(out))  # makes the folder
        out.mkdir(parents=True, exist_ok=True)
        _remove_stale_parts(out)
        valset = _prepare_val(val, how, out, val_arg is not None and val.format == "coco")
    else:
        valset = ValSet(out / "val.json", out, len(val.samples), how)  # worker 0 validates
    started = datetime.now(timezone.utc)
    record: dict[str, Any] = {
        "schema": TRAIN_SCHEMA,
        "status": "running",
        "started": started.isoformat(timespec="seconds"),
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "data": opts.data,
        "images": None if images is None else str(images),
        "settings": {
            **s,
            "precision": precision,
            "device": str(device),
            "min_size": min_size,
            "max_size": max_size,
        },
        "model": {
            "name": spec.name,
            "architecture": spec.architecture,
            "start": start.weights,
            "start_sha256": start.sha256,
            "head": start.head,
            "frozen": list(prefixes),
            "batch_norm": "frozen statistics and scales" if frozen_norms else "trained",
            "autocast": wrapped,
            **counts,
        },
        "classes": list(train.categories),
        "train_data": train.summary(),
        "val_data": {
            **val.summary(),
            "how": how,
            "ground_truth": str(valset.ground_truth),
            "images_folder": str(valset.images),
        },
        "notes": data.notes[:200],
        "steps_per_epoch": steps_per_epoch,
        "epochs": [],
        "best": None,
        "time": {"budget_seconds": budget, "elapsed_seconds": 0.0},
        "files": {
            "last": str(out / "last.pt"),
            "best": str(out / "best.pt"),
            "curves": str(out / "curves.png"),
        },
        "eval_command": f"segcli eval {valset.ground_truth} {valset.images} --weights {out / 'best.pt'}",
    }
    epoch, step_in_epoch, global_step = 0, 0, 0
    sums: dict[str, float] = {}
    epoch_seconds = 0.0
    pending_val = False
    clock = _Clock()
    best_ap: float | None = None
    if resume_state is not None:
        from segcli.models.weights import load_checkpoint

        ckpt = load_checkpoint(out / "last.pt")
        module.load_state_dict({k: v.to(device) for k, v in ckpt.state.items()})
        optimizer.load_state_dict(resume_state["optimizer"])
        if scaler is not None and resume_state.get("scaler"):
            scaler.load_state_dict(resume_state["scaler"])
        epoch, step_in_epoch, global_step = (
            resume_state["epoch"],
            resume_state["step_in_epoch"],
            resume_state["global_step"],
        )
        sums = dict(resume_state["sums"])
        epoch_seconds = float(resume_state["epoch_seconds"])
        pending_val = bool(resume_state.get("pending_val"))
        clock.before = float(resume_state["elapsed"])
        previous = resume_state.get("record") or {}
        record["epochs"] = list(previous.get("epochs", []))
        record["best"] = previous.get("best")
        record["started"] = previous.get("started", record["started"])
        record["resumed"] = [
            *previous.get("resumed", []),
            datetime.now(timezone.utc).isoformat(timespec="seconds"),
        ]
        best_ap = (record["best"] or {}).get("mask_AP")
        _set_rng_state(resume_state["rng"])
        if parallel is not None and not lead:
            torch.manual_seed(s["seed"] + 7919 * parallel.rank + global_step)
        if s["epochs"] is not None and epoch >= s["epochs"]:
            events.note(f"the run is already complete ({epoch} epochs): nothing left to train")
        else:
            events.note(
                f"resumed at epoch {epoch + 1}, step {step_in_epoch} of {steps_per_epoch} "
                f"({global_step} steps done)"
            )

    if parallel is not None and not lead and resume_state is None:
        torch.manual_seed(s["seed"] + 7919 * parallel.rank)  # each worker samples its own RoIs
    if parallel is not None:
        record["engine"] = {"name": "ray", "workers": parallel.world, "backend": parallel.backend}
    from segcli.models.weights import CheckpointMeta

    def meta(epoch_done: int) -> dict[str, Any]:
        info = {
            "settings": record["settings"],
            "data": opts.data,
            "classes": record["classes"],
            "epoch": epoch_done,
            "started_from": start.weights,
        }
        return CheckpointMeta(spec.name, spec.architecture, min_size, max_size, info).to_dict()

    def write_last() -> float:
        if not lead:
            return 0.0
        payload = {
            "model": _state_fp32(module),
            "categories": list(train.categories),
            "segcli": meta(epoch),
            "resume": {
                "settings": {k: s[k] for k in RECIPE_FIELDS},
                "data": opts.data,
                "images": None if images is None else str(images),
                "fingerprint": fingerprint,
                "optimizer": optimizer.state_dict(),
                "scaler": scaler.state_dict() if scaler is not None else None,
                "rng": _rng_state(),
                "epoch": epoch,
                "step_in_epoch": step_in_epoch,
                "global_step": global_step,
                "sums": dict(sums),
                "epoch_seconds": epoch_seconds,
                "elapsed": clock.elapsed(),
                "pending_val": pending_val,
                "val": val_arg,
                "val_images": None if val_images is None else str(val_images),
                "record": {k: record[k] for k in ("epochs", "best", "started") if k in record}
                | {"resumed": record.get("resumed", [])},
            },
        }
        return save_checkpoint(out / "last.pt", payload)

    def write_record(status: str) -> None:
        from segcli.io.files import atomic_write_bytes
        from segcli.outputs.writers import dumps, encode_image
        from segcli.train.curves import curves_image

        if not lead:
            return
        record["status"] = status
        record["time"]["elapsed_seconds"] = round(clock.elapsed(), 2)
        if status != "running":
            record["finished"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
        atomic_write_bytes(out / "train.json", dumps(record))
        if record["epochs"]:
            atomic_write_bytes(out / "curves.png", encode_image(curves_image(record["epochs"]), ".png"))

    def validate(epoch_index: int) -> dict[str, Any] | None:
        if not lead:
            return None
        events.validating(epoch_index + 1)
        t = time.monotonic()
        with torch.random.fork_rng(devices=[]):
            result = evaluate_checkpoint(out / "last.pt", valset, out / "val", str(device))
        if result is None:
            raise KeyboardInterrupt
        result["seconds"] = round(time.monotonic() - t, 2)
        return result

    def finish_epoch(epoch_index: int, val_result: dict[str, Any] | None) -> None:
        nonlocal best_ap
        rec = record["epochs"][-1]
        rec["val"] = val_result
        ap = None if val_result is None else (val_result.get("segm") or {}).get("AP")
        if lead and val_result is not None and (best_ap is None or (ap is not None and ap > best_ap)):
            best_ap = ap if ap is not None else best_ap
            described = meta(epoch_index + 1)
            described["train"]["val"] = {k: v for k, v in val_result.items() if k in ("bbox", "segm")}
            payload = {
                "model": _state_fp32(module),
                "categories": list(train.categories),
                "segcli": described,
            }
            save_checkpoint(out / "best.pt", payload)
            record["best"] = {
                "epoch": epoch_index + 1,
                "mask_AP": ap,
                "box_AP": (val_result.get("bbox") or {}).get("AP"),
                "path": str(out / "best.pt"),
            }
        write_record("running")
        events.epoch_done(rec)

    est_step = 0.0
    val_cost = 0.0
    save_cost = 0.0
    last_save = time.monotonic()
    stop_reason = "epochs"
    bad_steps = 0
    losses_seen: list[str] = []
    pool = ThreadPoolExecutor(1, thread_name_prefix="segcli-train-data")
    try:
        with deferred_interrupts() as interrupt:
            if pending_val:  # stopped between the epoch's last.pt and the end of its validation
                done = _validated_epochs(out)
                if done is not None and len(done["epochs"]) == epoch and done["epochs"][-1].get("val"):
                    record["epochs"], record["best"] = done["epochs"], done.get("best")
                    best_ap = (record["best"] or {}).get("mask_AP")
                else:
                    finish_epoch(epoch - 1, validate(epoch - 1))
                pending_val = False
            while True:
                if total_steps is not None and epoch >= s["epochs"]:
                    break
                if budget is not None and clock.elapsed() >= budget:
                    stop_reason = "time"
                    break
                events.epoch_started(epoch + 1, s["epochs"], steps_per_epoch)
                t_epoch = time.monotonic() - epoch_seconds
                next_batch: Future[Any] | None = pool.submit(feeder.batch, epoch, step_in_epoch)
                out_of_time = False
                with training_mode(module, frozen_norms=frozen_norms):
                    while step_in_epoch < steps_per_epoch:
                        if interrupt["signal"] is not None:
                            raise KeyboardInterrupt
                        if budget is not None and global_step > 0:
                            reserve = val_cost + save_cost + est_step
                            late = clock.elapsed() + reserve >= budget
                            if parallel is not None:
                                late = parallel.any(late)  # worker 0's clock and the others' agree
                            if late:
                                out_of_time = True
                                break
                        t0 = time.monotonic()
                        assert next_batch is not None
                        batch = next_batch.result()
                        next_batch = (
                            pool.submit(feeder.batch, epoch, step_in_epoch + 1)
                            if step_in_epoch + 1 < steps_per_epoch
                            else None
                        )
                        progress = 0.0
                        if total_steps is not None:
                            progress = global_step / total_steps
                        if budget is not None:
                            progress = max(progress, clock.elapsed() / budget)
                        lr = schedule.lr(progress, global_step, epoch)
                        for group in optimizer.param_groups:
                            group["lr"] = lr
                        images_t = [b[0].to(device, non_blocking=True) for b in batch]
                        targets = [{k: v.to(device) for k, v in b[1].items()} for b in batch]
                        optimizer.zero_grad(set_to_none=True)
                        if images_t:
                            loss_dict = module(images_t, targets)
                            loss = sum(loss_dict.values())
                        else:  # a worker with no image of this (last, short) batch
                            loss_dict = {k: torch.zeros((), device=device) for k in LOSS_NAMES}
                            loss = torch.zeros((), device=device, requires_grad=True)
                        assert isinstance(loss, Tensor)
                        batch_images = len(batch)
                        if parallel is not None:
                            loss_dict, loss, batch_images = parallel.mean_losses(loss_dict, loss, len(batch))
                        if not torch.isfinite(loss):
                            bad_steps += 1
                            if bad_steps >= MAX_BAD_STEPS:
                                raise SegcliError(
                                    f"the loss was not finite for {bad_steps} steps in a row at "
                                    f"--lr {s['lr']:g}; "
                                    "lower --lr (last.pt holds the last good state)"
                                )
                        else:
                            bad_steps = 0
                            if scaler is not None:
                                scaler.scale(loss).backward()
                                scaler.unscale_(optimizer)
                            else:
                                loss.backward()
                            if parallel is not None:
                                parallel.average_gradients(module, len(batch), batch_images)
                            if s["grad_clip"] > 0:
                                torch.nn.utils.clip_grad_norm_(
                                    [p for p in module.parameters() if p.requires_grad], s["grad_clip"]
                                )
                            if scaler is not None:
                                scaler.step(optimizer)
                                scaler.update()
                            else:
                                optimizer.step()
                            for k, v in loss_dict.items():
                                sums[k] = sums.get(k, 0.0) + float(v.detach())
                                if k not in losses_seen:
                                    losses_seen.append(k)
                            sums["total"] = sums.get("total", 0.0) + float(loss.detach())
                            sums["steps"] = sums.get("steps", 0.0) + 1
                            sums["images"] = sums.get("images", 0.0) + batch_images
                        step_in_epoch += 1
                        global_step += 1
                        dt = time.monotonic() - t0
                        est_step = dt if est_step == 0 else 0.8 * est_step + 0.2 * dt
                        epoch_seconds = time.monotonic() - t_epoch
                        left = (steps_per_epoch - step_in_epoch) * est_step
                        if budget is not None:
                            left = min(left, max(0.0, budget - clock.elapsed()))
                        events.step(
                            epoch + 1,
                            step_in_epoch,
                            steps_per_epoch,
                            sums.get("total", 0.0) / max(sums.get("steps", 1.0), 1.0),
                            sums.get("images", 0.0) / max(epoch_seconds, 1e-9),
                            left,
                        )
                        if (
                            time.monotonic() - last_save > opts.save_every * 60
                            and step_in_epoch < steps_per_epoch
                        ):
                            save_cost = write_last()
                            last_save = time.monotonic()
                if next_batch is not None:
                    next_batch.cancel()
                if out_of_time and not sums.get("steps"):
                    stop_reason = "time"  # no step this epoch: the last epoch's weights are final
                    break
                n = max(sums.get("steps", 0.0), 1.0)
                rec = {
                    "epoch": epoch + 1,
                    "steps": int(sums.get("steps", 0)),
                    "images": int(sums.get("images", 0)),
                    "seconds": round(epoch_seconds, 2),
                    "lr": optimizer.param_groups[0]["lr"],
                    "loss": sums.get("total", 0.0) / n if sums.get("steps") else None,
                    "losses": {k: sums[k] / n for k in losses_seen if k in sums},
                    "images_per_second": round(sums.get("images", 0.0) / max(epoch_seconds, 1e-9), 3),
                    "complete": not out_of_time,
                }
                epoch += 1
                step_in_epoch = 0
                sums = {}
                epoch_seconds = 0.0
                record["epochs"].append(rec)
                pending_val = True
                save_cost = write_last()
                last_save = time.monotonic()
                val_result = validate(epoch - 1)
                val_cost = float(val_result["seconds"]) if val_result else val_cost
                finish_epoch(epoch - 1, val_result)
                pending_val = False
                if parallel is not None:
                    val_cost = parallel.broadcast_float(val_cost)  # the others waited for it
                    save_cost = parallel.broadcast_float(save_cost)
                if out_of_time:
                    stop_reason = "time"
                    break
    except KeyboardInterrupt:
        from segcli.core.signals import uninterrupted

        pool.shutdown(wait=True, cancel_futures=True)
        uninterrupted(write_last)
        uninterrupted(lambda: write_record("interrupted"))
        raise
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        with contextlib.suppress(Exception):
            write_record("failed")
        raise
    pool.shutdown(wait=True, cancel_futures=True)
    record["stop_reason"] = stop_reason
    write_record("done")
    best = out / "best.pt"
    return TrainResult(out, out / "last.pt", best if best.is_file() else None, record)
