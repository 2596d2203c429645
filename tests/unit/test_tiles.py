"""The tile grid and the merge across tile borders, on literal Instances (no model).

A perfect detector stands in for the network: each tile "detects" every object whose mask
enters the tile, with the object's mask cut to the tile, exactly what a tile sees of it.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np
import pytest

from segcli.core.errors import SegcliError
from segcli.core.instances import Instances
from segcli.inference.tiles import (
    MAX_TILES,
    Part,
    axis_starts,
    match_score,
    merge_parts,
    place,
    tile_grid,
    tile_pixels,
    top_detections,
    union_crops,
)

Obj = tuple[np.ndarray, float, int]  # full-frame mask, score, class id


def rect(size: tuple[int, int], x0: int, y0: int, x1: int, y1: int) -> np.ndarray:
    m = np.zeros(size, dtype=bool)
    m[y0:y1, x0:x1] = True
    return m


def disk(size: tuple[int, int], cx: float, cy: float, r: float) -> np.ndarray:
    yy, xx = np.mgrid[0 : size[0], 0 : size[1]]
    return (xx + 0.5 - cx) ** 2 + (yy + 0.5 - cy) ** 2 <= r * r


def detect_in(window: tuple[int, int, int, int], objects: Sequence[Obj]) -> Instances:
    """What a perfect detector returns for the tile at ``window``, in tile coordinates."""
    x0, y0, x1, y1 = window
    found = [(m[y0:y1, x0:x1], s, c) for m, s, c in objects if m[y0:y1, x0:x1].any()]
    if not found:
        return Instances.empty((y1 - y0, x1 - x0))
    found.sort(key=lambda f: -f[1])
    return Instances.from_full_masks(
        [m for m, _, _ in found],
        scores=[s for _, s, _ in found],
        class_ids=[c for _, _, c in found],
        class_names=[f"class{c}" for _, _, c in found],
    )


def tiled(
    size: tuple[int, int],
    objects: Sequence[Obj],
    tile: int,
    overlap: float,
    *,
    full: bool = False,
    **merge: object,
) -> Instances:
    grid = tile_grid(size, tile, overlap)
    parts = [Part(w, place(detect_in(w, objects), w, size)) for w in grid.windows]
    if full:
        parts.insert(0, Part((0, 0, size[1], size[0]), detect_in((0, 0, size[1], size[0]), objects)))
    return merge_parts(parts, size, **merge)  # type: ignore[arg-type]


def assert_one_per_object(result: Instances, objects: Sequence[Obj]) -> None:
    assert len(result) == len(objects), f"{len(result)} instances for {len(objects)} objects"
    for i, (mask, score, cid) in enumerate(sorted(objects, key=lambda o: -o[1])):
        np.testing.assert_array_equal(result.full_mask(i), mask)
        assert result.scores[i] == pytest.approx(score)
        assert result.class_ids[i] == cid


# --------------------------------------------------------------------------- grid
def test_axis_starts_cover_the_side_with_equal_tiles() -> None:
    assert axis_starts(1000, 384, 0.2) == (0, 307, 614, 616)
    assert axis_starts(768, 384, 0.0) == (0, 384)  # divides: no shifted tile
    assert axis_starts(1000, 384, 0.0) == (0, 384, 616)  # does not divide: the last moves back
    assert axis_starts(384, 384, 0.2) == (0,)
    assert axis_starts(5, 384, 0.2) == (0,)  # tile larger than the side
    for length, size, overlap in [(1000, 384, 0.2), (60000, 384, 0.5), (385, 384, 0.0), (2, 1, 0.0)]:
        starts = axis_starts(length, size, overlap)
        assert starts[0] == 0 and starts[-1] + min(size, length) == length
        assert all(b - a <= size for a, b in itertools.pairwise(starts))  # no gap


def test_grid_that_does_not_divide_the_image() -> None:
    grid = tile_grid((700, 1000), 384, 0.2)
    assert grid.tile_size == (384, 384)
    assert len(grid) == len(grid.xs) * len(grid.ys) == 4 * 3
    covered = np.zeros((700, 1000), dtype=int)
    for x0, y0, x1, y1 in grid.windows:
        assert (x1 - x0, y1 - y0) == (384, 384) and x1 <= 1000 and y1 <= 700
        covered[y0:y1, x0:x1] += 1
    assert covered.min() >= 1
    assert grid.to_dict() == {"tile": [384, 384], "columns": list(grid.xs), "rows": list(grid.ys)}


def test_tiny_and_thin_images_have_grids() -> None:
    assert tile_grid((1, 1), 384, 0.2).windows == [(0, 0, 1, 1)]
    assert tile_grid((1, 1), 384, 0.2).covers_image
    thin = tile_grid((1, 60000), 384, 0.2)
    assert thin.tile_size == (1, 384) and len(thin.ys) == 1 and thin.xs[-1] == 60000 - 384
    tall = tile_grid((5000, 3), 384, 0.0)
    assert tall.tile_size == (384, 3) and tall.ys[-1] == 5000 - 384


def test_too_many_tiles_is_refused_and_bad_overlap_raises() -> None:
    with pytest.raises(SegcliError, match="tiles"):
        tile_grid((20000, 20000), 32, 0.9)
    assert len(tile_grid((20000, 20000), 384, 0.2)) < MAX_TILES
    for bad in (-0.1, 1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError):
            tile_grid((10, 10), 4, bad)


def test_tile_pixels_is_a_contiguous_copy_of_the_window() -> None:
    image = np.arange(6 * 7 * 3, dtype=np.uint8).reshape(6, 7, 3)
    tile = tile_pixels(image[:, :, :], (2, 1, 6, 4))
    assert tile.flags.c_contiguous and tile.shape == (3, 4, 3)
    np.testing.assert_array_equal(tile, image[1:4, 2:6])


def test_place_shifts_boxes_not_crops() -> None:
    inst = Instances.from_full_masks(
        [rect((10, 10), 2, 3, 5, 7)], scores=[0.9], class_ids=[1], class_names=["a"]
    )
    placed = place(inst, (100, 50, 110, 60), (200, 300))
    assert placed.image_size == (200, 300)
    assert placed.mask_boxes.tolist() == [[102, 53, 105, 57]]
    assert placed.boxes.tolist() == [[102.0, 53.0, 105.0, 57.0]]
    assert placed.masks[0] is inst.masks[0]


# --------------------------------------------------------------------------- merging
@pytest.mark.parametrize("overlap", [0.0, 0.2, 0.5])
@pytest.mark.parametrize("match", ["shared", "ios"])
def test_object_inside_one_tile_stays_as_it_is(overlap: float, match: str) -> None:
    size = (500, 500)
    objects = [(disk(size, 100, 100, 30), 0.9, 1)]
    assert_one_per_object(tiled(size, objects, 256, overlap, match=match), objects)


def test_whole_mask_iou_keeps_the_sliver_another_tile_saw() -> None:
    """The object lies in tile 0; tile 1 (from x=128) sees a 2-px sliver of it: whole-mask IoU
    calls the sliver another object, the shared window and IoS do not."""
    size = (500, 500)
    objects = [(disk(size, 100, 100, 30), 0.9, 1)]
    assert len(tiled(size, objects, 256, 0.5, match="iou")) == 3
    assert len(tiled(size, objects, 256, 0.5, match="shared")) == 1


@pytest.mark.parametrize("overlap", [0.0, 0.2])
def test_object_exactly_on_a_tile_border_is_one_instance_with_one_mask(overlap: float) -> None:
    size = (256, 512)
    grid = tile_grid(size, 256, overlap)
    edge = grid.xs[1] + (256 - grid.xs[1]) // 2 if overlap else 256  # the border (or overlap's middle)
    objects = [(rect(size, edge - 40, 100, edge + 40, 150), 0.8, 2)]
    assert_one_per_object(tiled(size, objects, 256, overlap), objects)


def test_object_larger_than_the_overlap_cut_on_both_sides_is_one_instance() -> None:
    """Neither tile sees it whole: SAHI-style IoS of the two halves is below 0.5, the shared
    window's IoU is 1."""
    size = (300, 700)
    objects = [(rect(size, 100, 100, 600, 200), 0.9, 1)]  # 500 px wide, tiles of 384, overlap 77
    assert_one_per_object(tiled(size, objects, 384, 0.2, match="shared"), objects)
    assert len(tiled(size, objects, 384, 0.2, match="ios")) == 2  # what whole-mask IoS does


