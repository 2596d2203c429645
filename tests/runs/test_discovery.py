"""The first minutes on the command line: help, completion, models/classes, typo suggestions,
aliases, and predict/batch agreeing on inputs. No model is loaded here except by a fake."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from segcli.cli import app
from tests.fakes import use_fake_in_cli

runner = CliRunner()
FAKE = ["--model", "blocks", "--device", "cpu", "-q"]


def _help(*command: str) -> str:
    result = runner.invoke(app, [*command, "--help"], terminal_width=120)
    assert result.exit_code == 0, result.output
    return result.stdout


@pytest.mark.parametrize("command", [["predict"], ["batch"], ["compare", "semantic-vs-instance"]])
def test_help_groups_options_in_panels_with_examples(command: list[str]) -> None:
    text = _help(*command)
    panels = re.findall(r"╭─ ([A-Za-z ]+?) ─", text)
    assert {"Model", "Thresholds", "Outputs", "Run control"} <= set(panels), panels
    # options sit in the panel they belong to
    thresholds = text[text.index("╭─ Thresholds") :]
    assert "--score-threshold" in thresholds.split("╰")[0] and "--mask-threshold" in thresholds.split("╰")[0]
    assert "Examples" in text and f"segcli {' '.join(command)} " in text
    assert "list[Path]" not in text and "<bool>" not in text and "{" not in text.split("\n", 3)[1]


def test_predict_help_names_arguments_and_json_lines() -> None:
    text = _help("predict")
    usage = next(line for line in text.splitlines() if "Usage:" in line)
    assert usage.rstrip().endswith("[OPTIONS] IMAGES...")
    flat = " ".join(text.replace("│", " ").split())
    assert "JSON Lines" in flat and "one record per image" in flat
    assert "000-label.png" in flat and "colour preview" in flat
    assert "[all]" in flat, "filled-in defaults are not eaten as Rich markup"


def test_root_help_lists_every_command_with_a_whole_sentence() -> None:
    text = _help()
    for name in ("predict", "batch", "models", "classes", "demo", "compare"):
        assert re.search(rf"│ {name} +\S", text), name
    commands = text[text.index("╭─ Commands") :]
    assert "..." not in commands and "…" not in commands, "no summary is cut mid-sentence"
    assert "--install-completion" in text and "--show-completion" in text


def test_show_completion_prints_a_script() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "segcli", "--show-completion", "bash"],
        capture_output=True,
        text=True,
        env={
            "PATH": "/usr/bin:/bin",
            "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
            # Typer otherwise ignores "bash" and asks shellingham for the shell that started this
            # process: none when pytest runs under a daemon or a detached job ("Shell  not supported")
            "_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION": "1",
        },
    )
    assert (
        result.returncode == 0 and "complete" in result.stdout and "_SEGCLI_COMPLETE" in result.stdout.upper()
    )


@pytest.mark.parametrize(
    ("args", "suggestion"),
    [
        (["predict", "x.png", "--scor", "0.3"], "Did you mean --score-threshold?"),
        (["predict", "x.png", "--nms-iuo", "0.3"], "Did you mean --nms-iou?"),
        (["batch", ".", "--recursiv"], "Did you mean --recursive or --no-recursive?"),
        (["compare", "semantic", "x.png"], "Did you mean 'semantic-vs-instance'?"),
        (["predcit", "x.png"], "Did you mean 'predict'?"),
    ],
)
def test_typos_suggest_the_closest_names(
    args: list[str], suggestion: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    loaded = use_fake_in_cli(monkeypatch)
    result = runner.invoke(app, args, terminal_width=200)
    assert result.exit_code == 2 and suggestion in result.stderr, result.output
    assert "--json" not in result.output and loaded == []


def test_suggest_by_similarity() -> None:
    from segcli.core.suggest import suggest

    options = ["--score-threshold", "--json", "--save", "--nms-iou", "--model", "-m"]
    assert suggest("--scor", options) == ["--score-threshold"]
    assert suggest("--jsno", options) == ["--json"]
    assert suggest("--zzz", options) == []
    assert suggest("semantic", ["semantic-vs-instance"]) == ["semantic-vs-instance"]


@pytest.mark.parametrize("alias", ["--conf", "-c", "--score-threshold"])
def test_score_threshold_aliases(alias: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    made = use_fake_in_cli(monkeypatch)
    image = tmp_path / "a.png"
    Image.fromarray(np.zeros((20, 30, 3), np.uint8)).save(image)
    result = runner.invoke(app, ["predict", str(image), alias, "0.42", "-o", str(tmp_path / "o"), *FAKE])
    assert result.exit_code == 0, result.output
    assert made[0].settings.score_threshold == pytest.approx(0.42)


def _wide_console(monkeypatch: pytest.MonkeyPatch) -> None:
    from rich.console import Console

    wide = Console(width=200)
    for name, module in list(sys.modules.items()):
        if name.startswith("segcli.cli.") and hasattr(module, "out_console"):
            monkeypatch.setattr(module, "out_console", lambda: wide)


def _model_rows(stdout: str) -> dict[str, str]:
    from segcli.models.registry import MODELS, SEMANTIC_MODELS

    names = set(MODELS) | set(SEMANTIC_MODELS)
    table = [line for line in stdout.splitlines() if line[:1].strip()]  # the file lines are indented
    return {line.split()[0]: line for line in table if line.split()[0] in names}


@pytest.mark.parametrize("width", [80, 120, 200])
def test_models_lists_every_model_without_loading_one(width: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """At any width from 80 columns up: one row per model, every name whole (no word broken
    across lines), and every weights file named on a line of its own."""
    from segcli.models.registry import MODELS, SEMANTIC_MODELS

    loaded = use_fake_in_cli(monkeypatch)
    result = runner.invoke(app, ["models"], terminal_width=width, env={"COLUMNS": str(width)})
    assert result.exit_code == 0, result.output
    rows = _model_rows(result.stdout)
    assert set(rows) == set(MODELS) | set(SEMANTIC_MODELS)
    assert re.fullmatch(r"blocks +--model +segcli_blocks_maskrcnn +bundled +384/640 +3 *", rows["blocks"])
    assert re.fullmatch(r"coco +--model +maskrcnn_resnet50_fpn +no +800/1333 +80 *", rows["coco"])
    assert re.fullmatch(r"lraspp +--semantic +lraspp_mobilenet_v3_large +no +520 +20 *", rows["lraspp"])
    lines = result.stdout.splitlines()
    assert "  coco       maskrcnn_resnet50_fpn_coco-bf2d0c1e.pth" in lines
    assert "  lraspp     lraspp_mobilenet_v3_large-d234d4ea.pth" in lines
    table = [line for line in lines if not line.startswith(("weights cache:", "bundled weights:"))]
    assert max(len(line) for line in table) <= 80
    assert "weights cache:" in result.stdout and loaded == []


def test_models_sees_a_cached_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    from segcli.models.registry import MODELS
    from segcli.models.weights import torchvision_cache_file

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(torch.hub, "_hub_dir", None)
    cached = torchvision_cache_file(MODELS["coco"].torchvision_weights)
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"x")
    result = runner.invoke(app, ["models"], terminal_width=200)
    assert result.exit_code == 0, result.output
    coco = _model_rows(result.stdout)["coco"]
    assert coco.split()[3] == "yes" and str(cached.parent) in result.stdout


def test_classes_lists_ids_and_names() -> None:
    result = runner.invoke(app, ["classes", "--model", "blocks"])
    assert result.exit_code == 0
    assert result.stdout.split("\n")[:3] == ["  1  cube", "  2  sphere", "  3  cylinder"]
    default = runner.invoke(app, ["classes"])
    assert default.exit_code == 0, default.output
    coco = default.stdout.splitlines()
    assert len(coco) == 80 and coco[0].split() == ["1", "person"] and not any("N/A" in line for line in coco)
    bad = runner.invoke(app, ["classes", "-m", "cocoo"])
    assert bad.exit_code == 2 and bad.stdout == ""
    assert bad.stderr.splitlines() == [
        "usage error: unknown model 'cocoo' (did you mean 'coco' or 'coco-v2'?); "
        "choose one of: coco, coco-v2, blocks"
    ]


def test_predict_processes_a_file_named_twice_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    made = use_fake_in_cli(monkeypatch)
    image = tmp_path / "a.png"
    Image.fromarray(np.zeros((20, 30, 3), np.uint8)).save(image)
    out = tmp_path / "o"
    twice = [str(image), str(tmp_path / "." / "a.png")]
    result = runner.invoke(app, ["predict", *twice, "--json", "-", "-o", str(out), *FAKE])
    assert result.exit_code == 0, result.output
    assert len(result.stdout.splitlines()) == 1 and json.loads(result.stdout)["image"]["width"] == 30
    assert sum(made[0].calls) == 1


def test_predict_and_batch_agree_on_gif(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    use_fake_in_cli(monkeypatch)
    folder = tmp_path / "in"
    folder.mkdir()
    Image.fromarray(np.zeros((20, 30, 3), np.uint8)).save(folder / "anim.gif")
    predicted = runner.invoke(app, ["predict", str(folder / "anim.gif"), "-o", str(tmp_path / "p"), *FAKE])
    assert predicted.exit_code == 0 and (tmp_path / "p" / "anim.gif.json").is_file()
    batched = runner.invoke(app, ["batch", str(folder), "-o", str(tmp_path / "b"), *FAKE])
    assert batched.exit_code == 0 and (tmp_path / "b" / "anim.gif.json").is_file()
