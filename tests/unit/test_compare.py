"""``segcli compare semantic-vs-instance``: numbers, tie-breaking, figure, semantic models, CLI.

No test touches the network: model weights are random and saved to tmp, and the
torchvision download is replaced by a function that fails or hands back a state dict.
"""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.error
from pathlib import Path

import cv2
import numpy as np
import pytest

from segcli.core.errors import SegcliError
from segcli.core.instances import Instances
from segcli.figures import compare as C
from tests.factories import BLOCKS, SIZE, box_mask, class_map
from tests.factories import from_masks as make

H, W = SIZE
NAMES = dict(enumerate(BLOCKS))


# --------------------------------------------------------------------------- numbers
def test_two_overlapping_cubes_are_two_instances_but_one_semantic_region() -> None:
    a, b = box_mask(10, 10, 40, 40), box_mask(30, 25, 60, 55)
    inst = make([a, b], [0.9, 0.8], [1, 1])
    semantic = class_map(inst)
    [cube] = C.class_stats(inst, semantic, NAMES)
    union = int((a | b).sum())
    assert (cube.label, cube.instances, cube.semantic_regions) == ("cube", 2, 1)
    assert cube.semantic_pixels == cube.instance_pixels == union
    assert cube.score == pytest.approx(0.9)


def test_stats_per_class_and_regions_are_8_connected() -> None:
    # Two cubes touching only at a corner: one 8-connected region (4-connected: two).
    a, b = box_mask(0, 0, 10, 10), box_mask(10, 10, 20, 20)
    sphere1, sphere2 = box_mask(40, 0, 50, 10), box_mask(60, 30, 70, 40)
    inst = make([a, b, sphere1, sphere2], [0.9, 0.9, 0.8, 0.7], [1, 1, 2, 2])
    semantic = class_map(inst)
    stats = {s.label: s for s in C.class_stats(inst, semantic, NAMES)}
    assert (stats["cube"].instances, stats["cube"].semantic_regions) == (2, 1)
    assert C.class_stats(inst, semantic, NAMES, connectivity=4)[0].semantic_regions == 2
    assert (stats["sphere"].instances, stats["sphere"].semantic_regions) == (2, 2)
    assert stats["sphere"].semantic_pixels == stats["sphere"].instance_pixels == 200


def test_semantic_pixels_differ_from_instance_pixels_where_another_class_wins() -> None:
    cube, sphere = box_mask(0, 0, 20, 20), box_mask(10, 0, 30, 20)  # overlap of 10x20
    inst = make([cube, sphere], [0.6, 0.9], [1, 2])
    stats = {s.label: s for s in C.class_stats(inst, class_map(inst), NAMES)}
    assert stats["cube"].instance_pixels == 400
    assert stats["cube"].semantic_pixels == 200  # the sphere scored higher on the overlap
    assert stats["sphere"].semantic_pixels == stats["sphere"].instance_pixels == 400


def test_classes_found_by_one_side_only() -> None:
    inst = make([box_mask(0, 0, 10, 10)], [0.9], [1])
    semantic = np.zeros((H, W), np.int32)
    semantic[40:50, 40:50] = 3  # a cylinder the instance model did not find
    stats = {s.label: s for s in C.class_stats(inst, semantic, NAMES)}
    assert [s.label for s in C.class_stats(inst, semantic, NAMES)] == ["cube", "cylinder"]
    assert (stats["cube"].semantic_pixels, stats["cube"].semantic_regions) == (0, 0)
    assert stats["cylinder"].instances == stats["cylinder"].instance_pixels == 0
    assert (stats["cylinder"].semantic_pixels, stats["cylinder"].score) == (100, None)
    assert C.class_stats(Instances.empty((H, W)), np.zeros((H, W), np.int32), NAMES) == []


