"""`segcli train` against torchvision's fine-tuning tutorial loop, on shapes the start never saw.

    python bench/train_vs_tutorial.py                          # 2, 5 and 10 minutes each (~35 min)
    python bench/train_vs_tutorial.py --budgets 0.3 --heldout 20 --json bench/out/smoke.json
    python bench/train_vs_tutorial.py --budgets 5 --ablations  # each ingredient on its own
    python bench/train_vs_tutorial.py --budgets 2,5,10 --random-init   # the contrast

Data: ``bench/shapes.py`` scenes (cubes, rings, pyramids), ``--train`` of them (default 100)
to train on and ``--heldout`` others (default 50, seeds never trained on) to score on. Start:
the bundled blocks weights for both. Budget: wall-clock minutes of training, the same for
both, run one after the other on the same machine (the order alternates per budget). Score:
held-out mask and box AP by pycocotools' COCOeval through ``segcli eval``'s own code path
(:func:`segcli.train.validate.evaluate_checkpoint`), the same for both.

- **tutorial**: the loop a user writes from torchvision's "TorchVision Object Detection
  Finetuning Tutorial": both predictors replaced (``FastRCNNPredictor``; ``MaskRCNNPredictor``
  with the start's hidden width: the tutorial's 256 is ResNet-50's, blocks has 64), SGD lr
  0.005, momentum 0.9, weight decay 5e-4, ``StepLR(step_size=3, gamma=0.1)``, batch 2, random
  horizontal flip, the tutorial's linear warm-up over the first epoch (``train_one_epoch``:
  factor 1/1000 over min(1000, len(loader) - 1) iterations), ``model.train()`` (batch norms
  train), fp32, the model's own resizing. It trains on all ``--train`` scenes until the clock
  runs out; its last weights are scored.
- **segcli**: ``segcli train gt.json --model blocks --time B`` with its defaults (a fixed 10 %
  of the training scenes held out to pick ``best.pt``: segcli trains on 90 % of what the
  tutorial gets); ``best.pt`` and ``last.pt`` are both scored.

``--ablations`` runs segcli's recipe again with one ingredient at a time set back to the
tutorial's (step schedule, no scale jitter, fp32, trained batch norms, lr 0.005), at each
budget, so each ingredient's share is measured on its own. ``--random-init`` adds segcli's
recipe from random weights (``--weights none``) for contrast. The load average before and
after each run is recorded: numbers from a busy machine are not comparable.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # also runs as python bench/train_vs_tutorial.py
from bench.common import machine, write_json
from bench.shapes import CLASSES, write_dataset

TRAIN_SEED_BASE = 3_000_000_000
HELDOUT_SEED_BASE = 3_500_000_000
ABLATIONS: dict[str, dict[str, Any]] = {
    "step schedule (StepLR 3, 0.1)": {"schedule": "step", "warmup": 0.0},
    "no scale jitter": {"scale_jitter": 0.0},
    "fp32 (no bf16 autocast)": {"precision": "fp32"},
    "batch norms trained": {"norms": "train"},
    "lr 0.005": {"lr": 0.005},
}


def load() -> tuple[float, float, float]:
    return os.getloadavg()


# --------------------------------------------------------------------------- the tutorial loop
def tutorial_loop(train_gt: Path, out: Path, minutes: float, seed: int = 0) -> dict[str, Any]:
    """torchvision's fine-tuning tutorial, written as its users write it, for ``minutes``."""
    from pycocotools import mask as mask_utils
    from torchvision.models.detection.faster_rcnn import FastRCNNPredictor
    from torchvision.models.detection.mask_rcnn import MaskRCNNPredictor
    from torchvision.transforms.v2 import functional as TF

    from segcli.io.images import read_image
    from segcli.models.weights import load_model

    torch.manual_seed(seed)
    gt = json.loads(train_gt.read_text())
    by_image: dict[int, list[dict[str, Any]]] = {}
    for a in gt["annotations"]:
        by_image.setdefault(a["image_id"], []).append(a)

    class Dataset(torch.utils.data.Dataset):  # the tutorial's PennFudanDataset, for COCO RLE
        def __len__(self) -> int:
            return len(gt["images"])

        def __getitem__(self, i: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
            img = gt["images"][i]
            image = torch.from_numpy(read_image(train_gt.parent / img["file_name"]).pixels).permute(2, 0, 1)
            anns = by_image.get(img["id"], [])
            masks = torch.from_numpy(
                np.stack(
                    [
                        mask_utils.decode(
                            {**a["segmentation"], "counts": a["segmentation"]["counts"].encode()}
                        )
                        for a in anns
                    ]
                ).astype(np.uint8)
            )
            boxes = []
            for m in masks:
                ys, xs = torch.where(m > 0)
                boxes.append([xs.min(), ys.min(), xs.max(), ys.max()])  # the tutorial's masks_to_boxes
            target = {
                "boxes": torch.tensor(boxes, dtype=torch.float32),
                "labels": torch.tensor([a["category_id"] for a in anns], dtype=torch.int64),
                "masks": masks,
            }
            image = TF.to_dtype(image, torch.float32, scale=True)
            if torch.rand(1) < 0.5:  # T.RandomHorizontalFlip(0.5) on image, boxes and masks
                w = image.shape[-1]
                image = image.flip(-1)
                target["masks"] = target["masks"].flip(-1)
                b = target["boxes"].clone()
                target["boxes"][:, 0], target["boxes"][:, 2] = w - b[:, 2], w - b[:, 0]
            return image, target

    loaded = load_model("blocks", device="cpu")
    model = loaded.module
    num_classes = len(CLASSES) + 1
    in_features = model.roi_heads.box_predictor.cls_score.in_features
    model.roi_heads.box_predictor = FastRCNNPredictor(in_features, num_classes)
    in_features_mask = model.roi_heads.mask_predictor.conv5_mask.in_channels
    hidden_layer = model.roi_heads.mask_predictor.conv5_mask.out_channels  # the tutorial's 256 is ResNet's
    model.roi_heads.mask_predictor = MaskRCNNPredictor(in_features_mask, hidden_layer, num_classes)
    loader = torch.utils.data.DataLoader(
        Dataset(), batch_size=2, shuffle=True, collate_fn=lambda batch: tuple(zip(*batch))
    )
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(params, lr=0.005, momentum=0.9, weight_decay=0.0005)
    lr_scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=3, gamma=0.1)
    deadline = time.monotonic() + minutes * 60
    epochs, steps, losses = 0, 0, []
    done = False
    while not done:
        model.train()
        warmup = None
        if epochs == 0:  # references/detection/engine.py train_one_epoch
            warmup_iters = min(1000, len(loader) - 1)
            warmup = torch.optim.lr_scheduler.LinearLR(
                optimizer, start_factor=1.0 / 1000, total_iters=warmup_iters
            )
        epoch_losses = []
        for images, targets in loader:
            if time.monotonic() >= deadline:
                done = True
                break
            loss_dict = model(list(images), list(targets))
            loss = sum(loss_dict.values())
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if warmup is not None:
                warmup.step()
            steps += 1
            epoch_losses.append(loss.item())
        if epoch_losses:
            losses.append(sum(epoch_losses) / len(epoch_losses))
        if not done:
            lr_scheduler.step()
            epochs += 1
    model.eval()
    path = out / "tutorial.pt"
    out.mkdir(parents=True, exist_ok=True)
    from segcli.models.weights import CheckpointMeta

    meta = CheckpointMeta("blocks", loaded.spec.architecture, 384, 640, {"loop": "torchvision tutorial"})
    torch.save(
        {"model": model.state_dict(), "categories": ["__background__", *CLASSES], "segcli": meta.to_dict()},
        path,
    )
    return {"checkpoint": str(path), "epochs": epochs, "steps": steps, "epoch_losses": losses}


