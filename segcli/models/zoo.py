"""torchvision's models, registered by name: ``coco``, ``coco-v2`` (instance) and the semantic
``deeplabv3``, ``fcn`` and ``lraspp`` that ``compare`` draws beside them.

Their category lists are written out here as data, so ``segcli classes`` and the ``--classes``
check import no torch; ``tests/unit/test_registry.py`` checks them against torchvision's own
``weights.meta["categories"]``.
"""

from __future__ import annotations

from segcli.core.settings import Settings
from segcli.models.registry import ModelSpec, register

COCO_DEFAULTS = Settings(
    score_threshold=0.5,
    nms_iou=0.5,
    proposals=300,
    max_detections=100,
    mask_threshold=0.5,
    classes=None,
    min_size=800,
    max_size=1333,
)
"""What torchvision's Mask R-CNN runs with (its input size; segcli's thresholds)."""

SEMANTIC_INPUT_SIZE = 520
"""Short side of a semantic model's input, as torchvision's ``weights.transforms()`` resize."""

# fmt: off
COCO_CATEGORIES: tuple[str, ...] = (
    "__background__", "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck",
    "boat", "traffic light", "fire hydrant", "N/A", "stop sign", "parking meter", "bench", "bird", "cat",
    "dog", "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe", "N/A", "backpack", "umbrella",
    "N/A", "N/A", "handbag", "tie", "suitcase", "frisbee", "skis", "snowboard", "sports ball", "kite",
    "baseball bat", "baseball glove", "skateboard", "surfboard", "tennis racket", "bottle", "N/A",
    "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple", "sandwich", "orange",
    "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch", "potted plant", "bed",
    "N/A", "dining table", "N/A", "N/A", "toilet", "N/A", "tv", "laptop", "mouse", "remote", "keyboard",
    "cell phone", "microwave", "oven", "toaster", "sink", "refrigerator", "N/A", "book", "clock", "vase",
    "scissors", "teddy bear", "hair drier", "toothbrush",
)
"""torchvision's COCO category list (91 slots: the background, 80 classes, 10 ``N/A``)."""

VOC_CATEGORIES: tuple[str, ...] = (
    "__background__", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair",
    "cow", "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train",
    "tvmonitor",
)
"""torchvision's 21 PASCAL VOC categories of its semantic models."""
# fmt: on


URL = "https://download.pytorch.org/models/"


def _coco(name: str, architecture: str, weights_enum: str, file: str) -> ModelSpec:
    """An instance model of torchvision's with its COCO weights."""
    return ModelSpec(
        name,
        "instance",
        architecture,
        COCO_DEFAULTS,
        torchvision_weights_ref=f"torchvision.models.detection:{weights_enum}.COCO_V1",
        weights_url=URL + file,
        categories=COCO_CATEGORIES,
    )


def _voc(name: str, architecture: str, weights_enum: str, file: str, *, aux_loss: bool) -> ModelSpec:
    """A semantic model of torchvision's with its 21-class PASCAL VOC weights."""
    return ModelSpec(
        name,
        "semantic",
        architecture,
        Settings(min_size=SEMANTIC_INPUT_SIZE),
        torchvision_weights_ref=f"torchvision.models.segmentation:{weights_enum}.COCO_WITH_VOC_LABELS_V1",
        weights_url=URL + file,
        categories=VOC_CATEGORIES,
        aux_loss=aux_loss,
    )


COCO = register(
    _coco(
        "coco",
        "maskrcnn_resnet50_fpn",
        "MaskRCNN_ResNet50_FPN_Weights",
        "maskrcnn_resnet50_fpn_coco-bf2d0c1e.pth",
    )
)
COCO_V2 = register(
    _coco(
        "coco-v2",
        "maskrcnn_resnet50_fpn_v2",
        "MaskRCNN_ResNet50_FPN_V2_Weights",
        "maskrcnn_resnet50_fpn_v2_coco-73cbd019.pth",
    )
)
DEEPLABV3 = register(
    _voc(
        "deeplabv3",
        "deeplabv3_resnet50",
        "DeepLabV3_ResNet50_Weights",
        "deeplabv3_resnet50_coco-cd0a2569.pth",
        aux_loss=True,
    )
)
FCN = register(
    _voc("fcn", "fcn_resnet50", "FCN_ResNet50_Weights", "fcn_resnet50_coco-1167a1af.pth", aux_loss=True)
)
LRASPP = register(
    _voc(
        "lraspp",
        "lraspp_mobilenet_v3_large",
        "LRASPP_MobileNet_V3_Large_Weights",
        "lraspp_mobilenet_v3_large-d234d4ea.pth",
        aux_loss=False,
    )
)
