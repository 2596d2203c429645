"""The Python API as a newcomer meets it: the docs' examples, friendly inputs, clear errors."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from segcli import Segmenter, read_image
from segcli.core.errors import SegcliError
from segcli.core.instances import Instances
from segcli.core.settings import Settings

REPO = Path(__file__).resolve().parents[2]
SCENE = REPO / "examples" / "blocks" / "two-red-cubes.png"
TINY = Settings(min_size=64, max_size=96, score_threshold=0.0, max_detections=3)


@pytest.fixture(scope="module")
def seg() -> Segmenter:
    return Segmenter("blocks", device="cpu", settings=TINY, progress=False)


API_PAGE = REPO / "docs" / "reference" / "python-api.md"


def _python_blocks(page: Path = API_PAGE) -> list[str]:
    return re.findall(r"```python\n(.*?)```", page.read_text(encoding="utf-8"), flags=re.S)


def test_docs_python_example_runs_as_written_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """The Python API page's offline blocks (the bundled model, the Instances operations) run
    in order as written, from the repository root; the COCO block is shown as the next step."""
    blocks = _python_blocks()
    # the bundled-model example and the Instances operations on its result; the others need
    # files of the reader's own (photos/, labels.json) or the COCO download
    offline = [b for b in blocks if 'Segmenter("blocks"' in b or "label_map(" in b]
    assert len(offline) == 2 and 'Segmenter("blocks"' in offline[0]
    assert any('Segmenter("coco"' in b for b in blocks), "the COCO model is the next step"
    monkeypatch.chdir(REPO)
    namespace: dict[str, object] = {}
    for block in offline:
        exec(compile(block, str(API_PAGE.relative_to(REPO)), "exec"), namespace)
    inst = namespace["inst"]
    assert isinstance(inst, Instances) and inst.image_size == (384, 512)
    overlay = namespace["overlay"]
    assert isinstance(overlay, np.ndarray) and overlay.shape == (384, 512, 3)


def test_readme_python_example_runs_as_written_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """The README's short example (the bundled model) runs as written, from the repository root."""
    [block] = _python_blocks(REPO / "README.md")
    monkeypatch.chdir(REPO)
    namespace: dict[str, object] = {}
    exec(compile(block, "README.md", "exec"), namespace)
    inst = namespace["inst"]
    assert isinstance(inst, Instances) and repr(inst).startswith("Instances(2 of 512x384: cube")


def test_one_image_in_one_instances_out(seg: Segmenter, tmp_path: Path) -> None:
    pixels = read_image(SCENE).pixels
    from_array = seg(pixels)
    assert isinstance(from_array, Instances) and from_array.image_size == pixels.shape[:2]
    from_path, from_str, from_loaded = seg(SCENE), seg(str(SCENE)), seg(read_image(SCENE))
    for got in (from_path, from_str, from_loaded):
        assert isinstance(got, Instances)
        assert np.array_equal(got.boxes, from_array.boxes) and got.class_names == from_array.class_names
    batch = seg([pixels, SCENE])
    assert isinstance(batch, list) and len(batch) == 2
    assert np.allclose(batch[1].boxes, from_array.boxes, atol=0.01)  # batched: float noise only
    assert seg([]) == []


def test_paths_are_read_with_exif_like_the_cli(seg: Segmenter, tmp_path: Path) -> None:
    rotated = tmp_path / "rotated.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    Image.fromarray(np.full((40, 90, 3), 120, np.uint8)).save(rotated, exif=exif)
    assert seg(rotated).image_size == (90, 40)


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (np.zeros((512, 3), np.uint8), r"RGB images, \(H, W, 3\) uint8; got shape \(512, 3\)"),
        (np.zeros((8, 8, 4), np.uint8), r"got shape \(8, 8, 4\) \(grayscale or RGBA\?\)"),
        (np.zeros((8, 8, 3), np.float32), r"uint8 pixels \(0-255\), got float32 \(floats in \[0, 1\]\?"),
        (np.zeros((8, 8, 5), np.uint8), r"takes an \(H, W, 3\) uint8 RGB array, a path, or a list of them"),
    ],
)
def test_wrong_arrays_say_what_is_expected(seg: Segmenter, bad: np.ndarray, message: str) -> None:
    with pytest.raises(SegcliError, match=message):
        seg(bad)
    with pytest.raises(SegcliError, match=message):
        seg([bad])


def test_wrong_types_say_what_is_expected(seg: Segmenter, tmp_path: Path) -> None:
    with pytest.raises(TypeError, match=r"a path, or a list of them; got a int"):
        seg(3)  # type: ignore[call-overload]
    with pytest.raises(TypeError, match=r"got a dict in the list"):
        seg([{}])  # type: ignore[list-item]
    with pytest.raises(SegcliError, match="no such file"):
        seg(tmp_path / "missing.png")


def test_short_reprs(seg: Segmenter) -> None:
    text = repr(seg)
    assert (
        text.startswith("Segmenter(model='blocks', weights='bundled:blocks.pt', device=cpu")
        and len(text) < 120
    )
    loaded = read_image(SCENE)
    assert repr(loaded) == f"LoadedImage({str(SCENE)!r}, 512x384 PNG)"


def test_offline_error_names_the_python_argument_not_the_option() -> None:
    with pytest.raises(SegcliError) as err:
        Segmenter("coco", device="cpu", progress=False)
    assert "pass weights=PATH" in str(err.value) and "--weights" not in str(err.value)


def test_class_typo_suggests_the_closest_class() -> None:
    with pytest.raises(
        SegcliError, match=r"unknown class 'cub' \(did you mean 'cube'\?\) for --model blocks"
    ):
        Segmenter("blocks", device="cpu", settings=Settings(classes=("cub",)), progress=False)