# --------------------------------------------------------------------------- segcli
def segcli_run(train_gt: Path, out: Path, minutes: float, **recipe: Any) -> dict[str, Any]:
    from segcli.train import TrainOptions, run_train

    result = run_train(
        TrainOptions(data=str(train_gt), output=out, model="blocks", time_minutes=minutes, **recipe)
    )
    rec = result.record
    return {
        "checkpoint": str(result.best),
        "last": str(result.last),
        "epochs": len(rec["epochs"]),
        "steps": sum(e["steps"] for e in rec["epochs"]),
        "epoch_losses": [e["loss"] for e in rec["epochs"]],
        "val_mask_AP": [((e.get("val") or {}).get("segm") or {}).get("AP") for e in rec["epochs"]],
        "settings": rec["settings"],
        "elapsed_seconds": rec["time"]["elapsed_seconds"],
    }


def score(checkpoint: str, heldout_gt: Path, out: Path) -> dict[str, float | None]:
    from segcli.train.validate import ValSet, evaluate_checkpoint

    valset = ValSet(heldout_gt, heldout_gt.parent, 0, "held-out")
    stats = evaluate_checkpoint(Path(checkpoint), valset, out, "cpu")
    assert stats is not None
    return {"mask_AP": stats["segm"]["AP"], "box_AP": stats["bbox"]["AP"], "mask_AP50": stats["segm"]["AP50"]}


