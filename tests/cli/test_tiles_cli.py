"""Sliced inference through the Segmenter and the CLI: options, JSON, overlay grid, resume,
large-image reading. Model runs use a small randomly initialised blocks model at 64-96 px."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image
from typer.testing import CliRunner

from segcli.cli import app
from segcli.cli.common import _max_pixels
from segcli.cli.options import ModelOptions, TileCliOptions
from segcli.core.errors import SegcliError, UsageError
from segcli.core.settings import (
    DEFAULT_MAX_PIXELS,
    TILED_MAX_PIXELS,
    Settings,
    TileSettings,
    parse_tile,
)
from segcli.draw.grid import draw_tile_grid
from segcli.inference.segmenter import Segmenter
from segcli.inference.tiles import TiledInstances, tile_grid
from segcli.io.images import read_image
from segcli.io.large import read_image_mapped
from tests.conftest import BATCH_FAST, random_image
from tests.fakes import use_fake_in_cli
from tests.runs.test_video import write_clip

runner = CliRunner()
FAST = BATCH_FAST  # blocks at 64-96 px, score 0, 4 detections a tile


def _png(path: Path, h: int, w: int, seed: int = 0) -> Path:
    Image.fromarray(random_image(h, w, seed)).save(path)
    return path


@pytest.fixture()
def no_model(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any model load fails the test: usage errors must come first."""
    import segcli.cli.runtime

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a model was loaded")

    monkeypatch.setattr(segcli.cli.runtime, "DEFAULT", segcli.cli.runtime.Runtime(load_segmenter=refuse))


# --------------------------------------------------------------------------- usage errors
BAD = [
    (["--tile", "nan"], "--tile takes a size"),
    (["--tile", "inf"], "--tile takes a size"),
    (["--tile", "1e30"], "--tile takes a size"),
    (["--tile", "-384"], "--tile takes a size"),
    (["--tile", "0"], "--tile takes a size"),
    (["--tile", "8"], "--tile takes a size"),
    (["--tile", "99999999999999999999"], "--tile takes a size"),
    (["--tile", "big"], "--tile takes a size"),
    (["--tile", "384", "--tile-overlap", "nan"], "--tile-overlap must be in"),
    (["--tile", "384", "--tile-overlap", "inf"], "--tile-overlap must be in"),
    (["--tile", "384", "--tile-overlap", "-0.1"], "--tile-overlap must be in"),
    (["--tile", "384", "--tile-overlap", "1e308"], "--tile-overlap must be in"),
    (["--tile", "384", "--tile-overlap", "0.95"], "--tile-overlap must be in"),
    (["--tile", "384", "--tile-match-threshold", "nan"], "--tile-match-threshold must be in"),
    (["--tile", "384", "--tile-match-threshold", "0"], "--tile-match-threshold must be in"),
    (["--tile", "384", "--tile-merge", "wbf"], "--tile-merge must be one of"),
    (["--tile", "384", "--tile-match", "dice"], "--tile-match must be one of"),
    (["--tile-overlap", "0.3"], "--tile-overlap needs --tile"),
    (["--no-tile-full"], "--tile-full needs --tile"),
]


@pytest.mark.parametrize(("args", "message"), BAD)
@pytest.mark.parametrize("command", ["predict", "batch", "eval"])
def test_bad_tile_options_are_one_line_usage_errors(
    tmp_path: Path, no_model: None, command: str, args: list[str], message: str
) -> None:
    image = _png(tmp_path / "a.png", 20, 20)
    target = {"predict": [str(image)], "batch": [str(tmp_path)], "eval": [str(tmp_path / "gt.json")]}
    (tmp_path / "gt.json").write_text('{"images": [], "annotations": [], "categories": []}')
    result = runner.invoke(app, [command, *target[command], "-o", str(tmp_path / "out"), *FAST, *args])
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr
    assert not (tmp_path / "out").exists()


def test_eval_with_predictions_takes_no_tile(tmp_path: Path, no_model: None) -> None:
    (tmp_path / "gt.json").write_text('{"images": [], "annotations": [], "categories": []}')
    (tmp_path / "p.json").write_text("[]")
    args = ["eval", str(tmp_path / "gt.json"), "--predictions", str(tmp_path / "p.json"), "--tile", "384"]
    result = runner.invoke(app, args)
    assert result.exit_code == 2 and "--tile: no model runs with --predictions" in result.stderr