@pytest.mark.parametrize("overlap", [0.0, 0.25])
def test_object_at_the_corner_of_four_tiles_is_one_instance(overlap: float) -> None:
    size = (400, 400)
    objects = [(disk(size, 200, 200, 60), 0.95, 3)]
    grid = tile_grid(size, 200 if overlap == 0 else 240, overlap)
    assert len(grid) == 4
    result = tiled(size, objects, grid.tile_size[0], overlap)
    assert_one_per_object(result, objects)


def test_many_objects_on_borders_and_corners_with_overlap_zero() -> None:
    size = (600, 900)
    objects = [
        (rect(size, 280, 20, 320, 60), 0.9, 1),  # on the vertical border x=300
        (disk(size, 300, 300, 25), 0.8, 2),  # at the corner (300, 300)
        (rect(size, 500, 290, 560, 330), 0.7, 1),  # on the horizontal border y=300
        (rect(size, 700, 400, 720, 450), 0.6, 3),  # inside one tile
        (disk(size, 600, 300, 40), 0.5, 1),  # another corner
    ]
    assert_one_per_object(tiled(size, objects, 300, 0.0), objects)


def test_many_objects_on_a_grid_that_does_not_divide_the_image() -> None:
    size = (701, 1003)
    rng = np.random.default_rng(7)
    objects = []
    for k in range(12):
        cx, cy = rng.uniform(40, 960), rng.uniform(40, 660)
        m = disk(size, cx, cy, float(rng.uniform(8, 30)))
        if any((m & o).any() for o, _, _ in objects):
            continue
        objects.append((m, 0.9 - 0.01 * k, 1 + k % 3))
    for overlap in (0.0, 0.2):
        assert_one_per_object(tiled(size, objects, 300, overlap), objects)


