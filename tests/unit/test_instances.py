"""Operations on ``Instances``: indexing, label maps, resizing, repr; the factories themselves."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from segcli.core.instances import Instances
from segcli.figures.compare import resize_label_map
from segcli.io.images import LoadedImage
from tests.factories import SIZE, box_mask, class_map, from_masks, make_instances

H, W = SIZE


def _three() -> Instances:
    return make_instances(
        ("cube", 0.9, (10, 10, 40, 40)),
        ("sphere", 0.8, (30, 25, 60, 55)),
        ("cylinder", 0.7, (62, 5, 75, 20)),
    )


def _same(a: Instances, b: Instances) -> bool:
    return (
        a.image_size == b.image_size
        and a.class_names == b.class_names
        and np.array_equal(a.scores, b.scores)
        and np.array_equal(a.boxes, b.boxes)
        and np.array_equal(a.class_ids, b.class_ids)
        and np.array_equal(a.mask_boxes, b.mask_boxes)
        and all(np.array_equal(x, y) for x, y in zip(a.masks, b.masks, strict=True))
    )


# --------------------------------------------------------------------------- factories
def test_make_instances_builds_what_the_literals_say() -> None:
    inst = _three()
    assert inst.image_size == (H, W)
    assert inst.class_names == ("cube", "sphere", "cylinder")
    assert inst.class_ids.tolist() == [1, 2, 3]
    assert inst.boxes[1].tolist() == [30, 25, 60, 55]
    assert np.array_equal(inst.full_mask(1), box_mask(30, 25, 60, 55))
    ring = box_mask(0, 0, 10, 10) & ~box_mask(3, 3, 7, 7)
    [holed] = make_instances(("cube", 0.5, (0, 0, 10, 10), ring))
    assert holed.areas.tolist() == [100 - 16]
    assert len(make_instances(size=(5, 7))) == 0 and make_instances(size=(5, 7)).image_size == (5, 7)


# --------------------------------------------------------------------------- __getitem__
def test_int_index_gives_one_instance() -> None:
    inst = _three()
    one = inst[1]
    assert isinstance(one, Instances) and len(one) == 1
    assert one.class_names == ("sphere",) and one.image_size == inst.image_size
    assert np.array_equal(one.full_mask(0), inst.full_mask(1))
    assert _same(inst[-1], inst[2]) and _same(inst[np.int64(0)], inst[0])
    for bad in (3, -4):
        with pytest.raises(IndexError, match="out of range for 3 instances"):
            inst[bad]
    with pytest.raises(TypeError, match="single bool"):
        inst[True]
    assert [x.class_names[0] for x in inst] == ["cube", "sphere", "cylinder"]  # iteration


def test_slice_index() -> None:
    inst = _three()
    assert inst[1:].class_names == ("sphere", "cylinder")
    assert inst[::-1].class_names == ("cylinder", "sphere", "cube")
    assert _same(inst[:], inst)
    empty = inst[3:]
    assert len(empty) == 0 and empty.image_size == inst.image_size


def test_boolean_mask_index() -> None:
    inst = _three()
    strong = inst[inst.scores > 0.75]
    assert strong.class_names == ("cube", "sphere")
    assert len(inst[np.zeros(3, bool)]) == 0
    assert inst[[False, False, True]].class_names == ("cylinder",)
    with pytest.raises(IndexError, match="boolean index of shape"):
        inst[np.ones(2, bool)]
    none = Instances.empty((H, W))
    assert len(none[np.zeros(0, bool)]) == 0


def test_int_array_index_keeps_the_given_order() -> None:
    inst = _three()
    picked = inst[[2, 0]]
    assert picked.class_names == ("cylinder", "cube")
    assert np.array_equal(picked.full_mask(1), inst.full_mask(0))
    assert picked.areas.tolist() == [inst.areas[2], inst.areas[0]]
    assert inst[np.array([-1, 0])].class_names == ("cylinder", "cube")
    assert len(inst[[]]) == 0 and len(inst[np.array([], dtype=np.int64)]) == 0
    with pytest.raises(IndexError, match="instance 5 out of range"):
        inst[[0, 5]]
    with pytest.raises(IndexError, match="int-array indices"):
        inst[np.array([0.0, 1.0])]
    with pytest.raises(IndexError, match="out of range for 0 instances"):
        Instances.empty((H, W))[[0]]


# --------------------------------------------------------------------------- label_map
def test_label_map_highest_score_wins_whatever_the_order() -> None:
    a, b = box_mask(0, 0, 30, 30), box_mask(20, 20, 50, 50)
    for scores, ids, winner in (([0.6, 0.9], [1, 2], 2), ([0.9, 0.6], [2, 1], 2)):
        semantic = class_map(from_masks([a, b], scores, ids))
        assert semantic[25, 25] == winner
        assert semantic[5, 5] == ids[0] and semantic[45, 45] == ids[1] and semantic[55, 75] == 0


def test_label_map_equal_scores_lower_index_wins() -> None:
    a, b, c = box_mask(0, 0, 30, 30), box_mask(20, 20, 50, 50), box_mask(25, 25, 28, 28)
    assert class_map(from_masks([a, b], [0.7, 0.7], [1, 2]))[25, 25] == 1
    assert class_map(from_masks([a, b], [0.7, 0.7], [2, 1]))[25, 25] == 2
    # three-way: a lower-scored instance never wins, the tie goes to the lower index
    assert class_map(from_masks([c, a, b], [0.5, 0.7, 0.7], [3, 2, 1]))[26, 26] == 2


def test_label_map_values_background_and_dtype() -> None:
    inst = _three()
    ids = inst.label_map(np.arange(1, 4), dtype=np.uint16)
    assert ids.shape == (H, W) and ids.dtype == np.uint16
    assert ids[15, 15] == 1 and ids[35, 35] == 1 and ids[50, 50] == 2 and ids[10, 70] == 3 and ids[0, 0] == 0
    assert sorted(np.unique(ids).tolist()) == [0, 1, 2, 3]
    # scores fall with the index: each instance holds the pixels no earlier one claims
    claimed = np.zeros((H, W), bool)
    for i in range(3):
        assert np.array_equal(ids == i + 1, inst.full_mask(i) & ~claimed)
        claimed |= inst.full_mask(i)
    filled = inst.label_map([7, 8, 9], background=-1)
    assert filled[0, 0] == -1 and filled[15, 15] == 7 and filled.dtype.kind == "i"
    with pytest.raises(ValueError, match="one value per instance"):
        inst.label_map([1, 2])
    empty = Instances.empty((H, W)).label_map([], dtype=np.int32)
    assert empty.shape == (H, W) and empty.dtype == np.int32 and not empty.any()


# --------------------------------------------------------------------------- resized
def test_resized_lines_up_with_the_resized_label_map() -> None:
    inst = _three()
    for size in ((31, 41), (150, 200), (7, 9)):
        scaled = inst.resized(size)
        assert scaled.image_size == size and len(scaled) == 3
        assert np.array_equal(class_map(scaled), resize_label_map(class_map(inst), size))


def test_resized_scales_boxes_and_masks() -> None:
    inst = _three()
    double = inst.resized((2 * H, 2 * W))
    assert np.allclose(double.boxes, inst.boxes * 2)
    assert double.areas.tolist() == (inst.areas * 4).tolist()
    assert double.mask_boxes.tolist() == (inst.mask_boxes * 2).tolist()
    assert inst.resized((H, W)) is inst
    # a mask too small for the target size vanishes; the instance stays, with an empty crop
    [dot] = make_instances(("cube", 0.9, (41, 31, 42, 32)))
    [gone] = dot.resized((3, 4))
    assert gone.areas.tolist() == [0] and gone.masks[0].shape == (0, 0)
    assert gone.boxes[0].tolist() == pytest.approx([41 * 4 / W, 31 * 3 / H, 42 * 4 / W, 32 * 3 / H])


# --------------------------------------------------------------------------- reprs
def test_repr_is_short() -> None:
    assert repr(_three()) == "Instances(3 of 80x60: cube 0.90, sphere 0.80, cylinder 0.70)"
    assert repr(Instances.empty((384, 512))) == "Instances(0 of 512x384)"
    rng = np.random.default_rng(0)
    boxes = [(int(x), int(y), int(x) + 5, int(y) + 5) for x, y in rng.integers(0, 50, (100, 2))]
    long_name = "a-very-long-class-name-indeed-" * 3
    many = make_instances(*((long_name, 0.5, b) for b in boxes), size=(60, 60), categories=("bg", long_name))
    text = repr(many)
    assert len(text) < 200 and "\n" not in text
    assert text.startswith("Instances(100 of 60x60: ") and text.endswith("… 96 more)")


def test_loaded_image_repr() -> None:
    image = LoadedImage(path=Path("photos/cat.jpg"), pixels=np.zeros((480, 640, 3), np.uint8), format="JPEG")
    assert repr(image) == "LoadedImage('photos/cat.jpg', 640x480 JPEG)"
