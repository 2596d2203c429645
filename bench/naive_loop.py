"""The torchvision-tutorial way, as a baseline: read -> model -> keep score >= t ->
draw_segmentation_masks -> save PNG + JSON with RLE. Run by bench/naive.py.

    python bench/naive_loop.py FOLDER OUT WEIGHTS [--score-threshold T] [--max-detections N]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from pycocotools import mask as mask_util
from torchvision.io import read_image
from torchvision.models.detection import maskrcnn_resnet50_fpn
from torchvision.transforms.functional import convert_image_dtype, to_pil_image
from torchvision.utils import draw_segmentation_masks


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("folder", type=Path)
    p.add_argument("out", type=Path)
    p.add_argument("weights", type=Path)
    p.add_argument("--score-threshold", type=float, default=0.5)
    p.add_argument("--max-detections", type=int, default=100)
    p.add_argument("--proposals", type=int, default=300)
    args = p.parse_args()
    model = maskrcnn_resnet50_fpn(
        weights=None,
        weights_backbone=None,
        num_classes=91,
        box_score_thresh=args.score_threshold,
        box_detections_per_img=args.max_detections,
        rpn_post_nms_top_n_test=args.proposals,
    )
    model.load_state_dict(torch.load(args.weights, weights_only=True))
    model.eval()
    args.out.mkdir(parents=True, exist_ok=True)
    for path in sorted(args.folder.glob("*.jpg")):
        image = read_image(str(path))
        with torch.no_grad():
            out = model([convert_image_dtype(image, torch.float)])[0]
        keep = out["scores"] >= args.score_threshold
        masks = out["masks"][keep, 0] > 0.5
        drawn = draw_segmentation_masks(image, masks, alpha=0.5)
        to_pil_image(drawn).save(args.out / f"{path.stem}.png")
        instances = []
        for box, label, score, mask in zip(
            out["boxes"][keep], out["labels"][keep], out["scores"][keep], masks
        ):
            rle = mask_util.encode(np.asfortranarray(mask.numpy().astype(np.uint8)))
            instances.append(
                {
                    "label": int(label),
                    "score": float(score),
                    "box": box.tolist(),
                    "mask": {"size": rle["size"], "counts": rle["counts"].decode()},
                }
            )
        (args.out / f"{path.stem}.json").write_text(json.dumps({"image": str(path), "instances": instances}))


if __name__ == "__main__":
    main()
