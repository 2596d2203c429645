"""The blocks scene generator and, end to end, the bundled blocks model."""

from __future__ import annotations

import numpy as np
import pytest

from segcli.models.blocks.scenes import (
    CATEGORIES,
    HELDOUT_SEED_BASE,
    MIN_OBJECT_FRACTION,
    render_scene,
    scenes_to_coco,
    seed_case_scene,
)
from segcli.models.blocks.spec import BUNDLED_BLOCKS_WEIGHTS

SPEC_SEEDS = [HELDOUT_SEED_BASE + 700_000 + i for i in range(40)]


@pytest.fixture(scope="module")
def spec_scenes():
    return [render_scene(s) for s in SPEC_SEEDS]


def test_same_seed_same_scene() -> None:
    a, b = render_scene(12345), render_scene(12345)
    assert np.array_equal(a.image, b.image)
    assert len(a.objects) == len(b.objects)
    for oa, ob in zip(a.objects, b.objects):
        assert oa.category_id == ob.category_id
        assert oa.bbox == ob.bbox
        assert np.array_equal(oa.mask, ob.mask)


def test_different_seeds_differ() -> None:
    a, b = render_scene(1), render_scene(2)
    assert a.image.shape != b.image.shape or not np.array_equal(a.image, b.image)


def test_sizes_and_aspect_within_spec(spec_scenes) -> None:
    for scene in spec_scenes:
        h, w = scene.height, scene.width
        assert scene.image.dtype == np.uint8 and scene.image.shape == (h, w, 3)
        assert 192 <= w <= 640 and 192 <= h <= 640
        assert 3 / 4 <= w / h <= 4 / 3
        assert 1 <= len(scene.objects) <= 10


def test_masks_are_visible_parts(spec_scenes) -> None:
    for scene in spec_scenes:
        h, w = scene.height, scene.width
        stack = np.stack([o.mask for o in scene.objects])
        assert stack.shape == (len(scene.objects), h, w) and stack.dtype == bool
        assert stack.sum(axis=0).max() <= 1, "masks of one scene overlap"
        for obj in scene.objects:
            assert obj.area >= MIN_OBJECT_FRACTION * h * w
            assert obj.name == CATEGORIES[obj.category_id - 1]
            ys, xs = np.nonzero(obj.mask)
            x, y, bw, bh = obj.bbox
            assert (x, y, x + bw - 1, y + bh - 1) == (xs.min(), ys.min(), xs.max(), ys.max())


def test_scenes_vary(spec_scenes) -> None:
    classes = {o.category_id for s in spec_scenes for o in s.objects}
    assert classes == {1, 2, 3}
    counts = {len(s.objects) for s in spec_scenes}
    assert len(counts) >= 4
    # same class and (nearly) same colour in one scene happens often
    repeated = 0
    for s in spec_scenes:
        keys = [(o.category_id, tuple(round(c, 1) for c in o.color)) for o in s.objects]
        repeated += len(keys) != len(set(keys))
    assert repeated >= 5


def test_occlusion_happens(spec_scenes) -> None:
    touching = 0
    for scene in spec_scenes:
        for i, a in enumerate(scene.objects):
            grown = np.zeros_like(a.mask)
            grown[1:, :] |= a.mask[:-1, :]
            grown[:-1, :] |= a.mask[1:, :]
            grown[:, 1:] |= a.mask[:, :-1]
            grown[:, :-1] |= a.mask[:, 1:]
            touching += sum(bool((grown & b.mask).any()) for b in scene.objects[i + 1 :])
    assert touching >= 10


def test_size_override() -> None:
    scene = render_scene(7, size=(512, 384))
    assert scene.image.shape == (384, 512, 3)


def test_seed_case_two_same_colour_cubes() -> None:
    scene = seed_case_scene()
    assert [o.name for o in scene.objects] == ["cube", "cube"]
    back, front = scene.objects
    assert back.color == front.color
    # the front cube hides part of the back one: their masks touch, the back one is clipped
    grown = np.zeros_like(front.mask)
    grown[:, :-1] |= front.mask[:, 1:]
    grown[:-1, :] |= front.mask[1:, :]
    assert (grown & back.mask).any()
    assert back.area < front.area
    assert np.array_equal(scene.image, seed_case_scene().image)