def test_tile_settings_validate_and_record() -> None:
    assert parse_tile("auto") is None and parse_tile(" 512 ") == 512
    for bad in ("nan", "1.5", "", "31", "100001"):
        with pytest.raises(UsageError):
            parse_tile(bad)
    for kwargs in (
        {"size": True},
        {"size": 2.5},
        {"overlap": float("nan")},
        {"match_threshold": float("inf")},
    ):
        with pytest.raises(UsageError):
            TileSettings(**kwargs)  # type: ignore[arg-type]
    assert "tile" not in Settings().to_dict()  # untiled records are as before --tile
    recorded = Settings(tile=TileSettings(size=384)).to_dict()["tile"]
    assert recorded == {
        "size": 384,
        "overlap": 0.2,
        "full": True,
        "merge": "nmm",
        "match": "shared",
        "match_threshold": 0.5,
        "class_agnostic": True,
    }


def test_max_pixels_default_rises_with_tile_only() -> None:
    plain = ModelOptions()
    tiled = TileCliOptions(tile="384").apply(plain, batch_size=3)
    assert _max_pixels(None, plain) == DEFAULT_MAX_PIXELS
    assert _max_pixels(None, tiled) == TILED_MAX_PIXELS
    assert _max_pixels(1234, tiled) == 1234
    spec = tiled.spec()  # what a Ray actor builds its segmenter from
    assert spec.settings.tile == TileSettings(size=384) and spec.tile_batch_size == 3
    assert pickle.loads(pickle.dumps(spec)) == spec


# --------------------------------------------------------------------------- the Segmenter
@pytest.fixture(scope="module")
def tiny_settings() -> Settings:
    return Settings(min_size=64, max_size=96, score_threshold=0.0, max_detections=4)


def _segmenter(ckpt: Path, settings: Settings, **tile: object) -> Segmenter:
    import dataclasses

    tiled = dataclasses.replace(settings, tile=TileSettings(**tile)) if tile else settings  # type: ignore[arg-type]
    return Segmenter("blocks", weights=ckpt, device="cpu", settings=tiled, progress=False)


def test_one_tile_image_equals_no_tiling(blocks_ckpt: Path, tiny_settings: Settings) -> None:
    image = random_image(60, 80, seed=3)
    whole = _segmenter(blocks_ckpt, tiny_settings)(image)
    tiled = _segmenter(blocks_ckpt, tiny_settings, size=96)(image)
    assert isinstance(tiled, TiledInstances) and tiled.tiling["tiles"] == 1
    assert len(whole) == len(tiled) > 0
    np.testing.assert_array_equal(whole.scores, tiled.scores)
    np.testing.assert_array_equal(whole.boxes, tiled.boxes)
    np.testing.assert_array_equal(whole.mask_boxes, tiled.mask_boxes)
    for a, b in zip(whole.masks, tiled.masks):
        np.testing.assert_array_equal(a, b)


def test_tiles_merge_and_max_detections_apply_after(blocks_ckpt: Path, tiny_settings: Settings) -> None:
    seg = _segmenter(blocks_ckpt, tiny_settings, size=None, overlap=0.25)
    assert seg.settings.tile is not None and seg.settings.tile.size == 64  # auto: the model's min size
    image = random_image(150, 230, seed=4)
    inst = seg(image)
    grid = tile_grid((150, 230), 64, 0.25)
    assert inst.tiling["tiles"] == len(grid) and inst.tiling["grid"] == grid.to_dict()
    assert inst.tiling["detections_before_merge"] > 4 >= len(inst)  # capped after merging
    assert inst.image_size == (150, 230)
    assert set(inst.tiling["seconds"]) == {"tiles_read", "tiles_model", "full_image", "merge"}


@pytest.mark.parametrize("size", [(1, 6000), (6000, 2), (3, 3), (1, 1)])
def test_thin_and_tiny_images_tile(blocks_ckpt: Path, tiny_settings: Settings, size: tuple[int, int]) -> None:
    seg = _segmenter(blocks_ckpt, tiny_settings, size=384)
    inst = seg(random_image(*size, seed=5))
    assert inst.image_size == size and len(inst) <= 4
    assert inst.tiling["tiles"] == len(tile_grid(size, 384, 0.2))