def timed(name: str, fn: Any, *args: Any, **kw: Any) -> dict[str, Any]:
    before, t = load(), time.monotonic()
    print(f"  {name}: running (load average {before[0]:.2f})", flush=True)
    result = fn(*args, **kw)
    result["wall_seconds"] = round(time.monotonic() - t, 1)
    result["load_before"], result["load_after"] = [round(x, 2) for x in before], [round(x, 2) for x in load()]
    return result


# --------------------------------------------------------------------------- figure
def figure(report: dict[str, Any], path: Path) -> None:
    """Held-out mask AP against the budget, one line per method (PIL, no plotting library)."""
    from PIL import Image, ImageDraw, ImageFont

    rows = report["runs"]
    budgets = sorted({r["budget_minutes"] for r in rows})
    methods = list(dict.fromkeys(r["method"] for r in rows))
    colours = [
        (44, 160, 44),
        (214, 39, 40),
        (31, 119, 180),
        (148, 103, 189),
        (255, 127, 14),
        (140, 86, 75),
        (127, 127, 127),
        (188, 189, 34),
        (23, 190, 207),
    ]
    w, h, left, bottom, top = 760, 420, 60, 50, 30
    image = Image.new("RGB", (w, h), "white")
    draw = ImageDraw.Draw(image)
    try:
        font = ImageFont.load_default(size=12)
    except TypeError:
        font = ImageFont.load_default()
    x_max = max(budgets) if budgets else 1.0

    def px(x: float, y: float) -> tuple[float, float]:
        return left + x / x_max * (w - left - 240), h - bottom - y * (h - bottom - top)

    for k in range(6):
        _, gy = px(0, k / 5)
        draw.line([(left, gy), (w - 240, gy)], fill=(225, 225, 225))
        draw.text((left - 6, gy), f"{k / 5:.1f}", fill=(40, 40, 40), font=font, anchor="rm")
    for b in budgets:
        gx, _ = px(b, 0)
        draw.text((gx, h - bottom + 6), f"{b:g} min", fill=(40, 40, 40), font=font, anchor="mt")
    draw.text(
        (w / 2 - 120, 8), "held-out mask AP (COCOeval) vs training budget", fill=(40, 40, 40), font=font
    )
    for i, m in enumerate(methods):
        pts = [px(r["budget_minutes"], r["heldout"]["mask_AP"]) for r in rows if r["method"] == m]
        c = colours[i % len(colours)]
        if len(pts) > 1:
            draw.line(pts, fill=c, width=3)
        for p in pts:
            draw.ellipse([p[0] - 4, p[1] - 4, p[0] + 4, p[1] + 4], fill=c)
        draw.line([(w - 225, top + 18 * i + 6), (w - 205, top + 18 * i + 6)], fill=c, width=3)
        draw.text((w - 200, top + 18 * i), m[:34], fill=(40, 40, 40), font=font)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)


