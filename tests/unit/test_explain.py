"""``segcli explain`` and ``segcli compare proposals``: the bundled blocks model on a blocks scene.

The scene is examples/blocks/two-red-cubes.png at a small input size (96/128), where the
bundled model still finds both cubes. Matching and drawing are also tested on hand-built
``Instances`` and proposals.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from segcli.cli import app
from segcli.core.instances import Instances
from segcli.core.masks import rle_decode
from segcli.core.settings import Settings
from segcli.figures import explain as E
from segcli.figures.compare import proposals as CP
from segcli.figures.compare.figure import MIN_CANVAS
from segcli.inference.segmenter import Segmenter
from segcli.io.images import read_image

REPO = Path(__file__).resolve().parents[2]
SCENE = REPO / "examples" / "blocks" / "two-red-cubes.png"
SMALL = Settings(min_size=96, max_size=128)
CLI_SMALL = ["--model", "blocks", "--device", "cpu", "--min-size", "96", "--max-size", "128", "--quiet"]

pytestmark = pytest.mark.blocks


@pytest.fixture(scope="module")
def scene() -> np.ndarray:
    return read_image(SCENE).pixels


@pytest.fixture(scope="module")
def seg() -> Segmenter:
    return Segmenter("blocks", device="cpu", settings=SMALL, progress=False)


@pytest.fixture(scope="module")
def explained(seg: Segmenter, scene: np.ndarray) -> E.Explanation:
    return E.explain(seg, scene)


# --------------------------------------------------------------------------- explain: the stages
def test_scene_has_two_detections(explained: E.Explanation) -> None:
    # The tests below follow a mask; make sure there is one (and a second for --instance 1).
    assert len(explained.detections) == 2
    assert explained.detections.class_names == ("cube", "cube")


def test_proposals_are_at_most_n_sorted_by_objectness(seg: Segmenter, scene: np.ndarray) -> None:
    seg20 = Segmenter("blocks", device="cpu", settings=Settings(min_size=96, max_size=128, proposals=20))
    ex = E.explain(seg20, scene)
    p = ex.proposals
    assert p.top_n == 20 and 0 < len(p) <= 20
    assert np.all(np.diff(p.objectness) <= 0) and p.objectness.min() >= 0 and p.objectness.max() <= 1
    h, w = ex.image_size
    assert (p.boxes[:, 0::2] >= 0).all() and (p.boxes[:, 0::2] <= w).all()
    assert (p.boxes[:, 1::2] >= 0).all() and (p.boxes[:, 1::2] <= h).all()
    assert E.explain_record(ex, image_path="x.png", model={}, settings={})["proposals"]["drawn"] == len(p)


def test_proposals_are_the_rpns_own_boxes(
    seg: Segmenter, scene: np.ndarray, explained: E.Explanation
) -> None:
    """The recorded proposals are what the RPN returns, mapped back to image pixels."""
    from torchvision.models.detection.transform import resize_boxes

    module = seg.module
    with torch.inference_mode():
        x = torch.from_numpy(scene).permute(2, 0, 1).float() / 255
        image_list, _ = module.transform([x])
        boxes, _ = module.rpn(image_list, module.backbone(image_list.tensors))
    expected = resize_boxes(boxes[0], image_list.image_sizes[0], scene.shape[:2]).numpy()
    assert len(explained.proposals) == len(expected) == module.rpn.post_nms_top_n()
    # same set of boxes (the RPN returns them by objectness too)
    np.testing.assert_allclose(explained.proposals.boxes, expected, atol=1e-3)


def test_box_branch_counts(explained: E.Explanation) -> None:
    b = explained.boxes
    assert b.proposals == len(explained.proposals)
    assert b.before_nms >= b.after_nms == len(explained.detections)
    assert b.before_nms > b.after_nms, "on this scene NMS removes duplicates"
    assert (b.before_scores > b.score_threshold).all()
    assert b.cross_class_iou == pytest.approx(0.7)  # the blocks model's second NMS
    np.testing.assert_allclose(b.after_boxes, explained.detections.boxes, atol=1e-3)


def test_raw_mask_has_the_heads_size(seg: Segmenter, explained: E.Explanation) -> None:
    m = explained.instance
    assert m is not None and m.index == 0
    pool = seg.module.roi_heads.mask_roi_pool.output_size
    assert m.size == (28, 28) == (2 * pool[0], 2 * pool[1])  # 14x14 RoIAlign, one 2x deconvolution
    assert m.probabilities.dtype == np.float32
    assert 0 <= m.probabilities.min() < 0.5 < m.probabilities.max() <= 1
    np.testing.assert_allclose(m.probabilities, 1 / (1 + np.exp(-m.logits)), rtol=1e-5, atol=1e-6)


def test_resized_mask_equals_the_segmenters_mask(seg: Segmenter, scene: np.ndarray) -> None:
    [plain] = seg([scene])
    for k in range(2):
        ex = E.explain(seg, scene, instance=k)
        m = ex.instance
        assert m is not None and m.index == k and m.matches_output
        assert np.array_equal(m.full_mask(ex.image_size), plain.full_mask(k))


def test_hooks_are_removed_and_leave_the_model_unchanged(seg: Segmenter, scene: np.ndarray) -> None:
    [before] = seg([scene])
    E.explain(seg, scene)
    module = seg.module
    assert "filter_proposals" not in vars(module.rpn)
    assert "postprocess_detections" not in vars(module.roi_heads)
    assert not module.transform._forward_pre_hooks and not module.rpn._forward_pre_hooks
    assert not module.roi_heads.mask_predictor._forward_hooks
    assert module.roi_heads.nms_thresh == 0.5 and module.roi_heads.detections_per_img == 100
    [after] = seg([scene])
    assert np.array_equal(before.scores, after.scores)
    assert all(np.array_equal(a, b) for a, b in zip(before.masks, after.masks))


def test_instance_out_of_range_is_one_clear_error(seg: Segmenter, scene: np.ndarray) -> None:
    from segcli.core.errors import SegcliError

    with pytest.raises(SegcliError, match=r"--instance 2: the image has 2 detection"):
        E.explain(seg, scene, instance=2)


def test_no_detection_still_explains(scene: np.ndarray) -> None:
    strict = Segmenter(
        "blocks", device="cpu", settings=Settings(min_size=96, max_size=128, score_threshold=1.0)
    )
    ex = E.explain(strict, scene)
    assert len(ex.detections) == 0 and ex.instance is None and ex.boxes.after_nms == 0
    record = E.explain_record(ex, image_path="x.png", model={}, settings={})
    assert record["instance"] is None and record["detections"] == []
    fig = E.explain_figure(scene, ex)
    assert fig.ndim == 3
    from segcli.core.errors import SegcliError

    with pytest.raises(SegcliError, match=r"--instance 0: the image has 0 detection\(s\)$"):
        E.explain(strict, scene, instance=0)


# --------------------------------------------------------------------------- explain: record and figure
def test_record_numbers_and_mask(explained: E.Explanation) -> None:
    record = json.loads(json.dumps(E.explain_record(explained, image_path="s.png", model={}, settings={})))
    assert record["schema"] == "segcli.explain/1"
    p, b, inst = record["proposals"], record["box_branch"], record["instance"]
    assert p["count"] == len(p["boxes"]) == len(p["objectness"]) <= p["top_n"]
    assert (b["before_nms"], b["after_nms"]) == (explained.boxes.before_nms, explained.boxes.after_nms)
    assert inst["mask_head"]["size"] == [28, 28]
    assert np.array(inst["mask_head"]["probabilities"]).shape == (28, 28)
    resized = rle_decode(inst["resized"]["mask"])
    assert np.array_equal(resized, rle_decode(record["detections"][inst["id"]]["mask"]))
    assert resized.sum() == inst["resized"]["area"] == record["detections"][inst["id"]]["area"]
    assert inst["resized"]["matches_output"] is True


def test_figure_panels_titles_and_layout(scene: np.ndarray, explained: E.Explanation) -> None:
    panels = E.explain_panels(scene, explained)
    titles = [t for t, _ in panels]
    b = explained.boxes
    assert len(panels) == 6 and [t[:2] for t in titles] == ["1.", "2.", "3.", "4.", "5.", "6."]
    assert f"top {len(explained.proposals)} proposals" in titles[1]
    assert f"{b.before_nms} -> {b.after_nms} boxes" in titles[2]
    assert "28x28" in titles[3]
    assert len({p.shape for _, p in panels}) == 1
    fig = E.explain_figure(scene, explained)
    ph, pw = panels[0][1].shape[:2]
    assert fig.shape[0] > 2 * ph and fig.shape[1] > 3 * pw  # 2 rows x 3 columns


def test_proposals_panel_draws_only_the_first_50() -> None:
    """80 disjoint proposals: the first 50 are drawn, the other 30 are not."""
    image = np.full((400, 400, 3), 255, dtype=np.uint8)
    boxes = np.array(
        [
            (10 + 36 * (i % 10), 10 + 30 * (i // 10), 30 + 36 * (i % 10), 30 + 30 * (i // 10))
            for i in range(80)
        ],
        dtype=np.float32,
    )
    p = E.Proposals(
        boxes=boxes,
        objectness=np.linspace(1, 0.2, 80, dtype=np.float32),
        top_n=80,
        pre_nms_top_n=80,
        nms_iou=0.7,
    )
    panel = E.proposals_panel(image, p, (1.0, 1.0))
    faded = panel[200, 200].copy()  # a pixel no box touches
    drawn = [bool((panel[int(y0), int(x0) : int(x1)] != faded).any()) for x0, y0, x1, _ in boxes]
    assert drawn == [True] * E.PROPOSALS_DRAWN + [False] * (80 - E.PROPOSALS_DRAWN)


def test_objectness_colours_run_from_blue_to_red() -> None:
    lo, hi = E.objectness_colors(np.array([0.0, 1.0]))
    assert lo[2] > lo[0] and hi[0] > hi[2]


# --------------------------------------------------------------------------- compare proposals: matching
H, W = 40, 60


def _inst(boxes: list[tuple[int, int, int, int]], scores: list[float], ids: list[int]) -> Instances:
    masks = []
    for x0, y0, x1, y1 in boxes:
        m = np.zeros((H, W), dtype=bool)
        m[y0:y1, x0:x1] = True
        masks.append(m)
    if not masks:
        return Instances.empty((H, W))
    names = ["bg", "cube", "sphere"]
    return Instances.from_full_masks(masks, scores=scores, class_ids=ids, class_names=[names[i] for i in ids])


def test_mask_iou_of_crops() -> None:
    a = _inst([(0, 0, 10, 10)], [0.9], [1])
    b = _inst([(5, 0, 15, 10), (30, 30, 40, 40)], [0.9, 0.8], [1, 1])
    np.testing.assert_allclose(CP.mask_iou(a, b), [[50 / 150, 0.0]])


def test_agreement_with_itself_is_one() -> None:
    ref = _inst([(0, 0, 10, 10), (2, 2, 12, 12), (30, 5, 50, 25)], [0.9, 0.8, 0.7], [1, 1, 2])
    a = CP.agreement(ref, ref)
    assert (a.matched, a.reference, a.share, a.mean_iou) == (3, 3, 1.0, 1.0)


def test_agreement_needs_same_class_and_iou_half() -> None:
    ref = _inst([(0, 0, 10, 10), (30, 5, 50, 25)], [0.9, 0.8], [1, 2])
    other = _inst([(0, 0, 10, 10), (30, 5, 50, 25)], [0.9, 0.8], [2, 2])  # first: wrong class
    a = CP.agreement(other, ref)
    assert (a.matched, a.share, a.mean_iou) == (1, 0.5, 1.0)
    shifted = _inst([(6, 0, 16, 10)], [0.9], [1])  # IoU 40/160 = 0.25
    assert CP.agreement(shifted, ref).matched == 0 and CP.agreement(shifted, ref).mean_iou is None
    assert CP.agreement(ref, _inst([], [], [])).share is None


def test_matching_is_greedy_by_score() -> None:
    # Reference A (IoU 1.0 with the low-scoring candidate, 0.6 with the high one) and B.
    ref = _inst([(0, 0, 10, 10), (0, 0, 10, 6)], [0.9, 0.8], [1, 1])
    cand = _inst([(0, 0, 10, 6), (0, 0, 10, 10)], [0.95, 0.5], [1, 1])
    pairs = CP.match(cand, ref)
    # the 0.95 candidate goes first and takes B (IoU 1.0); the 0.5 one then takes A
    assert sorted(pairs) == [(0, 1, 1.0), (1, 0, 1.0)]


def test_match_colors_follow_the_reference() -> None:
    from segcli.draw.annotators import instance_color

    ref = _inst([(0, 0, 10, 10), (30, 5, 50, 25)], [0.9, 0.8], [1, 2])
    run_inst = _inst([(30, 5, 50, 25), (15, 15, 25, 25), (0, 0, 10, 10)], [0.95, 0.9, 0.7], [2, 1, 1])
    run = CP.ProposalsRun(
        n=10, seconds=0.1, samples=(0.1,), instances=run_inst, agreement=CP.agreement(run_inst, ref)
    )
    # matched: run 0 -> ref 1, run 2 -> ref 0; run 1 is new and gets the next colour
    assert CP.match_colors(run, ref) == [instance_color(1), instance_color(2), instance_color(0)]


def test_parse_ns() -> None:
    from segcli.core.errors import SegcliError

    assert CP.parse_ns("1000, 10,300,100") == (10, 100, 300, 1000)
    for bad in ("", "10,,20", "ten", "0", "-5", "10,10", "200000"):
        with pytest.raises(SegcliError, match="--n"):
            CP.parse_ns(bad)


# --------------------------------------------------------------------------- compare proposals: runs
def test_compare_proposals_on_the_scene(seg: Segmenter, scene: np.ndarray) -> None:
    rpn = seg.module.rpn
    limits = dict(rpn._pre_nms_top_n), dict(rpn._post_nms_top_n)
    cmp = CP.compare_proposals(seg, scene, (1000, 10), repeats=1)
    assert [r.n for r in cmp.runs] == [10, 1000] and cmp.reference_n == 1000
    ref = cmp.runs[-1]
    assert ref.agreement.share == 1.0 and ref.agreement.mean_iou == pytest.approx(1.0)
    for run in cmp.runs:
        a = run.agreement
        assert 0.0 <= a.share <= 1.0 and 0.0 <= a.mean_iou <= 1.0 and run.seconds > 0
        assert a.matched <= min(len(run.instances), a.reference)
    assert (dict(rpn._pre_nms_top_n), dict(rpn._post_nms_top_n)) == limits, "RPN limits restored"
    # N = 10 through the shared segmenter equals a segmenter built for N = 10
    fresh = Segmenter("blocks", device="cpu", settings=Settings(min_size=96, max_size=128, proposals=10))
    [alone] = fresh([scene])
    assert np.array_equal(alone.scores, cmp.runs[0].instances.scores)
    assert all(np.array_equal(a, b) for a, b in zip(alone.masks, cmp.runs[0].instances.masks))


def test_compare_proposals_with_a_factory(scene: np.ndarray) -> None:
    made: list[int] = []

    def factory(n: int) -> Segmenter:
        made.append(n)
        return Segmenter("blocks", device="cpu", settings=Settings(min_size=96, max_size=128, proposals=n))

    cmp = CP.compare_proposals(factory, scene, (5, 50), repeats=1)
    assert sorted(made) == [5, 50]
    assert cmp.runs[-1].agreement.share == 1.0
    record = CP.proposals_record(cmp, image_path="s.png", model={}, settings={"proposals": 300})
    assert record["schema"] == "segcli.compare-proposals/1" and record["settings"]["proposals"] == [5, 50]
    assert [r["n"] for r in record["runs"]] == [5, 50]
    titles = [t for t, _ in CP.proposals_panels(scene, cmp)]
    assert titles[0].startswith("N = 5: ") and titles[0].endswith(f"{len(cmp.runs[0].instances)} detections")


# --------------------------------------------------------------------------- CLI
runner = CliRunner()


def test_cli_explain_end_to_end(tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = runner.invoke(app, ["explain", str(SCENE), "--instance", "1", "-o", str(out), *CLI_SMALL])
    assert result.exit_code == 0, result.output
    fig = cv2.imread(str(out / "two-red-cubes.png.explain.png"))
    assert fig is not None and fig.shape[1] > fig.shape[0]
    record = json.loads((out / "two-red-cubes.png.explain.json").read_text())
    assert record["schema"] == "segcli.explain/1" and record["figure"] == "two-red-cubes.png.explain.png"
    inst = record["instance"]
    assert inst["id"] == 1 and inst["mask_head"]["size"] == [28, 28]
    assert np.array_equal(rle_decode(inst["resized"]["mask"]), rle_decode(record["detections"][1]["mask"]))
    assert record["settings"]["min_size"] == 96


def test_cli_compare_proposals_end_to_end(tmp_path: Path) -> None:
    out = tmp_path / "out"
    args = ["compare", "proposals", str(SCENE), "--n", "10,100", "--repeats", "1", "-o", str(out)]
    result = runner.invoke(app, [*args, *CLI_SMALL[:-1]])
    assert result.exit_code == 0, result.output
    assert "agreement" in result.stdout and "figure:" in result.stdout
    assert cv2.imread(str(out / "two-red-cubes.png.proposals.png")) is not None
    record = json.loads((out / "two-red-cubes.png.proposals.json").read_text())
    assert [r["n"] for r in record["runs"]] == [10, 100] and record["reference_n"] == 100
    assert record["runs"][-1]["agreement"] == 1.0
    assert all(0 <= r["agreement"] <= 1 and r["seconds_per_image"] > 0 for r in record["runs"])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["compare", "proposals", str(SCENE), "--n", "10,x"], "--n '10,x': 'x' is not a whole number"),
        (
            ["compare", "proposals", str(SCENE), "--n", ""],
            "--n names no proposal count: give e.g. --n 10,100,300,1000",
        ),
        (["compare", "proposals", str(SCENE), "--repeats", "0"], "--repeats must be at least 1, got 0"),
        (
            ["compare", "proposals", str(SCENE), "--proposals", "50"],
            "compare proposals sets the proposal count itself: give the counts with --n",
        ),
        (["explain", str(SCENE), "--instance", "-1"], "--instance must be 0 or more, got -1"),
        (["explain", str(SCENE), "--score-threshold", "2"], "--score-threshold must be in [0, 1], got 2.0"),
    ],
)
def test_cli_usage_errors_exit_2_before_the_model_loads(
    args: list[str], message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*a: object, **k: object) -> None:
        raise AssertionError("the model must not load")

    monkeypatch.setattr(Segmenter, "__init__", refuse)
    result = runner.invoke(app, [*args, "-o", str(tmp_path / "o"), "--model", "blocks"])
    assert result.exit_code == 2, result.output
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert lines == [f"usage error: {message}"], result.stderr
    assert not (tmp_path / "o").exists()


def test_cli_escapes_markup_in_the_image_name(tmp_path: Path) -> None:
    odd = tmp_path / "[bold]cubes[red].png"
    odd.write_bytes(SCENE.read_bytes())
    result = runner.invoke(
        app,
        [
            "compare",
            "proposals",
            str(odd),
            "--n",
            "5",
            "--repeats",
            "1",
            "-o",
            str(tmp_path / "o"),
            *CLI_SMALL[:-1],
        ],
    )
    assert result.exit_code == 0, result.output
    assert "[bold]cubes[red].png: RPN proposals" in result.stdout  # the table title


# --------------------------------------------------------------------------- other architectures and inputs
def test_explain_coco_architecture_with_a_class_filter(coco_ckpt: Path) -> None:
    """torchvision's own RoIHeads (random weights): the class filter drops rows between the
    box branch and the mask head, and the followed mask still equals the output."""
    settings = Settings(
        min_size=96, max_size=128, score_threshold=0.0, max_detections=3, classes=("dog", "cat")
    )
    coco = Segmenter("coco", weights=coco_ckpt, device="cpu", settings=settings)
    image = read_image(REPO / "examples" / "photos" / "chelsea.jpg").pixels
    ex = E.explain(coco, image, instance=2)
    assert set(ex.detections.class_names) <= {"dog", "cat"} and len(ex.detections) == 3
    assert ex.boxes.after_nms > len(ex.detections)  # other classes left the box branch too
    assert ex.boxes.cross_class_iou is None
    m = ex.instance
    assert m is not None and m.size == (28, 28) and m.matches_output


# the random model finds nothing in the 400x6 strip (about 1 px wide at its input size)
@pytest.mark.parametrize(("shape", "followed"), [((6, 400), True), ((400, 6), False)])
def test_explain_padded_elongated_image(blocks_ckpt: Path, shape: tuple[int, int], followed: bool) -> None:
    """A 6x400 image is padded for the network; proposals stay inside the real image, and the
    followed mask, where there is one, is still the output's."""
    from tests.conftest import random_image

    settings = Settings(min_size=64, max_size=96, score_threshold=0.0, max_detections=5)
    rnd = Segmenter("blocks", weights=blocks_ckpt, device="cpu", settings=settings)
    image = random_image(*shape)
    ex = E.explain(rnd, image)
    h, w = ex.image_size
    assert (h, w) == shape
    assert (ex.proposals.boxes[:, 1::2] <= h).all() and (ex.proposals.boxes[:, 0::2] <= w).all()
    assert (ex.instance is not None) == followed == (len(ex.detections) > 0)
    assert ex.instance is None or ex.instance.matches_output
    panels = E.explain_panels(image, ex)
    assert len({p.shape for _, p in panels}) == 1 and min(panels[0][1].shape[:2]) >= MIN_CANVAS
