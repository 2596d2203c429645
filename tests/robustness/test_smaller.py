"""The smaller ones: -q prints errors and warnings only, and a bounded number of them; a checkpoint class
named like a placeholder is refused; corrupt EXIF data is one warning naming the file; an
output folder that cannot be made says why in words."""

from __future__ import annotations

import io
import os
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from segcli.cli import app
from segcli.cli.failures import QUIET_FAILURE_LINES
from segcli.core.errors import SegcliError
from segcli.io.images import ImageWarning, read_image
from segcli.models.blocks.arch import build_blocks_maskrcnn
from segcli.models.registry import get_spec
from segcli.models.weights import load_model
from tests.fakes import use_fake_in_cli, write_images

runner = CliRunner()


# --------------------------------------------------------------------------- -q
def _bad_inputs(folder: Path, n: int) -> None:
    write_images(folder, {"good.png": 10})
    for k in range(n):
        (folder / f"bad{k:03d}.png").write_bytes(b"not a png")


@pytest.mark.parametrize("n", [QUIET_FAILURE_LINES - 1, QUIET_FAILURE_LINES, QUIET_FAILURE_LINES + 1, 60])
@pytest.mark.parametrize("command", ["batch", "predict"])
def test_quiet_prints_a_bounded_number_of_failures_and_one_summary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, n: int, command: str
) -> None:
    _bad_inputs(tmp_path / "in", n)
    use_fake_in_cli(monkeypatch)
    inputs = [str(tmp_path / "in")] if command == "batch" else sorted(map(str, (tmp_path / "in").iterdir()))
    quiet = runner.invoke(app, [command, *inputs, "-o", str(tmp_path / "q"), "-q"])
    assert quiet.exit_code == 1
    lines = quiet.stderr.splitlines()
    failed = [line for line in lines if line.startswith("failed:")]
    assert len(failed) == min(n, QUIET_FAILURE_LINES)
    summary = [line for line in lines if "more failure" in line]
    hidden = n - QUIET_FAILURE_LINES
    assert summary == ([] if hidden <= 0 else [summary[0]]) and all(
        line.startswith(str(hidden)) for line in summary
    )
    assert len(lines) == len(failed) + len(summary), "errors only"
    loud = runner.invoke(app, [command, *inputs, "-o", str(tmp_path / "l")])
    assert sum(line.startswith("failed:") for line in loud.stderr.splitlines()) == n


def test_quiet_counts_unreadable_folders_and_links_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_images(tmp_path / "in", {"good.png": 10})
    for k in range(QUIET_FAILURE_LINES + 5):
        (tmp_path / "in" / f"gone{k:02d}.png").symlink_to(tmp_path / "nowhere")
    use_fake_in_cli(monkeypatch)
    result = runner.invoke(app, ["batch", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "-q"])
    assert result.exit_code == 1
    assert sum(line.startswith("failed:") for line in result.stderr.splitlines()) == QUIET_FAILURE_LINES
    assert "5 more failures not shown" in result.stderr


# --------------------------------------------------------------------------- placeholder names
@pytest.mark.parametrize(
    ("categories", "said"),
    [
        (["__background__", "cube", "N/A", "cylinder"], "class 2 is named 'N/A'"),
        (["__background__", "N/A", "sphere", "cylinder"], "class 1 is named 'N/A'"),
        (["__background__", "cube", "sphere", "__background__"], "class 3 is named '__background__'"),
    ],
)
def test_a_checkpoint_class_named_like_a_placeholder_is_refused(
    tmp_path: Path, categories: list[str], said: str
) -> None:
    torch.manual_seed(0)
    path = tmp_path / "ckpt.pt"
    torch.save({"model": build_blocks_maskrcnn().state_dict(), "categories": categories}, path)
    with pytest.raises(SegcliError) as caught:
        load_model("blocks", weights=path, device="cpu")
    message = str(caught.value)
    assert said in message and "rename it in the checkpoint's 'categories'" in message and "\n" not in message