def test_seed_case_scene_makes_the_point() -> None:
    from segcli.models.blocks.scenes import seed_case_scene

    scene = seed_case_scene()
    objs = scene.objects
    inst = Instances.from_full_masks(
        [o.mask for o in objs],
        scores=[0.9] * len(objs),
        class_ids=[o.category_id for o in objs],
        class_names=[o.name for o in objs],
    )
    [cube] = C.class_stats(inst, class_map(inst), NAMES)
    assert (cube.label, cube.instances, cube.semantic_regions) == ("cube", 2, 1)


# --------------------------------------------------------------------------- VOC <-> COCO
def test_voc_spellings_map_to_coco() -> None:
    assert C.coco_name("person") == "person"
    assert C.coco_name("tvmonitor") == "tv"
    assert C.coco_name("aeroplane") == "airplane"


def test_every_voc_class_is_a_coco_class() -> None:
    from torchvision.models.detection import MaskRCNN_ResNet50_FPN_Weights
    from torchvision.models.segmentation import DeepLabV3_ResNet50_Weights

    voc = DeepLabV3_ResNet50_Weights.COCO_WITH_VOC_LABELS_V1.meta["categories"]
    coco = set(MaskRCNN_ResNet50_FPN_Weights.COCO_V1.meta["categories"])
    names = C.voc_names_as_coco(voc)
    assert len(voc) == 21 and names[0] == "__background__"
    assert all(names[i] in coco for i in range(1, 21))


def test_voc_map_meets_coco_instances_by_name() -> None:
    voc = ["__background__", "aeroplane", "bicycle", "tvmonitor"]
    inst = Instances.from_full_masks(
        [box_mask(0, 0, 20, 20)], scores=[0.9], class_ids=[5], class_names=["airplane"]
    )
    semantic = np.zeros((H, W), np.int32)
    semantic[0:20, 0:20] = 1  # "aeroplane"
    semantic[40:45, 40:45] = 3  # "tvmonitor"
    stats = C.class_stats(inst, semantic, C.voc_names_as_coco(voc))
    assert [(s.label, s.instances, s.semantic_pixels) for s in stats] == [("airplane", 1, 400), ("tv", 0, 25)]


# --------------------------------------------------------------------------- record
def test_record_has_the_schema_keys() -> None:
    a, b = box_mask(10, 10, 40, 40), box_mask(30, 25, 60, 55)
    inst = make([a, b], [0.9, 0.8], [1, 1])
    stats = C.class_stats(inst, class_map(inst), NAMES)
    record = C.compare_record(
        stats, image_path="x.png", image_size=(H, W), semantic="derived", model={"name": "blocks"}
    )
    assert list(record)[:4] == ["schema", "image", "semantic", "classes"]
    assert record["schema"] == "segcli.compare/1"
    assert record["image"] == {"path": "x.png", "width": W, "height": H}
    assert record["model"] == {"name": "blocks"}
    [row] = record["classes"]
    assert {"label", "instances", "semantic_regions", "semantic_pixels", "instance_pixels"} <= set(row)
    assert (row["instances"], row["semantic_regions"]) == (2, 1)
    json.dumps(record)


def test_check_semantic_source() -> None:
    assert C.check_semantic_source("DeepLabV3") == "deeplabv3"
    with pytest.raises(SegcliError, match="unknown --semantic 'bogus'"):
        C.check_semantic_source("bogus")
    with pytest.raises(SegcliError, match="--semantic-weights needs a semantic model"):
        C.check_semantic_source("derived", Path("w.pt"))


# --------------------------------------------------------------------------- figure
def _scene() -> tuple[np.ndarray, Instances]:
    rng = np.random.default_rng(0)
    image = rng.integers(90, 160, size=(H, W, 3), dtype=np.uint8)
    inst = make(
        [box_mask(10, 10, 40, 40), box_mask(30, 25, 60, 55), box_mask(62, 5, 75, 20)],
        [0.9, 0.8, 0.7],
        [1, 1, 2],
    )
    return image, inst


