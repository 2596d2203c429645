"""Accuracy gate of ``--precision bf16`` against fp32.

    python -m bench.precision_accuracy                    # both parts
    python -m bench.precision_accuracy --part blocks -n 200 --json bench/out/precision-accuracy.json
    python -m bench.precision_accuracy --part coco --modes bf16,bf16-autocast

Blocks model (bundled weights): mask and box AP (COCOeval) on 200 held-out scenes (seeds
``HELDOUT_SEED_BASE`` and up, never used in training; score threshold 0.05 as in
``bench/blocks_ap.py``), once per mode; the gate is |AP - AP(fp32)| <= 0.005 and the same
for AP50.

COCO architecture (``maskrcnn_resnet50_fpn``, randomly initialised checkpoint, the example
photos at the default 800 px, ``--score-threshold 0`` so both modes keep their top 100):
random weights give near-tied scores, so the two modes need not keep the same 100
detections in the same order. Detections are matched per image and per class by the
Hungarian algorithm on box IoU (``scipy.optimize.linear_sum_assignment`` maximising the
summed IoU; a pair counts as matched at IoU >= 0.5). For matched pairs: box IoU, mask IoU
(the pasted binary masks, full frame) and |score difference|; plus the share of fp32
detections that found a match. The backbone + FPN outputs are compared directly too
(relative error per level), and every later stage is fed fp32's own inputs (its features,
proposals, final boxes), which needs no matching: score differences and box IoU of the box
head on identical proposals, mask probability differences and pasted-mask IoU on identical
boxes. ``fp32-fold-cl`` (fp32 with folded norms: differences ~1e-6) is a useful control of
how much the matched comparison moves on random weights from rounding alone.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

from bench.common import PHOTOS, REPO, random_coco_checkpoint, write_json
from bench.roofline import ContextFactory, build_mode
from segcli.core.instances import Instances
from segcli.core.settings import Settings
from segcli.inference.segmenter import Segmenter

OUT = REPO / "bench" / "out"
GATE = 0.005


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load {one:.1f}/{five:.1f}/{fifteen:.1f}"


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N, 4) x (M, 4) xyxy -> (N, M) IoU."""
    if not len(a) or not len(b):
        return np.zeros((len(a), len(b)))
    x0 = np.maximum(a[:, None, 0], b[None, :, 0])
    y0 = np.maximum(a[:, None, 1], b[None, :, 1])
    x1 = np.minimum(a[:, None, 2], b[None, :, 2])
    y1 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-9)


def mask_iou(a: Instances, i: int, b: Instances, j: int) -> float:
    ma, mb = a.full_mask(i), b.full_mask(j)
    union = int((ma | mb).sum())
    return float((ma & mb).sum()) / union if union else 1.0


def match(ref: Instances, other: Instances, min_iou: float = 0.5) -> list[tuple[int, int, float]]:
    """Hungarian matching on box IoU within each class: (ref index, other index, box IoU)."""
    from scipy.optimize import linear_sum_assignment

    pairs: list[tuple[int, int, float]] = []
    for cls in np.union1d(ref.class_ids, other.class_ids):
        ia = np.flatnonzero(ref.class_ids == cls)
        ib = np.flatnonzero(other.class_ids == cls)
        if not len(ia) or not len(ib):
            continue
        iou = box_iou(ref.boxes[ia], other.boxes[ib])
        rows, cols = linear_sum_assignment(iou, maximize=True)
        pairs += [
            (int(ia[r]), int(ib[c]), float(iou[r, c])) for r, c in zip(rows, cols) if iou[r, c] >= min_iou
        ]
    return pairs