def test_tile_batch_size_changes_nothing_on_cpu(blocks_ckpt: Path, tiny_settings: Settings) -> None:
    image = random_image(100, 140, seed=6)
    one = _segmenter(blocks_ckpt, tiny_settings, size=64)(image)
    seg = Segmenter(
        "blocks",
        weights=blocks_ckpt,
        device="cpu",
        settings=Settings(**{**tiny_settings.__dict__, "tile": TileSettings(size=64)}),
        progress=False,
        tile_batch_size=5,
    )
    many = seg(image)
    np.testing.assert_array_equal(one.scores, many.scores)
    np.testing.assert_array_equal(one.mask_boxes, many.mask_boxes)
    with pytest.raises(SegcliError, match="tile batch size"):
        Segmenter("blocks", weights=blocks_ckpt, device="cpu", progress=False, tile_batch_size=0)


# --------------------------------------------------------------------------- the CLI
def test_predict_records_tiling_and_draws_the_grid_with_debug(tmp_path: Path, blocks_ckpt: Path) -> None:
    image = _png(tmp_path / "big.png", 150, 230, seed=7)
    args = [
        "predict",
        str(image),
        "--weights",
        str(blocks_ckpt),
        *FAST,
        "--tile",
        "64",
        "--save",
        "overlay,json",
    ]
    plain = runner.invoke(app, [*args, "-o", str(tmp_path / "plain")])
    debug = runner.invoke(app, ["--debug", *args, "-o", str(tmp_path / "debug")])
    assert plain.exit_code == 0 and debug.exit_code == 0, plain.output + debug.output
    record = json.loads((tmp_path / "plain" / "big.png.json").read_text())
    assert record["settings"]["tile"]["size"] == 64
    assert record["tiling"]["tiles"] == len(tile_grid((150, 230), 64, 0.2))
    assert len(record["instances"]) <= 4
    a = np.asarray(Image.open(tmp_path / "plain" / "big.png.overlay.png"))
    b = np.asarray(Image.open(tmp_path / "debug" / "big.png.overlay.png"))
    differ = np.any(a != b, axis=2)
    x = record["tiling"]["grid"]["columns"][1]
    assert differ[:, x].mean() > 0.5  # a tile's left edge is drawn
    assert not differ[70:80, 20:30].any()  # inside a tile nothing changes


def test_draw_tile_grid_stays_on_the_canvas() -> None:
    canvas = np.zeros((50, 70, 3), np.uint8)
    grid = tile_grid((50, 70), 32, 0.2).to_dict()
    draw_tile_grid(canvas, grid)
    assert canvas[0, :].any() and canvas[:, 0].any() and canvas[49, :].any() and canvas[:, 69].any()


def test_tile_larger_than_the_image_and_thin_png(tmp_path: Path, blocks_ckpt: Path) -> None:
    _png(tmp_path / "small.png", 40, 50)
    _png(tmp_path / "thin.png", 1, 3000)
    for name in ("small.png", "thin.png"):
        args = ["predict", str(tmp_path / name), "--weights", str(blocks_ckpt), *FAST, "--tile", "100000"]
        result = runner.invoke(app, [*args, "-o", str(tmp_path / "o"), "--save", "json"])
        assert result.exit_code == 0, result.output
        assert json.loads((tmp_path / "o" / f"{name}.json").read_text())["tiling"]["tiles"] == 1


def test_max_pixels_still_refuses_with_tile(tmp_path: Path, blocks_ckpt: Path) -> None:
    image = _png(tmp_path / "a.png", 40, 50)
    args = [
        "predict",
        str(image),
        "--weights",
        str(blocks_ckpt),
        *FAST,
        "--tile",
        "64",
        "--max-pixels",
        "100",
    ]
    result = runner.invoke(app, [*args, "-o", str(tmp_path / "o")])
    assert result.exit_code == 1 and "over the 100 pixels limit" in result.stderr