# --------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--budgets", default="2,5,10", help="comma-separated minutes")
    p.add_argument("--train", type=int, default=100, help="training scenes")
    p.add_argument("--heldout", type=int, default=50, help="held-out scenes scored")
    p.add_argument("--work", type=Path, default=Path("bench/out/train-vs-tutorial"))
    p.add_argument("--json", type=Path, default=None)
    p.add_argument("--ablations", action="store_true")
    p.add_argument("--random-init", action="store_true")
    p.add_argument("--skip-tutorial", action="store_true")
    args = p.parse_args(argv)
    budgets = [float(b) for b in args.budgets.split(",") if b.strip()]
    if not budgets or any(not math.isfinite(b) or b <= 0 for b in budgets):
        p.error("--budgets: positive minutes")
    work = args.work
    t0 = time.monotonic()
    train_gt = write_dataset(work / "data" / "train", [TRAIN_SEED_BASE + k for k in range(args.train)])
    heldout_gt = write_dataset(
        work / "data" / "heldout", [HELDOUT_SEED_BASE + k for k in range(args.heldout)]
    )
    print(
        f"data: {args.train} training and {args.heldout} held-out scenes in {time.monotonic() - t0:.0f} s",
        flush=True,
    )
    report: dict[str, Any] = {
        "machine": machine(),
        "cpus": os.cpu_count(),
        "train_scenes": args.train,
        "heldout_scenes": args.heldout,
        "classes": list(CLASSES),
        "runs": [],
    }
    for k, minutes in enumerate(budgets):
        print(f"budget {minutes:g} min", flush=True)
        jobs: list[tuple[str, Any]] = []
        if not args.skip_tutorial:
            jobs.append(
                ("tutorial loop", lambda m=minutes: tutorial_loop(train_gt, work / f"tutorial-{m:g}", m))
            )
        jobs.append(("segcli train", lambda m=minutes: segcli_run(train_gt, work / f"segcli-{m:g}", m)))
        if k % 2:
            jobs.reverse()  # neither always runs first on a machine whose load drifts
        if args.random_init:
            jobs.append(
                (
                    "segcli train, random init",
                    lambda m=minutes: segcli_run(train_gt, work / f"random-{m:g}", m, weights="none"),
                )
            )
        if args.ablations:
            for name, change in ABLATIONS.items():
                slug = name.split(" (")[0].replace(" ", "-")
                jobs.append(
                    (
                        f"segcli, {name}",
                        lambda m=minutes, c=change, s=slug: segcli_run(
                            train_gt, work / f"abl-{s}-{m:g}", m, **c
                        ),
                    )
                )
        for method, job in jobs:
            run = timed(method, job)
            run["heldout"] = score(run["checkpoint"], heldout_gt, work / "scores" / f"{method}-{minutes:g}")
            if "last" in run:
                run["heldout_last"] = score(
                    run["last"], heldout_gt, work / "scores" / f"{method}-{minutes:g}-last"
                )
            run.update(method=method, budget_minutes=minutes)
            report["runs"].append(run)
            ho = run["heldout"]
            print(
                f"  {method}: held-out mask AP {ho['mask_AP']:.3f}, box AP {ho['box_AP']:.3f} "
                f"({run['steps']} steps, {run['epochs']} epochs, load {run['load_before'][0]:.2f} -> "
                f"{run['load_after'][0]:.2f})",
                flush=True,
            )
    figure(report, work / "train-vs-tutorial.png")
    report["figure"] = str(work / "train-vs-tutorial.png")
    write_json(args.json or work / "report.json", report)
    print(f"report: {args.json or work / 'report.json'}; figure: {work / 'train-vs-tutorial.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