def test_figure_has_four_titled_panels() -> None:
    image, inst = _scene()
    semantic = class_map(inst)
    panels = C.compare_panels(image, inst, semantic, NAMES)
    assert [t for t, _ in panels] == [
        "1. Classification",
        "2. Object detection",
        "3. Semantic segmentation (derived)",
        "4. Instance segmentation",
    ]
    figure = C.compose_figure(panels)
    ph, pw = C.panel_size((H, W))
    assert max(ph, pw) == 320  # tiny images are enlarged for legibility
    _, _, bar = C.title_font([t for t, _ in panels], pw)
    layout = C.grid_layout((ph, pw), bar)
    assert figure.shape == (*layout.size, 3) and len(layout.panels) == 4
    for (title, pixels), box in zip(panels, layout.panels):
        tx0, ty0, tx1, ty1 = box.title
        ink = figure[ty0:ty1, tx0:tx1].min(axis=2)
        assert (ink < 100).sum() > 20, f"no text in the title bar of {title!r}"
        ix0, iy0, ix1, iy1 = box.image
        assert np.array_equal(figure[iy0:iy1, ix0:ix1], pixels)
    # a 2x2 grid: two distinct columns and rows
    assert len({b.image[0] for b in layout.panels}) == 2 and len({b.image[1] for b in layout.panels}) == 2
    # margins and gaps are plain figure background
    assert (figure[:, : layout.panels[0].image[0]] == 255).all()


def test_semantic_panel_one_colour_per_class_instance_panel_one_per_object() -> None:
    image, inst = _scene()
    semantic = class_map(inst)
    ph, pw = C.panel_size((H, W))
    small = C.resize_label_map(semantic, (ph, pw))
    panels = dict(C.compare_panels(image, inst, semantic, NAMES))
    sem_panel = panels["3. Semantic segmentation (derived)"]
    inst_panel = panels["4. Instance segmentation"]
    k = ph // H  # 320 / 80 = 4: panel pixel of image pixel (y, x) is (y * k, x * k)
    first, second = (15 * k, 15 * k), (50 * k, 55 * k)  # inside cube 0 only / cube 1 only
    assert small[first] == small[second] == 1
    assert tuple(sem_panel[first]) == tuple(sem_panel[second]) == C.semantic_color(1)
    assert tuple(sem_panel[50 * k, 75 * k]) == C.semantic_color(0) == (0, 0, 0)  # background
    assert tuple(inst_panel[first]) != tuple(inst_panel[second])


def test_big_images_are_shrunk_for_the_figure() -> None:
    big_h, big_w = 1500, 2000
    image = np.full((big_h, big_w, 3), 128, np.uint8)
    inst = make(
        [box_mask(100, 100, 900, 900, (big_h, big_w)), box_mask(700, 600, 1500, 1400, (big_h, big_w))],
        [0.9, 0.8],
        [1, 1],
    )
    semantic = class_map(inst)
    figure = C.compose_figure(C.compare_panels(image, inst, semantic, NAMES))
    assert C.panel_size((big_h, big_w)) == (480, 640)
    assert max(figure.shape[:2]) < 1400
    [cube] = C.class_stats(inst, semantic, NAMES)  # numbers stay at full resolution
    assert (cube.instances, cube.semantic_regions, cube.semantic_pixels) == (
        2,
        1,
        640000 + 640000 - 200 * 300,
    )


def test_scaled_instances_line_up_with_the_resized_map() -> None:
    _, inst = _scene()
    for size in ((31, 41), (150, 200)):
        scaled = inst.resized(size)
        expect = C.resize_label_map(class_map(inst), size)
        assert np.array_equal(class_map(scaled), expect)


