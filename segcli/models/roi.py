"""The RoI poolers' feature-map scales, set from the backbone's strides (not from a first batch)."""

from __future__ import annotations

import torch
from torchvision.models.detection import MaskRCNN


def settle_roi_scales(module: MaskRCNN, size: int = 64) -> None:
    """Fix the RoI poolers' feature-map scales from the backbone's true strides.

    torchvision's ``MultiScaleRoIAlign`` infers the scales from the first batch it sees and
    keeps them; on small or padded images that first guess can be a power of two off, and a
    resumed run (whose first batch is another) would then pool other features than the
    uninterrupted one, and a segmenter whose first image was a thin strip would pool the wrong
    levels for every image after it. One forward of the backbone on a ``size`` x ``size`` image
    (the strides divide it exactly; a few milliseconds) sets them once, the same for every run;
    :func:`segcli.models.weights.load_model` calls it for every model it loads.
    """
    device = next(module.parameters()).device
    was_training = module.training
    module.eval()
    with torch.no_grad():
        features = module.backbone(torch.zeros(1, 3, size, size, device=device))
        boxes = [torch.tensor([[0.0, 0.0, 16.0, 16.0]], device=device)]
        for pool in (module.roi_heads.box_roi_pool, module.roi_heads.mask_roi_pool):
            if pool is None:
                continue
            pool.scales = None
            pool.map_levels = None
            pool(features, boxes, [(size, size)])
    module.train(was_training)
