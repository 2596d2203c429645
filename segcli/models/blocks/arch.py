"""The bundled blocks model's network: a small residual CNN + FPN under torchvision's Mask R-CNN.

Its class names and input size are data in :mod:`segcli.models.blocks.spec`.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

from torch import Tensor, nn
from torchvision.models.detection import MaskRCNN
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.roi_heads import RoIHeads
from torchvision.ops import FeaturePyramidNetwork
from torchvision.ops.feature_pyramid_network import LastLevelMaxPool

from segcli.models.blocks.spec import BLOCKS_DEFAULTS, CATEGORIES, CLASS_NAMES

__all__ = ["CATEGORIES", "CLASS_NAMES", "BlocksBackbone", "build_blocks_maskrcnn"]


class _ConvBN(nn.Sequential):
    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__(
            nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True),
        )


class _Stage(nn.Module):
    """A stride-2 conv followed by residual conv pairs."""

    def __init__(self, cin: int, cout: int, blocks: int) -> None:
        super().__init__()
        self.down = _ConvBN(cin, cout, stride=2)
        self.blocks = nn.ModuleList(
            nn.Sequential(_ConvBN(cout, cout), _ConvBN(cout, cout)) for _ in range(blocks)
        )

    def forward(self, x: Tensor) -> Tensor:
        x = self.down(x)
        for block in self.blocks:
            x = x + block(x)
        return x


class BlocksBackbone(nn.Module):
    """A small residual CNN with an FPN on top: strides 4, 8, 16, 32 (+ pool)."""

    def __init__(
        self,
        widths: Sequence[int] = (32, 64, 96, 128),
        blocks: Sequence[int] = (1, 2, 2, 1),
        fpn_channels: int = 64,
    ) -> None:
        super().__init__()
        self.stem = nn.Sequential(_ConvBN(3, 24, stride=2), _ConvBN(24, 24))
        chans = [24, *widths]
        self.stages = nn.ModuleList(_Stage(chans[i], chans[i + 1], blocks[i]) for i in range(len(widths)))
        self.fpn = FeaturePyramidNetwork(list(widths), fpn_channels, extra_blocks=LastLevelMaxPool())
        self.out_channels = fpn_channels

    def forward(self, x: Tensor) -> OrderedDict[str, Tensor]:
        x = self.stem(x)
        feats: OrderedDict[str, Tensor] = OrderedDict()
        for i, stage in enumerate(self.stages):
            x = stage(x)
            feats[str(i)] = x
        return self.fpn(feats)


class BlocksRoIHeads(RoIHeads):
    """RoI heads that also suppress duplicates *across* classes.

    torchvision's NMS is per class, so one block the classifier is unsure about
    (a cylinder that looks a little like a cube) can come out twice, once per class.
    A block has exactly one class: after the usual per-class NMS, a detection whose
    box overlaps a higher-scoring one of another class by IoU > ``cross_class_iou``
    is dropped. Set it to 1.0 to turn this off.
    """

    cross_class_iou: float = 0.7

    def postprocess_detections(
        self,
        class_logits: Tensor,
        box_regression: Tensor,
        proposals: list[Tensor],
        image_shapes: list[tuple[int, int]],
    ) -> tuple[list[Tensor], list[Tensor], list[Tensor]]:
        boxes, scores, labels = super().postprocess_detections(
            class_logits, box_regression, proposals, image_shapes
        )
        if self.cross_class_iou >= 1.0:
            return boxes, scores, labels
        from torchvision.ops import nms

        for i, (b, s) in enumerate(zip(boxes, scores)):
            keep = nms(b, s, self.cross_class_iou)[: self.detections_per_img]
            boxes[i], scores[i], labels[i] = b[keep], s[keep], labels[i][keep]
        return boxes, scores, labels


def build_blocks_maskrcnn(*, num_classes: int = len(CATEGORIES), **kwargs: object) -> MaskRCNN:
    """The bundled blocks model's architecture (about 2.3 M parameters).

    ``kwargs`` go to torchvision's ``MaskRCNN`` (``min_size``, ``rpn_pre_nms_top_n_train``, ...).
    """
    from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
    from torchvision.models.detection.mask_rcnn import MaskRCNNHeads, MaskRCNNPredictor
    from torchvision.ops import MultiScaleRoIAlign

    backbone = BlocksBackbone()
    ch = backbone.out_channels
    anchors = AnchorGenerator(
        sizes=((20,), (40,), (80,), (160,), (320,)), aspect_ratios=((0.5, 1.0, 2.0),) * 5
    )
    box_pool = MultiScaleRoIAlign(["0", "1", "2", "3"], output_size=7, sampling_ratio=2)
    mask_pool = MultiScaleRoIAlign(["0", "1", "2", "3"], output_size=14, sampling_ratio=2)
    kwargs.setdefault("min_size", BLOCKS_DEFAULTS.min_size)
    kwargs.setdefault("max_size", BLOCKS_DEFAULTS.max_size)
    # Fewer proposals and RoI samples than torchvision's defaults: scenes hold at
    # most 10 objects, and this keeps a training step cheap on a CPU.
    kwargs.setdefault("rpn_pre_nms_top_n_train", 1000)
    kwargs.setdefault("rpn_post_nms_top_n_train", 500)
    kwargs.setdefault("rpn_pre_nms_top_n_test", 500)
    kwargs.setdefault("box_batch_size_per_image", 128)
    model = MaskRCNN(
        backbone,
        num_classes=None,
        rpn_anchor_generator=anchors,
        box_roi_pool=box_pool,
        box_head=TwoMLPHead(ch * 7 * 7, 256),
        box_predictor=FastRCNNPredictor(256, num_classes),
        mask_roi_pool=mask_pool,
        mask_head=MaskRCNNHeads(ch, (64, 64, 64, 64), 1),
        mask_predictor=MaskRCNNPredictor(64, 64, num_classes),
        **kwargs,
    )
    # Same modules and state dict; only postprocess_detections differs.
    model.roi_heads.__class__ = BlocksRoIHeads
    return model
