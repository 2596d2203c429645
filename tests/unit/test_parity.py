"""segcli equals torchvision's own Mask R-CNN output at the same settings."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torchvision.models.detection import maskrcnn_resnet50_fpn

from segcli.core.settings import Settings
from segcli.inference.segmenter import Segmenter
from segcli.models.registry import MODELS
from tests.conftest import random_image


def _torchvision_model(ckpt: Path, **kwargs: object) -> torch.nn.Module:
    model = maskrcnn_resnet50_fpn(weights=None, weights_backbone=None, num_classes=91, **kwargs).eval()
    model.load_state_dict(torch.load(ckpt, weights_only=True)["model"])
    return model


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    union = (a | b).sum()
    return 1.0 if union == 0 else float((a & b).sum() / union)


@pytest.mark.slow
def test_parity_with_torchvision(coco_ckpt: Path) -> None:
    # 30 detections an image, not the default 100: the mask head's cost grows with detections
    settings = Settings(score_threshold=0.05, min_size=160, max_size=240, max_detections=30)
    seg = Segmenter("coco", weights=coco_ckpt, device="cpu", settings=settings)
    assert seg.settings.proposals == 300
    ref = _torchvision_model(
        coco_ckpt,
        min_size=160,
        max_size=240,
        box_score_thresh=0.05,
        rpn_post_nms_top_n_test=300,
        box_detections_per_img=30,
    )
    images = [random_image(150, 200, seed=1), random_image(181, 163, seed=2)]
    got = seg(images)
    # Each image equals torchvision's output on that image alone: a batch never pads one
    # image for another's sake (torchvision's own batch of these two sizes would).
    with torch.inference_mode():
        want = [ref([torch.from_numpy(im).permute(2, 0, 1).float() / 255])[0] for im in images]
    for inst, out in zip(got, want, strict=True):
        assert len(inst) > 10, "the random model should produce many detections at this threshold"
        assert torch.equal(torch.from_numpy(inst.boxes), out["boxes"])
        assert np.array_equal(inst.class_ids, out["labels"].numpy())
        assert np.array_equal(inst.scores, out["scores"].numpy())
        ious = [_iou(inst.full_mask(i), (out["masks"][i, 0] > 0.5).numpy()) for i in range(len(inst))]
        assert min(ious) >= 0.99


@pytest.mark.slow
def test_class_filter_equals_filtering_torchvision_output(coco_ckpt: Path) -> None:
    image = random_image(150, 200, seed=3)
    ref = _torchvision_model(
        coco_ckpt,
        min_size=160,
        max_size=240,
        box_score_thresh=0.05,
        rpn_post_nms_top_n_test=300,
        box_detections_per_img=10_000,
    )
    # Only labels and scores are compared: skip the reference's mask head, which would run on
    # every one of its ~750 detections (seconds each time); segcli filters before its masks.
    ref.roi_heads.mask_roi_pool = None
    with torch.inference_mode():
        out = ref([torch.from_numpy(image).permute(2, 0, 1).float() / 255])[0]
    labels = out["labels"].numpy()
    top = int(np.bincount(labels).argmax())
    name = MODELS["coco"].categories[top]
    settings = Settings(score_threshold=0.05, min_size=160, max_size=240, classes=(name,), max_detections=5)
    [inst] = Segmenter("coco", weights=coco_ckpt, device="cpu", settings=settings)([image])
    keep = np.flatnonzero(labels == top)[:5]
    assert len(inst) == len(keep) == min(5, int((labels == top).sum()))
    assert set(inst.class_names) == {name}
    assert np.array_equal(inst.scores, out["scores"].numpy()[keep])