def test_coco_ground_truth_loads_in_pycocotools(spec_scenes) -> None:
    from pycocotools import mask as mask_utils
    from pycocotools.coco import COCO

    scenes = spec_scenes[:5]
    gt = scenes_to_coco(scenes, [f"s{i}.png" for i in range(5)])
    coco = COCO()
    coco.dataset = gt
    coco.createIndex()
    assert sorted(coco.getCatIds()) == [1, 2, 3]
    for image_id, scene in enumerate(scenes, start=1):
        anns = coco.loadAnns(coco.getAnnIds(imgIds=[image_id]))
        assert len(anns) == len(scene.objects)
        for ann, obj in zip(anns, scene.objects):
            assert np.array_equal(coco.annToMask(ann).astype(bool), obj.mask)
            assert ann["area"] == mask_utils.area(ann["segmentation"])


# --------------------------------------------------------------------------- end to end
# Fixed held-out scenes (seeds never used in training), chosen before the model was
# evaluated on them.
E2E_SEEDS = [HELDOUT_SEED_BASE + 900_000 + i for i in range(6)]


@pytest.fixture(scope="module")
def segmenter():
    from segcli.inference.segmenter import Segmenter

    # the bundled weights ship with segcli (package data): missing, they fail here, not skip
    assert BUNDLED_BLOCKS_WEIGHTS.is_file(), f"{BUNDLED_BLOCKS_WEIGHTS} is absent"

    return Segmenter(model="blocks", device="cpu", progress=False)


def _match(gt_masks: list[np.ndarray], pred_masks: list[np.ndarray]) -> list[tuple[int, int, float]]:
    """Greedy one-to-one matching by mask IoU (pairs with IoU > 0.1)."""
    pairs = []
    for i, g in enumerate(gt_masks):
        for j, p in enumerate(pred_masks):
            inter = np.logical_and(g, p).sum()
            if inter:
                pairs.append((inter / np.logical_or(g, p).sum(), i, j))
    pairs.sort(reverse=True)
    used_g: set[int] = set()
    used_p: set[int] = set()
    out = []
    for iou, i, j in pairs:
        if iou > 0.1 and i not in used_g and j not in used_p:
            used_g.add(i)
            used_p.add(j)
            out.append((i, j, float(iou)))
    return out


def _check_scene(segmenter, scene) -> tuple[int, int]:
    [inst] = segmenter([scene.image])
    assert inst.image_size == (scene.height, scene.width)
    assert abs(len(inst) - len(scene.objects)) <= 1, (
        f"found {len(inst)} objects, ground truth has {len(scene.objects)}"
    )
    preds = [inst.full_mask(i) for i in range(len(inst))]
    matches = _match([o.mask for o in scene.objects], preds)
    assert matches, "no object matched"
    mean_iou = float(np.mean([iou for _, _, iou in matches]))
    assert mean_iou >= 0.8, f"mean mask IoU {mean_iou:.3f} over {len(matches)} matches"
    same_class = sum(scene.objects[i].category_id == int(inst.class_ids[j]) for i, j, _ in matches)
    return same_class, len(matches)


@pytest.mark.blocks
@pytest.mark.parametrize("seed", E2E_SEEDS)
def test_blocks_model_segments_heldout_scene(segmenter, seed: int) -> None:
    same_class, matched = _check_scene(segmenter, render_scene(seed))
    assert same_class >= matched - 1


@pytest.mark.blocks
def test_blocks_model_keeps_the_two_red_cubes_apart(segmenter) -> None:
    scene = seed_case_scene()
    [inst] = segmenter([scene.image])
    assert list(inst.class_names) == ["cube", "cube"]
    same_class, matched = _check_scene(segmenter, scene)
    assert (same_class, matched) == (2, 2)


@pytest.mark.parametrize("first", [(250, 4000), (45, 640), (300, 40)])
def test_a_thin_first_image_does_not_change_how_later_images_are_pooled(first: tuple[int, int]) -> None:
    """torchvision's RoI poolers guess their feature scales from the first image and keep
    them; a first image about 40 px high at model size made that guess a power of two off
    (0.5 instead of 0.25 ...) for every image after it. segcli sets the scales from the
    backbone's strides when it loads a model."""
    from segcli import Segmenter
    from segcli.models.blocks.scenes import HELDOUT_SEED_BASE, render_scene

    scene = render_scene(HELDOUT_SEED_BASE + 7).image
    fresh = Segmenter("blocks", device="cpu")
    expected = fresh([scene])[0]
    seg = Segmenter("blocks", device="cpu")
    seg([np.full((*first, 3), 128, np.uint8)])
    got = seg([scene])[0]
    pools = (seg.loaded.module.roi_heads.box_roi_pool, seg.loaded.module.roi_heads.mask_roi_pool)
    assert all(pool.scales == [0.25, 0.125, 0.0625, 0.03125] for pool in pools)
    assert len(got) == len(expected) > 0
    np.testing.assert_array_equal(got.boxes, expected.boxes)
    assert all((a == b).all() for a, b in zip(got.masks, expected.masks))