def test_touching_objects_across_an_overlap_stay_two() -> None:
    size = (256, 512)
    a = rect(size, 200, 100, 235, 150)
    b = rect(size, 235, 100, 280, 150)  # touches a, same class, both in the overlap band
    objects = [(a, 0.9, 1), (b, 0.8, 1)]
    assert_one_per_object(tiled(size, objects, 300, 0.3), objects)


def test_one_tile_image_equals_no_tiling() -> None:
    size = (300, 200)
    objects = [(disk(size, 50, 50, 20), 0.9, 1), (rect(size, 100, 100, 180, 290), 0.6, 2)]
    grid = tile_grid(size, 384, 0.2)
    assert grid.covers_image
    untiled = detect_in((0, 0, 200, 300), objects)
    result = merge_parts([Part(grid.windows[0], untiled)], size)
    assert len(result) == len(untiled)
    np.testing.assert_array_equal(result.scores, untiled.scores)
    np.testing.assert_array_equal(result.mask_boxes, untiled.mask_boxes)
    for i in range(len(untiled)):
        np.testing.assert_array_equal(result.masks[i], untiled.masks[i])


def test_two_detections_of_one_tile_are_never_merged() -> None:
    size = (100, 100)
    same = rect(size, 10, 10, 50, 50)
    inst = Instances.from_full_masks(
        [same, same], scores=[0.9, 0.8], class_ids=[1, 1], class_names=["a", "a"]
    )
    assert len(merge_parts([Part((0, 0, 100, 100), inst)], size)) == 2


def test_tiny_and_thin_images_merge() -> None:
    size = (1, 1)
    objects = [(np.ones(size, dtype=bool), 0.5, 1)]
    assert_one_per_object(tiled(size, objects, 384, 0.2), objects)
    thin = (1, 6000)
    objects = [(rect(thin, 300, 0, 1500, 1), 0.9, 1), (rect(thin, 5000, 0, 5001, 1), 0.8, 2)]
    for overlap in (0.0, 0.2):
        assert_one_per_object(tiled(thin, objects, 384, overlap), objects)


def test_nms_keeps_the_best_part_and_nmm_unites() -> None:
    size = (256, 512)
    objects = [(rect(size, 216, 100, 296, 150), 0.8, 2)]
    merged = tiled(size, objects, 256, 0.0, merge="nmm")
    kept = tiled(size, objects, 256, 0.0, merge="nms")
    assert len(merged) == len(kept) == 1
    assert merged.areas[0] == 80 * 50 and kept.areas[0] == 40 * 50


