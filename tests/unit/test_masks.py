"""RLE from crops equals pycocotools' encoding of the full mask; Instances validates itself."""

from __future__ import annotations

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from segcli.core.instances import Instances
from segcli.core.masks import rle_decode, rle_encode


def _random_case(rng: np.random.Generator) -> tuple[np.ndarray, tuple[int, int, int, int], np.ndarray]:
    h, w = (int(v) for v in rng.integers(1, 30, 2))
    x0, x1 = sorted(int(v) for v in rng.integers(0, w + 1, 2))
    y0, y1 = sorted(int(v) for v in rng.integers(0, h + 1, 2))
    if rng.random() < 0.3:  # crops spanning the full height make runs meet across columns
        y0, y1 = 0, h
    crop = rng.random((y1 - y0, x1 - x0)) < rng.random()
    full = np.zeros((h, w), bool)
    full[y0:y1, x0:x1] = crop
    return crop, (x0, y0, x1, y1), full


def test_rle_from_crop_equals_pycocotools() -> None:
    rng = np.random.default_rng(0)
    for _ in range(500):
        crop, box, full = _random_case(rng)
        expected = mask_utils.encode(np.asfortranarray(full.astype(np.uint8)))
        got = rle_encode(crop, box, full.shape)
        assert got["size"] == list(full.shape)
        assert got["counts"] == expected["counts"].decode()
        assert np.array_equal(rle_decode(got), full)


def test_rle_of_empty_and_full_masks() -> None:
    empty = rle_encode(np.zeros((0, 0), bool), (0, 0, 0, 0), (4, 5))
    assert rle_decode(empty).sum() == 0
    full = rle_encode(np.ones((4, 5), bool), (0, 0, 5, 4), (4, 5))
    assert rle_decode(full).all()


def _masks() -> list[np.ndarray]:
    a = np.zeros((20, 30), bool)
    a[2:10, 3:12] = True
    b = np.zeros((20, 30), bool)
    b[5:18, 10:25] = True
    b[8:12, 14:18] = False  # a hole
    return [a, b]


def test_from_full_masks_roundtrip() -> None:
    masks = _masks()
    inst = Instances.from_full_masks(masks, scores=[0.9, 0.8], class_ids=[1, 1], class_names=["cube", "cube"])
    assert len(inst) == 2
    assert inst.image_size == (20, 30)
    for i, m in enumerate(masks):
        assert np.array_equal(inst.full_mask(i), m)
        assert inst.areas[i] == m.sum()
    assert inst.mask_boxes[0].tolist() == [3, 2, 12, 10]
    picked = inst.select([1])
    assert len(picked) == 1 and np.array_equal(picked.full_mask(0), masks[1])


def test_instances_rejects_inconsistent_data() -> None:
    inst = Instances.from_full_masks(_masks(), scores=[0.9, 0.8], class_ids=[1, 2], class_names=["a", "b"])
    with pytest.raises(ValueError, match="scores"):
        Instances(
            image_size=inst.image_size,
            boxes=inst.boxes,
            scores=inst.scores[:1],
            class_ids=inst.class_ids,
            class_names=inst.class_names,
            masks=inst.masks,
            mask_boxes=inst.mask_boxes,
        )
    with pytest.raises(ValueError, match="shape"):
        Instances(
            image_size=inst.image_size,
            boxes=inst.boxes,
            scores=inst.scores,
            class_ids=inst.class_ids,
            class_names=inst.class_names,
            masks=(inst.masks[0], inst.masks[0]),
            mask_boxes=inst.mask_boxes,
        )
    with pytest.raises(ValueError, match="outside"):
        Instances(
            image_size=(5, 5),
            boxes=inst.boxes,
            scores=inst.scores,
            class_ids=inst.class_ids,
            class_names=inst.class_names,
            masks=inst.masks,
            mask_boxes=inst.mask_boxes,
        )