def summary(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    v = np.asarray(values)
    return {
        "mean": round(float(v.mean()), 4),
        "median": round(float(np.median(v)), 4),
        "p5": round(float(np.percentile(v, 5)), 4),
        "p95": round(float(np.percentile(v, 95)), 4),
        "min": round(float(v.min()), 4),
        "max": round(float(v.max()), 4),
    }


def same_inputs(
    ref: Segmenter, seg: Segmenter, ctx: ContextFactory, image: np.ndarray
) -> dict[str, list[float]]:
    """Each stage of ``seg`` fed exactly what fp32's stage got, so that near-tied random scores
    cannot reorder anything: backbone features, RPN head outputs, box head scores and boxes
    for fp32's proposals, mask probabilities and pasted masks for fp32's final detections."""
    from torchvision.models.detection.roi_heads import maskrcnn_inference

    from segcli.inference.forward import paste_masks, preprocess

    tensor = torch.from_numpy(image).permute(2, 0, 1).float().div(255.0)
    ra, ma = ref.module, seg.module
    out: dict[str, list[float]] = {}
    with torch.inference_mode():
        image_list, _ = preprocess(ra, [tensor])
        sizes = image_list.image_sizes
        f32 = ra.backbone(image_list.tensors)
        with ctx():
            other = ma.backbone(image_list.tensors)
        out["backbone rel. L2 error (per level)"] = [
            float((other[k].float() - v).norm() / v.norm()) for k, v in f32.items()
        ]
        feats = list(f32.values())
        obj, deltas = ra.rpn.head(feats)
        with ctx():
            obj_o, deltas_o = ma.rpn.head(feats)
        out["RPN objectness rel. L2 error"] = [
            float((b.float() - a).norm() / a.norm()) for a, b in zip(obj, obj_o)
        ]
        out["RPN box deltas rel. L2 error"] = [
            float((b.float() - a).norm() / a.norm()) for a, b in zip(deltas, deltas_o)
        ]
        proposals, _ = ra.rpn(image_list, f32)
        h, ho = ra.roi_heads, ma.roi_heads
        logits, reg = h.box_predictor(h.box_head(h.box_roi_pool(f32, proposals, sizes)))
        with ctx():
            logits_o, reg_o = ho.box_predictor(ho.box_head(ho.box_roi_pool(f32, proposals, sizes)))
        probs, probs_o = logits.softmax(-1), logits_o.float().softmax(-1)
        top = probs[:, 1:].argmax(-1) + 1
        rows = torch.arange(len(top))
        out["box head |score diff| (top class)"] = (probs[rows, top] - probs_o[rows, top]).abs().tolist()
        boxes = h.box_coder.decode(reg, proposals)[rows, top]
        boxes_o = h.box_coder.decode(reg_o.float(), proposals)[rows, top]
        out["box head box IoU (same proposal)"] = np.diag(box_iou(boxes.numpy(), boxes_o.numpy())).tolist()
        b, _, labels = h.postprocess_detections(logits, reg, proposals, sizes)
        mask_features = h.mask_roi_pool(f32, b, sizes)
        [mp] = maskrcnn_inference(h.mask_predictor(h.mask_head(mask_features)), labels)
        with ctx():
            [mp_o] = maskrcnn_inference(ho.mask_predictor(ho.mask_head(mask_features)), labels)
        mp_o = mp_o.float()
        out["mask head max |prob diff| per det."] = (mp - mp_o).abs().flatten(1).amax(1).tolist()
        size = sizes[0]
        crops, _ = paste_masks(mp, b[0], size, 0.5)
        crops_o, _ = paste_masks(mp_o, b[0], size, 0.5)
        out["mask IoU (same box, pasted)"] = [
            float((x & y).sum()) / float((x | y).sum()) if (x | y).any() else 1.0
            for x, y in zip(crops, crops_o)
            if x.size
        ]
    return out


def coco_part(modes: list[str], threads: int) -> dict[str, object]:
    from segcli.io.images import read_image

    ckpt = random_coco_checkpoint(OUT / "coco-random.pt")
    settings = Settings(score_threshold=0.0)
    base = Segmenter("coco", weights=ckpt, device="cpu", settings=settings, progress=False)
    photos = sorted(PHOTOS.glob("*.jpg"))
    images = [read_image(p).pixels for p in photos]
    print(f"\n== COCO architecture, random weights, {len(images)} photos at 800 px, score >= 0; {load()}")
    runners = {m: build_mode(m, base, images[0], threads, []) for m in ["fp32", *modes]}
    results: dict[str, list[Instances]] = {}
    for name, (seg, ctx) in runners.items():
        with torch.inference_mode(), ctx():
            results[name] = [seg([im])[0] for im in images]
    report: dict[str, object] = {"photos": [p.name for p in photos]}
    ref = results["fp32"]
    for name in modes:
        box_ious: list[float] = []
        mask_ious: list[float] = []
        score_diffs: list[float] = []
        matched = total = 0
        for a, b in zip(ref, results[name]):
            pairs = match(a, b)
            matched += len(pairs)
            total += len(a)
            for i, j, iou in pairs:
                box_ious.append(iou)
                mask_ious.append(mask_iou(a, i, b, j))
                score_diffs.append(abs(float(a.scores[i]) - float(b.scores[j])))
        seg, ctx = runners[name]
        staged = [same_inputs(runners["fp32"][0], seg, ctx, im) for im in images]
        same = {key: summary([v for st in staged for v in st[key]]) for key in staged[0]}
        box_s, mask_s, score_s = summary(box_ious), summary(mask_ious), summary(score_diffs)
        low, high = min(float(r.scores.min()) for r in ref), max(float(r.scores.max()) for r in ref)
        report[name] = {
            "detections_fp32": total,
            "matched": matched,
            "matched_share": round(matched / max(total, 1), 4),
            "box_iou": box_s,
            "mask_iou": mask_s,
            "abs_score_diff": score_s,
            "fp32_score_range": [round(low, 4), round(high, 4)],
            "same_inputs": same,
        }
        print(
            f"{name}: {matched}/{total} fp32 detections matched ({matched / max(total, 1):.1%}); "
            f"box IoU median {box_s.get('median')} p5 {box_s.get('p5')}; "
            f"mask IoU median {mask_s.get('median')} p5 {mask_s.get('p5')}; "
            f"|score diff| median {score_s.get('median')} max {score_s.get('max')} "
            f"(fp32 scores {low:.4f}..{high:.4f})",
            flush=True,
        )
        print(f"  {name} on identical inputs (each stage fed fp32's inputs):")
        for key, stats in same.items():
            print(
                f"    {key:34s} median {stats.get('median')}  p5 {stats.get('p5')}  p95 {stats.get('p95')}  "
                f"max {stats.get('max')}  min {stats.get('min')}"
            )
    return report


def blocks_part(modes: list[str], num_scenes: int, threads: int) -> dict[str, object]:
    from bench.blocks_ap import evaluate, instances_to_coco
    from segcli.models.blocks.scenes import HELDOUT_SEED_BASE, render_scene, scenes_to_coco

    base = Segmenter("blocks", device="cpu", settings=Settings(score_threshold=0.05), progress=False)
    seeds = [HELDOUT_SEED_BASE + i for i in range(num_scenes)]
    scenes = [render_scene(s) for s in seeds]
    gt = scenes_to_coco(scenes, [f"heldout-{s}.png" for s in seeds])
    print(f"\n== blocks model, {num_scenes} held-out scenes (seeds {seeds[0]}..{seeds[-1]}); {load()}")
    names = ["fp32", *modes]
    runners = {m: build_mode(m, base, scenes[0].image, threads, []) for m in names}
    dets: dict[str, list[dict[str, object]]] = {m: [] for m in names}
    seconds = dict.fromkeys(names, 0.0)
    for image_id, scene in enumerate(scenes, start=1):
        for name, (seg, ctx) in runners.items():
            t0 = time.process_time()
            with torch.inference_mode(), ctx():
                [inst] = seg([scene.image])
            seconds[name] += time.process_time() - t0
            dets[name].extend(instances_to_coco(inst, image_id))
    report: dict[str, object] = {"scenes": num_scenes, "seeds": [seeds[0], seeds[-1]]}
    figures = {m: evaluate(gt, dets[m]) for m in names}
    ref = figures["fp32"]
    for name in names:
        f = figures[name]
        d_ap, d_ap50 = f["mask_AP"] - ref["mask_AP"], f["mask_AP50"] - ref["mask_AP50"]
        ok = abs(d_ap) <= GATE and abs(d_ap50) <= GATE
        report[name] = {
            **{k: round(v, 4) for k, v in f.items()},
            "delta_mask_AP": round(d_ap, 4),
            "delta_mask_AP50": round(d_ap50, 4),
            "gate_passed": ok,
            "detections": len(dets[name]),
            "cpu_seconds_per_scene": round(seconds[name] / num_scenes, 4),
        }
        print(
            f"{name:14s} mask AP {f['mask_AP']:.4f} ({d_ap:+.4f})  "
            f"AP50 {f['mask_AP50']:.4f} ({d_ap50:+.4f})  "
            f"box AP {f['box_AP']:.4f} ({f['box_AP'] - ref['box_AP']:+.4f})  AP75 {f['mask_AP75']:.4f}  "
            f"{len(dets[name])} detections, {seconds[name] / num_scenes:.3f} CPU s/scene"
            + ("" if name == "fp32" else f"  gate (|delta| <= {GATE}): {'PASS' if ok else 'FAIL'}"),
            flush=True,
        )
    return report


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--part", choices=("blocks", "coco", "both"), default="both")
    p.add_argument("--modes", default="bf16", help="modes of bench/roofline.py to compare with fp32")
    p.add_argument("-n", "--num-scenes", type=int, default=200)
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    from bench.roofline import machine_line

    modes = [m.strip() for m in args.modes.split(",") if m.strip() and m.strip() != "fp32"]
    print(f"{machine_line()}; {args.threads} thread(s); {load()}")
    out: dict[str, object] = {"machine": machine_line(), "modes": modes}
    if args.part in ("blocks", "both"):
        out["blocks"] = blocks_part(modes, args.num_scenes, args.threads)
    if args.part in ("coco", "both"):
        out["coco"] = coco_part(modes, args.threads)
    print(f"\nfinished, {load()}")
    write_json(args.json, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