def test_class_aware_and_agnostic() -> None:
    size = (256, 512)
    obj = rect(size, 216, 100, 296, 150)
    grid = tile_grid(size, 256, 0.0)
    left, right = grid.windows
    inst_l = place(detect_in(left, [(obj, 0.9, 1)]), left, size)
    inst_r = place(detect_in(right, [(obj, 0.7, 2)]), right, size)  # the other half, other class
    parts = [Part(left, inst_l), Part(right, inst_r)]
    assert len(merge_parts(parts, size, class_agnostic=False)) == 2
    agnostic = merge_parts(parts, size)  # the default
    assert len(agnostic) == 1 and agnostic.class_ids[0] == 1 and agnostic.scores[0] == pytest.approx(0.9)


def test_full_image_pass_merges_with_tile_parts() -> None:
    size = (400, 400)
    big = disk(size, 200, 200, 150)  # larger than any tile
    small = disk(size, 50, 350, 10)
    objects = [(big, 0.9, 1), (small, 0.6, 2)]
    assert_one_per_object(tiled(size, objects, 160, 0.2, full=True), objects)


def test_match_metrics() -> None:
    a, box_a = np.ones((10, 10), dtype=bool), (0, 0, 10, 10)
    b, box_b = np.ones((10, 5), dtype=bool), (5, 0, 10, 10)
    assert match_score(a, box_a, (0, 0, 20, 20), b, box_b, (0, 0, 20, 20), "iou") == pytest.approx(0.5)
    assert match_score(a, box_a, (0, 0, 20, 20), b, box_b, (0, 0, 20, 20), "ios") == pytest.approx(1.0)
    # shared: only the pixels both windows saw (x 5..10) count
    assert match_score(a, box_a, (0, 0, 10, 20), b, box_b, (5, 0, 20, 20), "shared") == pytest.approx(1.0)
    # windows that only touch: the columns on either side of x=10
    left, right = np.ones((4, 3), dtype=bool), np.ones((2, 3), dtype=bool)
    score = match_score(left, (7, 0, 10, 4), (0, 0, 10, 10), right, (10, 2, 13, 4), (10, 0, 20, 10), "shared")
    assert score == pytest.approx(0.5)
    with pytest.raises(ValueError):
        match_score(a, box_a, box_a, b, box_b, box_b, "dice")


def test_union_crops_and_top_detections() -> None:
    mask, box = union_crops(
        [np.ones((2, 2), bool), np.zeros((0, 0), bool), np.ones((1, 1), bool)],
        [np.array([0, 0, 2, 2]), np.array([0, 0, 0, 0]), np.array([4, 3, 5, 4])],
    )
    assert box == (0, 0, 5, 4) and mask.sum() == 5
    empty, box = union_crops([np.zeros((0, 0), bool)], [np.array([0, 0, 0, 0])])
    assert empty.size == 0 and box == (0, 0, 0, 0)
    size = (50, 50)
    inst = Instances.from_full_masks(
        [rect(size, i, i, i + 2, i + 2) for i in range(5)],
        scores=[0.1, 0.9, 0.5, 0.9, 0.3],
        class_ids=[1] * 5,
        class_names=["a"] * 5,
    )
    top = top_detections(inst, 3)
    assert top.scores.tolist() == pytest.approx([0.9, 0.9, 0.5])
    assert top.mask_boxes[:, 0].tolist() == [1, 3, 2]
    assert top_detections(inst, None) is inst and top_detections(inst, 5) is inst


def test_merge_with_no_detections_and_bad_arguments() -> None:
    size = (64, 64)
    assert len(merge_parts([Part((0, 0, 64, 64), Instances.empty(size))], size)) == 0
    assert len(merge_parts([], size)) == 0
    with pytest.raises(ValueError, match="merge"):
        merge_parts([], size, merge="wbf")
    with pytest.raises(ValueError, match="match"):
        merge_parts([], size, match="dice")
    with pytest.raises(ValueError, match="holds instances"):
        merge_parts([Part((0, 0, 8, 8), Instances.empty((8, 8)))], size)