# --------------------------------------------------------------------------- semantic models
@pytest.mark.parametrize("name", ["deeplabv3", "fcn", "lraspp"])
def test_semantic_builders_fit_torchvisions_own_checkpoints(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """torchvision's ``weights=COCO_WITH_VOC_LABELS_V1`` path loads our builder's keys strictly."""
    import torch
    import torchvision.models.segmentation as tv_seg
    from torchvision.models._api import WeightsEnum

    from segcli.models.registry import SEMANTIC_MODELS

    spec = SEMANTIC_MODELS[name]
    with torch.device("meta"):
        ours = spec.build(num_classes=len(spec.categories), aux_loss=spec.aux_loss).state_dict()
    assert any(k.startswith("aux_classifier.") for k in ours) == (name != "lraspp")
    monkeypatch.setattr(WeightsEnum, "get_state_dict", lambda self, *a, **k: ours)
    with torch.device("meta"):
        theirs = getattr(tv_seg, spec.architecture)(weights=spec.torchvision_weights)  # strict load
    assert set(theirs.state_dict()) == set(ours)
    assert spec.categories[0] == "__background__" and len(spec.categories) == 21


@pytest.fixture(scope="module")
def lraspp_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import torch

    from segcli.models.registry import SEMANTIC_MODELS

    torch.manual_seed(0)
    module = SEMANTIC_MODELS["lraspp"].build(num_classes=21, aux_loss=False)
    path = tmp_path_factory.mktemp("semantic") / "lraspp-random.pt"
    torch.save({"model": module.state_dict()}, path)
    return path


def test_semantic_weights_run_end_to_end(lraspp_checkpoint: Path) -> None:
    from segcli.inference.forward import semantic_segment
    from segcli.models.weights import load_model

    loaded = load_model("lraspp", task="semantic", weights=lraspp_checkpoint, device="cpu")
    assert loaded.info()["weights"] == str(lraspp_checkpoint) and len(loaded.categories) == 21
    image, inst = _scene()
    semantic = semantic_segment(loaded, image, size=64)
    assert semantic.shape == (H, W) and semantic.dtype == np.int32
    assert semantic.min() >= 0 and semantic.max() < 21
    names = C.voc_names_as_coco(loaded.categories)
    stats = C.class_stats(inst, semantic, names)
    assert sum(s.semantic_pixels for s in stats) == int((semantic > 0).sum())
    panels = C.compare_panels(image, inst, semantic, names, semantic="lraspp")
    assert panels[2][0] == "3. Semantic segmentation (lraspp)"
    assert C.compose_figure(panels).ndim == 3


def test_semantic_checkpoint_of_another_architecture_is_refused(lraspp_checkpoint: Path) -> None:
    from segcli.models.weights import load_model

    with pytest.raises(SegcliError, match=r"does not fit fcn_resnet50 \(--semantic fcn\)"):
        load_model("fcn", task="semantic", weights=lraspp_checkpoint, device="cpu")


def test_semantic_offline_error_names_file_cache_url_and_option(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch
    from torchvision.models._api import WeightsEnum

    from segcli.models.registry import SEMANTIC_MODELS
    from segcli.models.weights import load_model

    def offline(self: object, *args: object, **kwargs: object) -> None:
        raise urllib.error.URLError("no network in tests")

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(torch.hub, "_hub_dir", None)
    monkeypatch.setattr(WeightsEnum, "get_state_dict", offline)
    weights = SEMANTIC_MODELS["deeplabv3"].torchvision_weights
    with pytest.raises(SegcliError) as err:
        load_model("deeplabv3", task="semantic", device="cpu")
    text = str(err.value)
    cache = tmp_path / "hub" / "checkpoints"
    assert "deeplabv3_resnet50_coco-cd0a2569.pth" in text
    assert str(cache) in text and weights.url in text and "weights=PATH" in text
    assert "no network in tests" in text and "\n" not in text


# --------------------------------------------------------------------------- CLI
# ``coco_ckpt`` (conftest): a randomly initialised maskrcnn_resnet50_fpn checkpoint.
@pytest.fixture
def tiny_image(tmp_path: Path) -> Path:
    image, _ = _scene()
    path = tmp_path / "tiny.png"
    cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    return path


def test_cli_end_to_end(coco_ckpt: Path, lraspp_checkpoint: Path, tiny_image: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from segcli.cli import app

    out = tmp_path / "out"
    common = [
        "compare", "semantic-vs-instance", str(tiny_image), "-o", str(out),
        "--weights", str(coco_ckpt), "--device", "cpu",
        "--min-size", "128", "--max-size", "192", "--score-threshold", "0.0", "--max-detections", "5",
    ]  # fmt: skip
    result = CliRunner().invoke(app, common)
    assert result.exit_code == 0, result.output
    png, js = out / "tiny.png.compare.png", out / "tiny.png.compare.json"
    assert png.is_file() and js.is_file()
    assert "semantic regions" in result.output and str(png) in result.output
    record = json.loads(js.read_text())
    assert record["schema"] == "segcli.compare/1" and record["semantic"] == "derived"
    assert record["image"] == {"path": str(tiny_image), "width": W, "height": H}
    assert record["model"]["weights"] == str(coco_ckpt)
    assert record["settings"]["min_size"] == 128
    assert sum(row["instances"] for row in record["classes"]) == 5
    figure = cv2.imread(str(png))
    ph, pw = C.panel_size((H, W))
    assert figure is not None and figure.shape[1] == 2 * pw + 8 + 2 * 8 and figure.shape[0] > 2 * ph

    result = CliRunner().invoke(
        app, [*common, "--semantic", "lraspp", "--semantic-weights", str(lraspp_checkpoint), "-q"]
    )
    assert result.exit_code == 0, result.output
    record = json.loads(js.read_text())
    assert record["semantic"] == "lraspp"
    assert record["semantic_model"]["weights"] == str(lraspp_checkpoint)


def test_cli_rejects_a_bad_semantic_source_before_loading_anything(
    tiny_image: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    import segcli.models.weights
    from segcli.cli import app
    from tests.fakes import use_fake_in_cli

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a semantic model was loaded")

    loaded = use_fake_in_cli(monkeypatch)
    monkeypatch.setattr(segcli.models.weights, "load_model", refuse)
    result = CliRunner().invoke(
        app, ["compare", "semantic-vs-instance", str(tiny_image), "--semantic", "bogus", "-o", str(tmp_path)]
    )
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        "usage error: unknown --semantic 'bogus'; choose one of: derived, deeplabv3, fcn, lraspp"
    ]
    assert "Traceback" not in result.output
    assert loaded == [], "no model loaded for a usage error"


def test_compare_module_does_not_import_torch() -> None:
    code = "import sys, segcli.figures.compare; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_figure_shows_the_counts_per_class_below_the_panels() -> None:
    from segcli.figures.compare.figure import count_lines

    image, inst = _scene()
    semantic = class_map(inst)
    lines = count_lines(C.class_stats(inst, semantic, NAMES))
    # the two touching cubes: 2 instances but 1 semantic region; the sphere: 1 and 1
    assert lines == ["cube: 2 instances, 1 semantic region", "sphere: 1 instance, 1 semantic region"]
    panels = C.compare_panels(image, inst, semantic, NAMES)
    plain, with_counts = C.compose_figure(panels), C.compose_figure(panels, footer=lines)
    assert with_counts.shape[0] > plain.shape[0] and with_counts.shape[1] == plain.shape[1]
    assert np.array_equal(with_counts[: plain.shape[0] - 8], plain[: plain.shape[0] - 8])
    strip = with_counts[plain.shape[0] - 4 :]
    for k in range(len(lines)):  # ink on each line of the strip
        band = strip[k * (len(strip) // len(lines)) : (k + 1) * (len(strip) // len(lines))]
        assert (band.min(axis=2) < 100).sum() > 20
    many = count_lines([C.class_stats(inst, semantic, NAMES)[0]] * 9, max_lines=6)
    assert len(many) == 6 and many[-1] == "+4 more classes (see the JSON)"
