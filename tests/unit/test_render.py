"""Annotators: each draws its own marks only, colours can be overridden, composition order."""

from __future__ import annotations

import numpy as np
import pytest

from segcli.core.instances import Instances
from segcli.draw.annotators import (
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


# --------------------------------------------------------------------------- label placement
def _layout(inst: Instances, size: tuple[int, int]) -> list[tuple[tuple[int, int, int, int], str] | None]:
    return LabelAnnotator().layout(inst, size)


def _overlap(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _crowd(n: int, size: tuple[int, int], seed: int = 0) -> Instances:
    """``n`` random boxes, many touching the image's top edge (where labels used to pile up)."""
    h, w = size
    rng = np.random.default_rng(seed)
    items = []
    for k in range(n):
        x0, y0 = int(rng.integers(0, w - 20)), int(rng.integers(0, h // 3)) if k % 2 else 0
        x1, y1 = (
            int(rng.integers(x0 + 8, min(x0 + 200, w) + 1)),
            int(rng.integers(y0 + 8, min(y0 + 150, h) + 1)),
        )
        items.append(("sphere" if k % 3 else "cylinder", float(rng.uniform(0.05, 1.0)), (x0, y0, x1, y1)))
    return make_instances(*items, size=size)


@pytest.mark.parametrize("size", [(96, 128), (480, 640), (3000, 4000)])
def test_labels_never_overlap_and_stay_inside_the_image(size: tuple[int, int]) -> None:
    inst = _crowd(100, size)
    placed = [p for p in _layout(inst, size) if p is not None]
    assert placed, "some labels fit"
    h, w = size
    for (x0, y0, x1, y1), _ in placed:
        assert 0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h
    rects = [r for r, _ in placed]
    assert not [(a, b) for k, a in enumerate(rects) for b in rects[k + 1 :] if _overlap(a, b)]
    covered = sum((x1 - x0) * (y1 - y0) for x0, y0, x1, y1 in rects)
    assert covered <= LabelAnnotator().max_share * h * w


def test_labels_dropped_when_no_room_weakest_first_masks_kept() -> None:
    size = (96, 128)
    inst = _crowd(40, size, seed=1)
    plan = _layout(inst, size)
    dropped = [i for i, p in enumerate(plan) if p is None]
    assert dropped and len(dropped) < len(inst)
    kept_scores = [float(inst.scores[i]) for i, p in enumerate(plan) if p is not None]
    assert max(inst.scores[dropped]) <= max(kept_scores)
    assert float(inst.scores.max()) in kept_scores  # the most confident instance keeps its label
    # the overlay still blends every mask, labelled or not
    plain = np.full((*size, 3), 100, np.uint8)
    overlay = OverlayAnnotator().annotate(plain, inst)
    for i in dropped:
        assert (overlay[inst.full_mask(i)] != 100).any()


def test_label_falls_back_to_the_name_when_the_score_does_not_fit() -> None:
    # a 60-pixel-wide image fits "cylinder" at the smallest font, not "cylinder 0.93"
    inst = make_instances(("cylinder", 0.93, (5, 20, 50, 50)), size=(60, 60))
    [(rect, text)] = _layout(inst, (60, 60))  # type: ignore[misc]
    assert text == "cylinder" and rect[2] <= 60


def test_font_and_lines_grow_with_the_image() -> None:
    from segcli.draw.annotators import tag_size, text_geometry

    small, big = text_geometry((96, 128)), text_geometry((3000, 4000))
    assert small[0] < big[0] and small[1] <= big[1] and big[1] >= 3
    assert tag_size("cube 0.99", *big)[1] > 4 * tag_size("cube 0.99", *small)[1]


def test_two_overlapping_boxes_get_separate_labels() -> None:
    """The cluttered.png case: a label that used to sit half under another one."""
    inst = make_instances(("cube", 0.9, (20, 15, 50, 45)), ("sphere", 0.6, (22, 17, 60, 50)), size=(120, 160))
    a, b = _layout(inst, (120, 160))
    assert a is not None and b is not None and not _overlap(a[0], b[0])


def test_mask_file_names_carry_the_class_sanitised() -> None:
    from segcli.outputs.writers import mask_file_name

    assert mask_file_name(0, "cube") == "000-cube.png"
    assert mask_file_name(12, "hair drier") == "012-hair_drier.png"
    assert mask_file_name(3, "N/A") == "003-N_A.png"
    assert mask_file_name(4, "../../etc") == "004-etc.png"
    assert mask_file_name(5, "") == "005-object.png"


def test_label_ink_is_readable_on_every_colour() -> None:
    """The ink a tag is written in contrasts at least 4.5:1 (WCAG text) with the tag, for every
    colour of a 16-step RGB cube, the palette, and the hard greys around the switch point."""
    from segcli.draw.annotators import contrast_ratio, ink_for, instance_color

    steps = range(0, 256, 17)
    colours = [(r, g, b) for r in steps for g in steps for b in steps]
    colours += [instance_color(i) for i in range(200)] + [(v, v, v) for v in range(100, 140)]
    worst = min(contrast_ratio(c, ink_for(c)) for c in colours)
    assert worst >= 4.5, worst
    assert ink_for((255, 255, 255)) == (0, 0, 0) and ink_for((0, 0, 0)) == (255, 255, 255)
    assert ink_for((128, 128, 128)) == (0, 0, 0)  # mid grey: black reads better (5.3 vs 4.0)
    assert contrast_ratio((0, 0, 0), (255, 255, 255)) == pytest.approx(21.0)