def test_the_architectures_own_list_keeps_its_placeholders(tmp_path: Path) -> None:
    torch.manual_seed(0)
    path = tmp_path / "ckpt.pt"
    own = list(get_spec("blocks").categories)
    torch.save({"model": build_blocks_maskrcnn().state_dict(), "categories": own}, path)
    assert load_model("blocks", weights=path, device="cpu").categories == tuple(own)


# --------------------------------------------------------------------------- EXIF
def _corrupt_exif_jpeg(path: Path, seed: int) -> Path:
    image = Image.fromarray((np.random.default_rng(seed).random((24, 32, 3)) * 255).astype(np.uint8))
    exif = Image.Exif()
    exif[0x0112] = 6
    exif[0x010E] = "description " * 10
    buf = io.BytesIO()
    image.save(buf, "JPEG", exif=exif.tobytes())
    data = bytearray(buf.getvalue())
    start = data.find(b"Exif\x00\x00") + 6
    order = "little" if data[start : start + 2] == b"II" else "big"
    data[start + 4 : start + 8] = (0x7FFF).to_bytes(4, order)  # IFD0 far past the end
    path.write_bytes(bytes(data))
    return path


def test_corrupt_exif_is_one_warning_naming_the_file(tmp_path: Path) -> None:
    path = _corrupt_exif_jpeg(tmp_path / "bad.jpg", 0)
    with pytest.warns(ImageWarning) as caught:
        read_image(path)
    assert len(caught) == 1 and str(caught[0].message).startswith(f"{path}: corrupt EXIF data")


def test_corrupt_exif_in_a_batch_names_every_file_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two decode threads: Python's warning filters are process-wide, and used to leak."""
    folder = tmp_path / "in"
    folder.mkdir()
    paths = [_corrupt_exif_jpeg(folder / f"p{k:02d}.jpg", k) for k in range(16)]
    write_images(folder, {"fine.png": 12})
    use_fake_in_cli(monkeypatch)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a warning that escapes segcli's handling fails the run
        result = runner.invoke(app, ["batch", str(folder), "-o", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    lines = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert sorted(lines) == sorted(
        f"warning: {p}: corrupt EXIF data" + lines[0].split("corrupt EXIF data", 1)[1] for p in paths
    )
    assert "TiffImagePlugin" not in result.output and "UserWarning" not in result.output
    quiet = runner.invoke(app, ["batch", str(folder), "-o", str(tmp_path / "q"), "-q"])
    assert quiet.exit_code == 0
    lines = quiet.stderr.splitlines()
    assert sum(line.startswith("warning:") for line in lines) == QUIET_FAILURE_LINES
    assert lines[-1].startswith(f"{len(paths) - QUIET_FAILURE_LINES} more warnings not shown (-q")
    assert len(lines) == QUIET_FAILURE_LINES + 1, "-q: errors and warnings only, bounded"


# --------------------------------------------------------------------------- -o
@pytest.mark.parametrize(
    ("make", "said"),
    [
        (
            lambda d: os.symlink("loop", d / "loop") or d / "loop",
            "it is a symbolic link that loops back on itself",
        ),
        (lambda d: (os.symlink("b", d / "a"), os.symlink("a", d / "b")) and d / "a", "loops back on itself"),
        (
            lambda d: os.symlink("loop", d / "loop") or d / "loop" / "sub",
            "loop is a symbolic link that loops",
        ),
        (lambda d: os.symlink("/nonexistent/x", d / "dangling") or d / "dangling", "which does not exist"),
        (lambda d: (d / "f").write_text("x") and d / "f" / "sub", "f is a file, not a folder"),
    ],
)
@pytest.mark.parametrize("command", ["predict", "batch"])
def test_an_output_folder_that_cannot_be_made_says_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, make: object, said: str, command: str
) -> None:
    write_images(tmp_path / "in", {"a.png": 10})
    (tmp_path / "o").mkdir()
    out = make(tmp_path / "o")  # type: ignore[operator]
    use_fake_in_cli(monkeypatch)
    target = tmp_path / "in" / ("a.png" if command == "predict" else "")
    result = runner.invoke(app, [command, str(target), "-o", str(out), "-q"])
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith(f"error: cannot write to output folder {out} (") and said in result.stderr
    assert "File exists" not in result.stderr and result.stderr.count("\n") == 1
