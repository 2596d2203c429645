"""`segcli predict`, `demo` and help through the CLI.

The model's own behaviour (outputs, class filter, unknown classes) runs a small randomly
initialised blocks model; what only depends on reading and writing runs on a FakeSegmenter.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from segcli.cli import app
from segcli.core.masks import rle_decode
from segcli.core.settings import Settings
from segcli.draw.annotators import instance_color
from tests.conftest import PHOTOS
from tests.fakes import FakeSegmenter, use_fake_in_cli

runner = CliRunner()
FAST = [
    "--model",
    "blocks",
    "--device",
    "cpu",
    "--min-size",
    "96",
    "--max-size",
    "128",
    "--score-threshold",
    "0",
    "--max-detections",
    "6",
]


def _invoke(args: list[str]) -> object:
    return runner.invoke(app, args, catch_exceptions=False)


def test_predict_writes_every_output(tmp_path: Path, blocks_ckpt: Path, photo_dir: Path) -> None:
    out = tmp_path / "out"
    photo = photo_dir / "chelsea.jpg"
    result = _invoke(
        [
            "predict",
            str(photo),
            "--weights",
            str(blocks_ckpt),
            "-o",
            str(out),
            "--save",
            "overlay,json,masks,idmap",
            *FAST,
        ]
    )
    assert result.exit_code == 0, result.output
    record = json.loads((out / "chelsea.jpg.json").read_text())
    assert record["schema"] == "segcli.instances/1"
    assert record["image"] == {"path": str(photo), "width": 451, "height": 300}
    assert record["model"]["name"] == "blocks" and len(record["model"]["sha256"]) == 64
    settings = record["settings"]
    assert settings["score_threshold"] == 0 and settings["proposals"] == 300
    assert settings["max_detections"] == 6 and settings["min_size"] == 96
    assert set(settings) >= {"nms_iou", "mask_threshold", "classes", "max_size"}
    insts = record["instances"]
    assert 1 <= len(insts) <= 6
    idmap = cv2.imread(str(out / "chelsea.jpg.idmap.png"), cv2.IMREAD_UNCHANGED)
    assert idmap.dtype == np.uint16 and idmap.shape == (300, 451)
    overlay = cv2.imread(str(out / "chelsea.jpg.overlay.jpg"))
    assert overlay.shape == (300, 451, 3)
    original = cv2.imread(str(photo))
    assert np.abs(overlay.astype(int) - original.astype(int)).mean() > 1  # something was drawn
    for inst in insts:
        assert set(inst) >= {"id", "category_id", "label", "score", "box", "area", "mask"}
        assert inst["label"] in ("cube", "sphere", "cylinder")
        mask = rle_decode(inst["mask"])
        assert mask.shape == (300, 451) and mask.sum() == inst["area"]
        name = f"{inst['id']:03d}-{inst['label']}.png"  # the class in the name: 000-cube.png
        png = cv2.imread(str(out / "chelsea.jpg.masks" / name), cv2.IMREAD_GRAYSCALE)
        assert np.array_equal(png > 0, mask)
        # In the id map, an instance owns its pixels unless a higher-scoring one covers them.
        assert ((idmap == inst["id"] + 1) <= mask).all()
    assert len(list((out / "chelsea.jpg.masks").iterdir())) == len(insts)
    # the colour preview beside the 16-bit map: each instance in its colour, background black
    preview = cv2.cvtColor(cv2.imread(str(out / "chelsea.jpg.idmap.preview.png")), cv2.COLOR_BGR2RGB)
    assert preview.shape == (300, 451, 3) and (preview[idmap == 0] == 0).all()
    for k in np.unique(idmap[idmap > 0]):
        assert (preview[idmap == k] == instance_color(int(k) - 1)).all()
    scores = [i["score"] for i in insts]
    assert scores == sorted(scores, reverse=True)


def test_predict_json_to_stdout_is_pure_json(
    tmp_path: Path, photo_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_fake_in_cli(monkeypatch)
    result = runner.invoke(
        app,
        [
            "predict",
            str(photo_dir / "coffee.jpg"),
            str(photo_dir / "chelsea.jpg"),
            "--json",
            "-",
            "-o",
            str(tmp_path / "o"),
            *FAST,
        ],
    )
    assert result.exit_code == 0
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["image"]["width"] for r in records] == [600, 451], "one JSON line per image, in order"
    assert not (tmp_path / "o").exists(), "--json - alone writes no files"


def test_predict_missing_path_is_usage_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope.jpg"
    result = runner.invoke(app, ["predict", str(missing)], env={"COLUMNS": "300"})  # the path on one line
    assert result.exit_code == 2
    text = " ".join(result.stderr.replace("│", " ").split())  # Typer's error panel, without its borders
    assert f"Invalid value for 'IMAGES...': path '{missing}' does not exist." in text, result.stderr


def test_predict_unreadable_image_one_line_exit_1(
    tmp_path: Path, photo_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_fake_in_cli(monkeypatch)
    bad = tmp_path / "bad.jpg"
    bad.write_text("not an image")
    result = runner.invoke(
        app,
        [
            "predict",
            str(bad),
            str(photo_dir / "coffee.jpg"),
            "-o",
            str(tmp_path / "o"),
            *FAST,
        ],
    )
    assert result.exit_code == 1
    lines = [ln for ln in result.stderr.splitlines() if "bad.jpg" in ln]
    assert len(lines) == 1 and "Traceback" not in result.output
    assert (tmp_path / "o" / "coffee.jpg.json").is_file(), "the good image is still done"


def test_unknown_class_lists_valid_ones(tmp_path: Path, blocks_ckpt: Path, photo_dir: Path) -> None:
    result = runner.invoke(
        app,
        [
            "predict",
            str(photo_dir / "coffee.jpg"),
            "--weights",
            str(blocks_ckpt),
            "--classes",
            "cube,dragon",
            *FAST,
        ],
    )
    assert result.exit_code == 2  # a usage error
    assert "dragon" in result.stderr and "cube, sphere, cylinder" in result.stderr


def test_class_filter_keeps_only_named_classes(tmp_path: Path, blocks_ckpt: Path, photo_dir: Path) -> None:
    out = tmp_path / "o"
    result = _invoke(
        [
            "predict",
            str(photo_dir / "astronaut.jpg"),
            "--weights",
            str(blocks_ckpt),
            "--classes",
            "sphere",
            "-o",
            str(out),
            *FAST,
        ]
    )
    assert result.exit_code == 0
    record = json.loads((out / "astronaut.jpg.json").read_text())
    assert record["settings"]["classes"] == ["sphere"]
    assert record["instances"], "the filter kept something to check"  # (unfiltered: cubes too)
    assert {i["label"] for i in record["instances"]} <= {"sphere"}


@pytest.mark.parametrize(
    ("args", "pattern", "code"),
    [
        (["--score-threshold", "1.5"], "must be in [0, 1]", 2),
        (["--device", "cuda:7"], "cuda", 1),  # a valid name, absent on this machine
        (["--device", "tpu"], "unknown device 'tpu'", 2),
        (["--save", "overlay,pdf"], "unknown output 'pdf'", 2),
        (["--min-size", "900", "--max-size", "100"], "must not exceed", 2),
    ],
)
def test_bad_options_are_one_line_errors(
    tmp_path: Path, blocks_ckpt: Path, photo_dir: Path, args: list[str], pattern: str, code: int
) -> None:
    result = runner.invoke(
        app,
        [
            "predict",
            str(photo_dir / "coffee.jpg"),
            "--weights",
            str(blocks_ckpt),
            "-o",
            str(tmp_path / "o"),
            "--model",
            "blocks",
            *args,
        ],
    )
    assert result.exit_code == code
    [line] = result.stderr.splitlines()
    assert line.startswith("usage error: " if code == 2 else "error: ") and pattern in line


def test_offline_coco_error_through_cli(tmp_path: Path, photo_dir: Path) -> None:
    result = runner.invoke(app, ["predict", str(photo_dir / "coffee.jpg"), "-o", str(tmp_path / "o")])
    assert result.exit_code == 1
    text = " ".join(result.stderr.split())
    assert "maskrcnn_resnet50_fpn_coco-bf2d0c1e.pth" in text and "--weights PATH" in text
    assert "https://download.pytorch.org/models/maskrcnn_resnet50_fpn_coco-bf2d0c1e.pth" in text
    assert "Traceback" not in result.output


def test_exif_rotated_photo_sizes_match_viewer(
    tmp_path: Path, photo_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_fake_in_cli(monkeypatch)
    src = Image.open(photo_dir / "coffee.jpg")
    exif = Image.Exif()
    exif[0x0112] = 6  # viewer rotates 90 degrees clockwise: 600x400 shows as 400x600
    rotated = tmp_path / "rotated.jpg"
    src.save(rotated, exif=exif)
    out = tmp_path / "o"
    assert (
        _invoke(
            [
                "predict",
                str(rotated),
                "-o",
                str(out),
                "--save",
                "json,overlay,idmap",
                *FAST,
            ]
        ).exit_code
        == 0
    )
    record = json.loads((out / "rotated.jpg.json").read_text())
    assert (record["image"]["width"], record["image"]["height"]) == (400, 600)
    for inst in record["instances"]:
        assert inst["mask"]["size"] == [600, 400]
    assert cv2.imread(str(out / "rotated.jpg.overlay.jpg")).shape[:2] == (600, 400)


@pytest.mark.parametrize(
    ("argv", "shows"),
    [
        (["--help"], ["predict", "batch", "compare"]),
        (["classes", "--model", "coco"], ["1  person", "90  toothbrush"]),
        (["classes", "--model", "blocks"], ["1  cube", "3  cylinder"]),
        (["models"], ["maskrcnn_resnet50_fpn_coco-bf2d0c1e.pth", "bundled"]),
        (["predict", "--help"], ["--score-threshold"]),
    ],
)
def test_commands_that_need_no_model_import_no_torch(argv: list[str], shows: list[str]) -> None:
    import subprocess
    import sys

    code = (
        f"import sys\nsys.argv = ['segcli', *{argv!r}]\nfrom segcli.cli import main\n"
        "try:\n    main()\n    status = 0\nexcept SystemExit as stop:\n    status = stop.code or 0\n"
        "print(status, 'torch' in sys.modules, 'cv2' in sys.modules)"
    )
    env = {**os.environ, "COLUMNS": "200"}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    assert result.stdout.strip().splitlines()[-1] == "0 False False", result.stdout + result.stderr
    for text in shows:
        assert text in result.stdout


def test_model_option_help_names_each_models_defaults() -> None:
    from segcli.models.registry import MODELS

    result = runner.invoke(app, ["batch", "--help"], terminal_width=200)
    assert result.exit_code == 0
    text = " ".join(result.stdout.replace("│", " ").split())  # help panels: no borders in the text
    blocks, coco = MODELS["blocks"].defaults, MODELS["coco"].defaults
    assert f"Model input short side [{coco.min_size} for coco, coco-v2; {blocks.min_size} for blocks]" in text
    assert f"Drop detections below this score [{coco.score_threshold}]" in text
    placeholders = ["models", *(f.name for f in dataclasses.fields(Settings))]
    assert not [p for p in placeholders if f"{{{p}}}" in text], "every placeholder is filled"
    for command in (["predict"], ["compare", "semantic-vs-instance"]):
        shown = runner.invoke(app, [*command, "--help"])
        assert shown.exit_code == 0 and "--max-detections" in shown.stdout, shown.output


def test_bad_option_fails_before_any_model_loads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    loaded = use_fake_in_cli(monkeypatch)
    image = tmp_path / "x.png"
    image.write_bytes(b"never read")
    for command in (["predict", str(image)], ["batch", str(tmp_path)]):
        result = runner.invoke(app, [*command, "-o", str(tmp_path / "o"), "--mask-threshold", "7"])
        assert result.exit_code == 2 and "--mask-threshold must be in [0, 1], got 7.0" in result.stderr
    assert loaded == [] and not (tmp_path / "o").exists()


def test_demo_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``segcli demo`` end to end (generated scenes, predict, batch, compare) on a fake model."""
    from segcli.runs.engines.base import SegmenterSpec

    specs: list[SegmenterSpec] = []

    def build(self: SegmenterSpec, *, progress: bool = False) -> FakeSegmenter:
        specs.append(self)
        return FakeSegmenter()

    monkeypatch.setattr(SegmenterSpec, "build", build)
    out = tmp_path / "demo"
    result = runner.invoke(app, ["demo", "-o", str(out), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert [(s.model, s.device) for s in specs] == [("blocks", "cpu")]
    assert f"segcli demo wrote everything under {out}/" in result.stdout
    assert "(5 images, 10 instances; run.json, coco.json)" in result.stdout
    run = json.loads((out / "batch" / "run.json").read_text())
    assert run["status"] == "complete" and run["counts"]["done"] == 5
    assert (out / "compare" / "two-red-cubes.png.compare.png").is_file()
    assert (out / "predict" / "two-red-cubes.png.masks").is_dir()


def test_the_cli_maps_library_fields_to_its_options_in_one_place() -> None:
    """The library names its fields (``weights=PATH``); the CLI says its options instead."""
    from segcli.cli.console import cli_message

    assert cli_message("not cached; pass weights=PATH to a local checkpoint") == (
        "not cached; pass --weights PATH to a local checkpoint"
    )
    assert cli_message("or pass semantic_weights=PATH") == "or pass --semantic-weights PATH"
    assert cli_message("half=True is precision fp16; it conflicts with precision bf16") == (
        "--half is precision fp16; it conflicts with precision bf16"
    )
    for untouched in ("a file named weights=PATHS.pt", "myweights=PATH", "weights=path", "half=False"):
        assert cli_message(untouched) == untouched


@pytest.mark.parametrize(
    ("command", "option", "said"),
    [
        ("predict", "--imgsz", "segcli's input size is --min-size (short side) and --max-size"),
        ("predict", "--img-size", "segcli's input size is --min-size (short side) and --max-size"),
        ("predict", "--conf_thres", "segcli's is --score-threshold (-c)"),
        ("predict", "--confidence-threshold", "segcli's is --score-threshold (-c)"),
        ("batch", "--iou", "segcli's is --nms-iou"),
        ("batch", "--source", "segcli takes its inputs as arguments"),
        ("predict", "--save-txt", "segcli's is --save yolo"),
        ("eval", "--weights-path", "segcli's is --weights PATH"),
        ("predict", "--max_det", "segcli's is --max-detections"),
        ("batch", "--project", "segcli writes into -o/--output FOLDER"),
        ("predict", "--pred-score-thr", "segcli's is --score-threshold (-c)"),
    ],
)
def test_options_from_other_tools_are_named_in_segclis_words(command: str, option: str, said: str) -> None:
    result = runner.invoke(app, [command, str(PHOTOS / "coffee.jpg"), option, "1"], terminal_width=300)
    assert result.exit_code == 2
    line = " ".join(result.stderr.replace("│", " ").split())
    assert f"No such option: {option}; {said}" in line, line
    assert "Did you mean" not in line


def test_a_mistyped_segcli_option_still_gets_a_guess() -> None:
    result = runner.invoke(app, ["predict", str(PHOTOS / "coffee.jpg"), "--scor", "1"], terminal_width=300)
    assert result.exit_code == 2
    assert "No such option: --scor. Did you mean --score-threshold?" in result.stderr


def test_a_second_predict_says_what_it_replaces_and_numbered_keeps_each_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_fake_in_cli(monkeypatch)
    out = tmp_path / "segcli-out"
    args = ["predict", str(PHOTOS / "coffee.jpg"), str(PHOTOS / "rocket.jpg"), "-o", str(out), *FAST]
    first = runner.invoke(app, args)
    assert first.exit_code == 0 and "replacing" not in first.stderr
    second = runner.invoke(app, args)
    assert second.exit_code == 0
    assert (
        f"replacing the earlier results of 2 input(s) in {out} (--numbered keeps each run)" in second.stderr
    )
    kept = [runner.invoke(app, [*args, "--numbered"]) for _ in range(2)]
    assert [r.exit_code for r in kept] == [0, 0]
    assert f"writing into {out}-2" in kept[0].stderr and f"writing into {out}-3" in kept[1].stderr
    assert (out / "coffee.jpg.json").is_file() and (tmp_path / "segcli-out-3" / "rocket.jpg.json").is_file()
    quiet = runner.invoke(app, [*args, "-q"])
    assert quiet.exit_code == 0 and quiet.stderr == ""


def test_numbered_folders_are_never_shared_by_runs_started_at_once(tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from segcli.outputs.plans import numbered_folder

    (tmp_path / "run").mkdir()
    (tmp_path / "run-3").mkdir()  # an existing (empty) folder is never taken
    with ThreadPoolExecutor(8) as pool:
        got = list(pool.map(lambda _: numbered_folder(tmp_path / "run"), range(16)))
    assert len(set(got)) == 16 and tmp_path / "run-3" not in got and tmp_path / "run" not in got
    assert sorted(int(p.name.split("-")[1]) for p in got) == [2, *range(4, 19)]


def test_reflow_joins_a_paragraphs_lines_and_keeps_lists_and_paragraphs() -> None:
    from segcli.cli.options import reflow

    assert (
        reflow("Short.\n\nA long\nparagraph (see\n--save) here.")
        == "Short.\n\nA long paragraph (see --save) here."
    )
    assert reflow("Lead.\n\n- one\n- two") == "Lead.\n\n- one\n- two"
    assert reflow("    Indented\n    docstring\n\n    second") == "Indented docstring\n\nsecond"
    assert reflow(None) is None and reflow("") == ""


HELP_COMMANDS = [
    [],
    ["predict"],
    ["batch"],
    ["eval"],
    ["models"],
    ["classes"],
    ["demo"],
    ["compare"],
    ["compare", "semantic-vs-instance"],
    ["compare", "proposals"],
    ["explain"],
]


@pytest.mark.parametrize("command", HELP_COMMANDS, ids=lambda c: " ".join(c) or "segcli")
def test_help_fits_80_columns_and_wraps_at_the_terminals_width(command: list[str]) -> None:
    narrow = runner.invoke(app, [*command, "--help"], terminal_width=80, env={"COLUMNS": "80"})
    assert narrow.exit_code == 0
    assert max(len(line) for line in narrow.stdout.splitlines()) <= 80
    assert "<bool>" not in narrow.stdout
    wide = runner.invoke(app, [*command, "--help"], terminal_width=160, env={"COLUMNS": "160"})
    assert wide.exit_code == 0, wide.output
    lines = [line.strip() for line in wide.stdout.splitlines()]
    # the description's paragraphs run to the width: no line ends where the source had a break
    described = [line for line in lines[3:8] if line and not line.startswith(("╭", "│", "Usage"))]
    assert described, wide.stdout  # a description was found to check
    assert all(len(line) > 80 or not line.endswith((",", "(see", "the")) for line in described), described


def test_predict_help_paragraph_is_one_line_when_wide_enough() -> None:
    wide = runner.invoke(app, ["predict", "--help"], terminal_width=160, env={"COLUMNS": "160"})
    assert wide.exit_code == 0, wide.output
    assert "per image into the output folder (see --save); a video gets" in wide.stdout


def test_compare_proposals_help_hides_the_option_it_refuses() -> None:
    shown = runner.invoke(app, ["compare", "proposals", "--help"], env={"COLUMNS": "120"})
    assert shown.exit_code == 0, shown.output
    help_text = shown.stdout
    assert "--proposals" not in help_text and "--n" in help_text
    refused = runner.invoke(app, ["compare", "proposals", str(PHOTOS / "coffee.jpg"), "--proposals", "5"])
    assert refused.exit_code == 2
    assert "compare proposals sets the proposal count itself: give the counts with --n" in refused.stderr


def test_quiet_means_errors_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """-q: nothing on stdout or stderr for a clean run (no lines, table or file list); a failure
    still gets its line on stderr, and the exit code says so."""
    use_fake_in_cli(monkeypatch)
    photos = [str(PHOTOS / "coffee.jpg"), str(PHOTOS / "rocket.jpg")]
    clean = [
        runner.invoke(app, ["predict", *photos, "-o", str(tmp_path / "p"), "-q", *FAST]),
        runner.invoke(app, ["batch", str(PHOTOS), "-o", str(tmp_path / "b"), "-q", *FAST]),
        runner.invoke(app, ["batch", str(PHOTOS), "-o", str(tmp_path / "b"), "--quiet", *FAST]),  # resumed
    ]
    for result in clean:
        assert (result.exit_code, result.stdout, result.stderr) == (0, "", "")
    assert (tmp_path / "b" / "run.json").is_file() and (tmp_path / "p" / "coffee.jpg.json").is_file()
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "broken.png").write_bytes(b"not a png")
    (bad / "ok.jpg").write_bytes((PHOTOS / "coffee.jpg").read_bytes())
    failing = runner.invoke(app, ["batch", str(bad), "-o", str(tmp_path / "f"), "-q", *FAST])
    assert failing.exit_code == 1 and failing.stdout == ""
    assert failing.stderr.startswith("failed: ") and "broken.png" in failing.stderr
    assert len(failing.stderr.splitlines()) == 1


@pytest.mark.parametrize(
    ("counts", "rates", "header", "row"),
    [
        (
            {"done": 3, "skipped": 0, "failed": 1, "instances": 9, "images": 1, "videos": 2, "frames": 20},
            {"images_per_second": 0.5, "frames_per_second": 10.0},
            "done skipped failed instances videos frames time img/s frames/s",
            "3 0 1 9 2 20 2.0 s 0.50 10.00",
        ),
        (
            {"done": 4, "skipped": 2, "failed": 0, "instances": 7, "images": 4, "videos": 0, "frames": 0},
            {"images_per_second": 2.0, "frames_per_second": None},
            "done skipped failed instances time img/s",
            "4 2 0 7 2.0 s 2.00",
        ),
        (
            {"done": 1, "skipped": 0, "failed": 0, "instances": 0, "images": 0, "videos": 1, "frames": 5},
            {"images_per_second": None, "frames_per_second": 2.5},
            "done skipped failed instances videos frames time img/s frames/s",
            "1 0 0 0 1 5 2.0 s - 2.50",
        ),
    ],
)
def test_batch_summary_counts_images_and_frames_apart(
    counts: dict[str, int], rates: dict[str, float | None], header: str, row: str, tmp_path: Path
) -> None:
    from rich.console import Console

    import segcli.cli.tables as tables

    console = Console(width=80, record=True, file=open(os.devnull, "w"))  # noqa: SIM115
    summary = {"status": "complete", "counts": counts, "seconds": 2.0, "save": [], **rates}
    real = tables.out_console
    tables.out_console = lambda: console  # type: ignore[assignment]
    try:
        tables._print_summary(summary, tmp_path, None)
    finally:
        tables.out_console = real  # type: ignore[assignment]
    text = console.export_text()
    lines = [" ".join(line.split()) for line in text.splitlines()]
    assert header in lines and row in lines
    assert max(len(line) for line in text.splitlines()) <= 80
