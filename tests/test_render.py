"""Annotators: each draws its own marks only, colours can be overridden, composition order."""

from __future__ import annotations

import numpy as np
import pytest

from segcli.instances import Instances
from segcli.render import (
    BoxAnnotator,
    ContourAnnotator,
    LabelAnnotator,
    MaskAnnotator,
    OverlayAnnotator,
    compose,
    instance_color,
)
from tests.factories import SIZE, box_mask, make_instances

H, W = SIZE
GREY = np.full((H, W, 3), 100, np.uint8)


def _two() -> Instances:
    # the weaker instance (index 1) lies partly under the stronger one (index 0)
    return make_instances(("cube", 0.9, (20, 15, 50, 45)), ("sphere", 0.6, (5, 5, 35, 30)))


def test_mask_annotator_blends_mask_pixels_only() -> None:
    inst = _two()
    out = MaskAnnotator(alpha=0.5).annotate(GREY, inst)
    assert out is not GREY and (GREY == 100).all()  # the input is left alone
    covered = inst.full_mask(0) | inst.full_mask(1)
    assert (out[~covered] == 100).all() and (out[covered] != 100).any(axis=1).all()

    def blend(pixel: np.ndarray, i: int) -> tuple[int, ...]:
        return tuple((pixel.astype(np.float32) * 0.5 + np.float32(instance_color(i)) * 0.5).astype(np.uint8))

    assert tuple(out[40, 45]) == blend(GREY[0, 0], 0)  # the stronger instance only
    assert tuple(out[10, 10]) == blend(GREY[0, 0], 1)  # the weaker instance only
    # where they overlap the weaker one is blended first, the stronger one on top
    assert tuple(out[20, 25]) == blend(np.array(blend(GREY[0, 0], 1)), 0)


def test_each_annotator_draws_its_own_marks() -> None:
    inst = make_instances(("cube", 0.9, (20, 15, 50, 45)))
    inside = box_mask(24, 19, 46, 41)  # well inside the mask, away from its outline
    contour = ContourAnnotator().annotate(GREY, inst)
    assert (contour[inside] == 100).all() and (contour[~box_mask(18, 13, 52, 47)] == 100).all()
    assert (contour != 100).any()
    box = BoxAnnotator().annotate(GREY, inst)
    assert tuple(box[15, 35]) == instance_color(0) and (box[inside] == 100).all()
    label = LabelAnnotator().annotate(GREY, inst)
    assert (label[:15, 20:] != 100).any()  # the tag sits above the box
    assert (label[16:, :] == 100).all()


def test_colors_override_per_instance() -> None:
    inst = _two()
    colors = [(255, 0, 0), (0, 0, 255)]
    out = BoxAnnotator().annotate(GREY, inst, colors)
    assert tuple(out[15, 35]) == (255, 0, 0) and tuple(out[5, 10]) == (0, 0, 255)
    overlay = OverlayAnnotator().annotate(GREY, inst, colors)
    assert tuple(overlay[15, 35]) == (255, 0, 0)
    with pytest.raises(ValueError, match="1 colours for 2 instances"):
        MaskAnnotator().annotate(GREY, inst, colors[:1])


def test_annotators_in_one_pass_draw_instance_by_instance() -> None:
    """Together, the stronger instance's mask covers the weaker one's outline; in two passes,
    every outline is drawn after every mask."""
    inst = _two()
    together = compose((MaskAnnotator(alpha=1.0), ContourAnnotator(thickness=1))).annotate(GREY, inst)
    apart = compose(MaskAnnotator(alpha=1.0), ContourAnnotator(thickness=1)).annotate(GREY, inst)
    sequential = ContourAnnotator(thickness=1).annotate(MaskAnnotator(alpha=1.0).annotate(GREY, inst), inst)
    assert np.array_equal(apart, sequential)
    # (29, 25) is on the weaker instance's bottom edge, inside the stronger instance's mask
    assert tuple(together[29, 25]) == instance_color(0)
    assert tuple(apart[29, 25]) != instance_color(0)  # the weaker outline (anti-aliased) on top


def test_overlay_is_masks_and_contours_then_boxes_and_labels() -> None:
    inst = _two()
    expect = compose((MaskAnnotator(), ContourAnnotator()), (BoxAnnotator(), LabelAnnotator()))
    assert np.array_equal(OverlayAnnotator().annotate(GREY, inst), expect.annotate(GREY, inst))
    assert np.array_equal(OverlayAnnotator().annotate(GREY, make_instances()), GREY)