def test_resume_refuses_changed_tile_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    use_fake_in_cli(monkeypatch)
    root = tmp_path / "in"
    root.mkdir()
    _png(root / "a.png", 30, 40)
    out = tmp_path / "out"

    def run(*extra: str) -> object:
        return runner.invoke(app, ["batch", str(root), "-o", str(out), *FAST, *extra])

    assert run("--tile", "384").exit_code == 0  # type: ignore[attr-defined]
    assert json.loads((out / "a.png.json").read_text())["settings"]["tile"]["size"] == 384
    again = run("--tile", "384")
    assert again.exit_code == 0 and json.loads((out / "run.json").read_text())["counts"]["skipped"] == 1  # type: ignore[attr-defined]
    for changed, shown in (
        (["--tile", "512"], "'size': 384"),
        (["--tile", "384", "--tile-overlap", "0.3"], "'overlap': 0.2"),
        (["--tile", "384", "--tile-merge", "nms"], "'merge': 'nmm'"),
        ([], "tile {"),
    ):
        result = run(*changed)
        assert result.exit_code == 1, changed  # type: ignore[attr-defined]
        assert "other settings" in result.stderr and shown in result.stderr  # type: ignore[attr-defined]


def test_video_frames_are_tiled(tmp_path: Path, blocks_ckpt: Path) -> None:
    frames = [random_image(96, 160, seed=i) for i in range(3)]
    clip = write_clip(tmp_path / "clip.mp4", frames)
    args = [
        "predict",
        str(clip),
        "--weights",
        str(blocks_ckpt),
        *FAST,
        "--tile",
        "64",
        "-o",
        str(tmp_path / "o"),
    ]
    result = runner.invoke(app, [*args, "--save", "json"])
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "o" / "clip.mp4.json").read_text())
    assert summary["settings"]["tile"]["size"] == 64


# --------------------------------------------------------------------------- large images
def test_mapped_reading_equals_read_image(tmp_path: Path) -> None:
    rgb = random_image(120, 200, seed=8)
    paths = {"png": tmp_path / "a.png", "gray": tmp_path / "g.png", "palette": tmp_path / "p.png"}
    Image.fromarray(rgb).save(paths["png"])
    Image.fromarray(rgb[..., 0]).save(paths["gray"])
    Image.fromarray(rgb).convert("P").save(paths["palette"])
    for orientation in (1, 3, 6, 8):
        im = Image.fromarray(rgb)
        exif = im.getexif()
        exif[0x0112] = orientation
        paths[f"jpeg{orientation}"] = tmp_path / f"o{orientation}.jpg"
        im.save(paths[f"jpeg{orientation}"], exif=exif, quality=95)
    paths["tiled-tiff"] = tmp_path / "t.tif"
    tifffile.imwrite(paths["tiled-tiff"], rgb, tile=(64, 64), compression="zlib")
    paths["gray-tiff"] = tmp_path / "g.tif"
    tifffile.imwrite(paths["gray-tiff"], rgb[..., 1])
    for name, path in paths.items():
        mapped = read_image_mapped(path, map_above=0).pixels
        base = mapped
        while base.base is not None and not isinstance(base, np.memmap):
            base = base.base
        assert isinstance(base, np.memmap) or type(base).__name__ == "mmap", name
        np.testing.assert_array_equal(mapped, read_image(path).pixels, err_msg=name)
    small = read_image_mapped(paths["png"])  # under the threshold: read as read_image reads it
    assert not isinstance(small.pixels, np.memmap)


def test_mapped_reading_checks_like_read_image(tmp_path: Path) -> None:
    path = _png(tmp_path / "a.png", 40, 50)
    with pytest.raises(SegcliError, match="over the 100 pixels limit"):
        read_image_mapped(path, max_pixels=100, map_above=0)
    with pytest.raises(SegcliError, match="no such file"):
        read_image_mapped(tmp_path / "missing.png")
    (tmp_path / "junk.png").write_bytes(b"not an image")
    with pytest.raises(SegcliError, match="not an image"):
        read_image_mapped(tmp_path / "junk.png")


def test_eval_segments_in_tiles(tmp_path: Path) -> None:
    """``eval --tile``: the images are segmented in tiles (recorded), then scored."""
    import shutil

    from tests.conftest import REPO

    scenes = tmp_path / "scenes"
    shutil.copytree(REPO / "examples" / "blocks", scenes)
    out = tmp_path / "out"
    args = ["eval", str(scenes / "ground-truth.json"), "-o", str(out), *FAST, "--tile", "256"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    run = json.loads((out / "run.json").read_text())
    assert run["settings"]["tile"]["size"] == 256
    assert json.loads((out / "eval.json").read_text())["images"] == 5
    record = json.loads(next(out.glob("*.png.json")).read_text())
    assert record["tiling"]["tiles"] == len(tile_grid((384, 512), 256, 0.2)) == 6
