"""Train the bundled blocks model from scratch on synthetic scenes (CPU friendly).

    python -m segcli.models.blocks.train --out segcli/models/blocks/blocks.pt --minutes 55 --seed 0

Scenes are generated on the fly from training seeds (``TRAIN_SEEDS``, never the
held-out range used by the benchmark and the tests). The learning rate warms up
and then follows a cosine decay over the run, which ends at ``--steps`` steps or
after ``--minutes`` of wall time, whichever comes first: progress through the
schedule is the larger of the two fractions. Model initialisation and the
sequence of training scenes depend only on ``--seed``; with a time budget the
learning-rate curve (and where the run stops) also depends on the machine's
speed, so give a generous ``--minutes`` with ``--steps`` to repeat a run exactly.
A checkpoint is written every ``--save-every`` minutes, so a killed run still
leaves a usable weights file.
"""

from __future__ import annotations

import argparse
import math
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch

from segcli.io.files import atomic_path
from segcli.models.blocks.arch import CATEGORIES, build_blocks_maskrcnn
from segcli.models.blocks.scenes import TRAIN_SEEDS, Scene, render_scene

TRAIN_MIN_SIZES = (320, 352, 384, 416)
TRAIN_MAX_SIZE = 640


def scene_target(scene: Scene, flip: bool) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """An image tensor (3, H, W) in [0, 1] and its Mask R-CNN training target."""
    image = scene.image[:, ::-1] if flip else scene.image
    masks = np.stack([o.mask for o in scene.objects]).astype(np.uint8)
    if flip:
        masks = masks[:, :, ::-1]
    boxes = []
    for m in masks:
        ys, xs = np.nonzero(m.any(axis=1))[0], np.nonzero(m.any(axis=0))[0]
        boxes.append([xs[0], ys[0], xs[-1] + 1, ys[-1] + 1])
    target = {
        "boxes": torch.tensor(boxes, dtype=torch.float32),
        "labels": torch.tensor([o.category_id for o in scene.objects], dtype=torch.int64),
        "masks": torch.from_numpy(np.ascontiguousarray(masks)),
    }
    tensor = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float().div_(255)
    return tensor, target


def lr_at(progress: float, step: int, peak: float, warmup: int, floor: float = 0.02) -> float:
    """Linear warm-up over ``warmup`` steps, then cosine decay as ``progress`` goes 0 -> 1."""
    if step < warmup:
        return peak * (0.01 + 0.99 * step / warmup)
    t = min(1.0, max(0.0, progress))
    return peak * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * t)))


def save_weights(model: torch.nn.Module, path: Path) -> None:
    """fp16 weights (float tensors) plus the category names, written atomically."""
    state = {
        k: (v.detach().half() if v.is_floating_point() else v.detach()).clone()
        for k, v in model.state_dict().items()
    }
    with atomic_path(path) as tmp:
        torch.save({"model": state, "categories": list(CATEGORIES)}, tmp)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path("segcli/models/blocks/blocks.pt"))
    p.add_argument("--minutes", type=float, default=55.0, help="wall-clock budget (hard stop)")
    p.add_argument("--steps", type=int, default=None, help="schedule length in steps")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--lr", type=float, default=1.5e-3)
    p.add_argument("--weight-decay", type=float, default=1e-2)
    p.add_argument("--warmup", type=int, default=300)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--save-every", type=float, default=5.0, help="minutes between checkpoints")
    p.add_argument("--log-every", type=int, default=20)
    args = p.parse_args(argv)

    start = time.monotonic()
    deadline = start + args.minutes * 60
    torch.set_num_threads(args.threads)
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    flip_rng = np.random.default_rng(args.seed)

    model = build_blocks_maskrcnn(num_classes=len(CATEGORIES))
    model.transform.min_size = TRAIN_MIN_SIZES
    model.transform.max_size = TRAIN_MAX_SIZE
    model.train()
    params = sum(p.numel() for p in model.parameters())
    decay = [p for n, p in model.named_parameters() if p.ndim > 1]
    no_decay = [p for n, p in model.named_parameters() if p.ndim <= 1]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": args.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=args.lr,
    )
    print(f"blocks model: {params} parameters; args {vars(args)}", flush=True)

    seeds_per_run = len(TRAIN_SEEDS)
    offset = (args.seed * 7_919_993) % seeds_per_run
    total = args.steps if args.steps is not None else 10**9
    step = 0
    last_save = time.monotonic()
    running: dict[str, float] = {}
    t_log = time.monotonic()
    while step < total:
        now = time.monotonic()
        if now >= deadline:
            print(f"time budget reached at step {step}", flush=True)
            break
        # The schedule runs to whichever end comes first: the step count or the clock.
        progress = max(step / total, (now - start) / (deadline - start))
        lr = lr_at(progress, step, args.lr, args.warmup)
        for group in opt.param_groups:
            group["lr"] = lr
        images, targets = [], []
        for j in range(args.batch):
            seed = TRAIN_SEEDS[(offset + step * args.batch + j) % seeds_per_run]
            scene = render_scene(seed)
            if not scene.objects:
                continue
            im, tg = scene_target(scene, bool(flip_rng.random() < 0.5))
            images.append(im)
            targets.append(tg)
        if not images:
            step += 1
            continue
        losses = model(images, targets)
        loss = sum(losses.values())
        if not torch.isfinite(loss):
            print(f"step {step}: non-finite loss {losses}, skipped", flush=True)
            opt.zero_grad(set_to_none=True)
            step += 1
            continue
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        opt.step()
        for k, v in losses.items():
            running[k] = running.get(k, 0.0) + v.item()
        running["total"] = running.get("total", 0.0) + loss.item()
        step += 1
        if step % args.log_every == 0:
            dt = time.monotonic() - t_log
            t_log = time.monotonic()
            parts = " ".join(f"{k.replace('loss_', '')} {v / args.log_every:.3f}" for k, v in running.items())
            running = {}
            print(
                f"step {step} progress {progress:.3f} lr {lr:.2e} {parts} "
                f"{dt / args.log_every:.2f}s/step elapsed {(t_log - start) / 60:.1f}m",
                flush=True,
            )
        if time.monotonic() - last_save > args.save_every * 60:
            model.eval()
            save_weights(model, args.out)
            model.train()
            last_save = time.monotonic()
            print(f"checkpoint -> {args.out} at step {step}", flush=True)
    model.eval()
    save_weights(model, args.out)
    size = args.out.stat().st_size
    print(
        f"done: {step} steps in {(time.monotonic() - start) / 60:.1f} min; {args.out} ({size / 1e6:.2f} MB)",
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
