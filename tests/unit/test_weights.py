"""Weights resolution: offline error, untrusted checkpoints, wrong architectures, devices."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch

from segcli.core.errors import SegcliError
from segcli.models.blocks.arch import CATEGORIES, build_blocks_maskrcnn
from segcli.models.registry import MODELS, SEMANTIC_MODELS, get_spec
from segcli.models.weights import (
    load_model,
    read_checkpoint,
    resolve_device,
    torchvision_cache_file,
    uninitialised_weights,
)
from tests.conftest import PHOTOS


def test_offline_coco_weights_give_one_actionable_message(tmp_path: Path) -> None:
    weights = MODELS["coco"].torchvision_weights
    with pytest.raises(SegcliError) as err:
        load_model("coco", device="cpu", progress=False)
    msg = str(err.value)
    cached = torchvision_cache_file(weights)
    assert "\n" not in msg
    assert cached.name in msg and str(cached.parent) in msg
    assert weights.url in msg
    assert "pass weights=PATH" in msg and "--weights" not in msg  # Python's spelling here
    assert not cached.exists()


def test_cached_weights_are_used_without_network(tmp_path: Path) -> None:
    """A file in torchvision's cache is loaded as is (the download path is never taken)."""
    spec = MODELS["blocks"]
    fake = torchvision_cache_file(MODELS["coco"].torchvision_weights)
    fake.parent.mkdir(parents=True, exist_ok=True)
    torch.save(build_blocks_maskrcnn().state_dict(), fake)
    # The cached file is found and read; it is the wrong architecture for coco, which
    # proves it was loaded from the cache rather than downloaded.
    with pytest.raises(SegcliError, match="does not fit maskrcnn_resnet50_fpn"):
        load_model("coco", device="cpu")
    fake.unlink()
    assert spec.bundled_weights is not None


class _Evil:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[object, ...]]:
        return (Path.touch, (self.marker,))


def test_malicious_checkpoint_is_refused_and_not_executed(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save({"model": _Evil(marker)}, path)
    with pytest.raises(SegcliError, match="refused") as err:
        load_model("blocks", weights=path, device="cpu")
    assert "\n" not in str(err.value)
    assert not marker.exists(), "the checkpoint's code ran"
    # A raw pickle (not a torch zip file) is refused before torch reads it.
    raw = tmp_path / "evil.pkl"
    raw.write_bytes(pickle.dumps(_Evil(marker)))
    with pytest.raises(SegcliError, match="not a PyTorch checkpoint"):
        load_model("blocks", weights=raw, device="cpu")
    assert not marker.exists()


def test_loaded_model_holds_exactly_the_checkpoint(blocks_ckpt: Path) -> None:
    """Built without random init (uninitialised_weights), yet every tensor is the checkpoint's;
    torch.nn.init works again afterwards, also after an error inside the block."""
    loaded = load_model("blocks", weights=blocks_ckpt, device="cpu")
    state, _ = read_checkpoint(blocks_ckpt)
    own = loaded.module.state_dict()
    assert own.keys() == state.keys()
    assert [k for k in own if not torch.equal(own[k], state[k].float())] == []
    with pytest.raises(RuntimeError, match="inside"), uninitialised_weights():
        assert torch.equal(torch.nn.init.constant_(torch.zeros(3), 7.0), torch.zeros(3))
        raise RuntimeError("inside")
    assert torch.equal(torch.nn.init.constant_(torch.zeros(3), 7.0), torch.full((3,), 7.0))


def test_wrong_architecture_counts_keys(blocks_ckpt: Path) -> None:
    with pytest.raises(
        SegcliError, match=r"does not fit maskrcnn_resnet50_fpn.*\d+ missing keys, \d+ unexpected"
    ):
        load_model("coco", weights=blocks_ckpt, device="cpu")


def test_wrong_class_count_is_explained(tmp_path: Path) -> None:
    path = tmp_path / "six.pt"
    torch.save(build_blocks_maskrcnn(num_classes=6).state_dict(), path)
    with pytest.raises(SegcliError, match=r"has 6 classes \(background included\) but --model blocks has 4"):
        load_model("blocks", weights=path, device="cpu")


def test_class_count_mismatch_inside_a_checkpoint_blames_the_checkpoint(tmp_path: Path) -> None:
    """A checkpoint whose 'categories' disagree with its own weights: the message names the
    checkpoint's two numbers (it used to say the checkpoint had 4 and the model 6, inverted)."""
    path = tmp_path / "mixed.pt"
    cats = [*CATEGORIES, "apple", "pear"]
    torch.save(
        {"model": build_blocks_maskrcnn(num_classes=len(CATEGORIES)).state_dict(), "categories": cats}, path
    )
    with pytest.raises(SegcliError) as err:
        load_model("blocks", weights=path, device="cpu")
    assert (
        f"names {len(cats)} categories (background included) but its weights have {len(CATEGORIES)}"
        in str(err.value)
    )


def test_checkpoint_categories_name_the_classes(tmp_path: Path) -> None:
    path = tmp_path / "custom.pt"
    cats = ["__background__", "apple", "pear"]
    torch.save({"state_dict": build_blocks_maskrcnn(num_classes=3).state_dict(), "categories": cats}, path)
    loaded = load_model("blocks", weights=path, device="cpu")
    assert loaded.categories == tuple(cats)
    assert loaded.weights == str(path) and len(loaded.sha256) == 64


@pytest.mark.parametrize(
    ("content", "pattern"),
    [
        (b"", r"is not a PyTorch checkpoint \(empty\)"),
        (b"hello, I am a text file\n", r"is not a PyTorch checkpoint \(it looks like text\)"),
        ((PHOTOS / "coffee.jpg").read_bytes(), r"is not a PyTorch checkpoint \(it looks like a JPEG image\)"),
        (pickle.dumps({"a": 1}), r"is not a PyTorch checkpoint \(it looks like a plain Python pickle\)"),
        (b"PK\x03\x04 not really a zip", "not a readable PyTorch file"),
    ],
)
def test_non_checkpoints_are_clear_errors(tmp_path: Path, content: bytes, pattern: str) -> None:
    path = tmp_path / "x.pt"
    path.write_bytes(content)
    with pytest.raises(SegcliError, match=pattern):
        load_model("blocks", weights=path, device="cpu")


def test_truncated_checkpoint(tmp_path: Path, blocks_ckpt: Path) -> None:
    data = blocks_ckpt.read_bytes()
    path = tmp_path / "cut.pt"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(SegcliError, match="not a readable PyTorch file") as err:
        load_model("blocks", weights=path, device="cpu")
    assert "\n" not in str(err.value)


def test_checkpoint_holding_no_state_dict(tmp_path: Path) -> None:
    path = tmp_path / "list.pt"
    torch.save([1, 2, 3], path)
    with pytest.raises(SegcliError, match="not a state dict"):
        load_model("blocks", weights=path, device="cpu")
    with pytest.raises(SegcliError, match="does not exist"):
        load_model("blocks", weights=tmp_path / "missing.pt", device="cpu")


def test_devices(monkeypatch: pytest.MonkeyPatch) -> None:
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type in ("cpu", "cuda", "mps")
    with pytest.raises(SegcliError, match="unknown device"):
        resolve_device("tpu9")
    # whatever this machine has: one without CUDA, then one with a single GPU
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(SegcliError, match="CUDA is not available"):
        resolve_device("cuda")
    with pytest.raises(SegcliError, match="CUDA is not available"):
        resolve_device("cuda:1")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert resolve_device("cuda") == torch.device("cuda") and resolve_device("auto").type == "cuda"
    assert resolve_device("cuda:0") == torch.device("cuda:0")
    with pytest.raises(SegcliError, match=r"--device cuda:1: this machine has 1 CUDA device\(s\)"):
        resolve_device("cuda:1")


def test_bundled_checkpoint_names_the_blocks_classes_of_the_architecture() -> None:
    """The class names travel in the bundled file; they must be the ones the scenes use."""
    from segcli.models.blocks.scenes import CATEGORIES as SCENE_NAMES

    bundled = MODELS["blocks"].bundled_weights
    assert bundled is not None
    _, names = read_checkpoint(bundled)
    assert names == CATEGORIES == MODELS["blocks"].categories
    assert names is not None and names[1:] == SCENE_NAMES


def test_get_spec_ignores_case_and_lists_the_names() -> None:
    assert get_spec(" COCO-v2 ") is MODELS["coco-v2"]
    assert get_spec("LRASPP", "semantic") is SEMANTIC_MODELS["lraspp"]
    with pytest.raises(SegcliError, match=r"unknown model 'yolo'; choose one of: coco, coco-v2, blocks$"):
        get_spec("yolo")
    with pytest.raises(SegcliError, match="unknown semantic model 'coco'; choose one of: deeplabv3, fcn"):
        get_spec("coco", "semantic")


def test_registry_imports_no_torch() -> None:
    """``segcli --help`` builds its text from the registry's defaults without loading torch."""
    import subprocess
    import sys

    code = (
        "import sys; from segcli.models.registry import get_spec; "
        "d = get_spec('coco').defaults; assert d.min_size == 800 and d.max_size == 1333; "
        "assert 'torch' not in sys.modules, 'torch imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.slow
def test_coco_v2_architecture_runs_from_a_local_checkpoint(tmp_path: Path) -> None:
    import numpy as np
    from torchvision.models.detection import maskrcnn_resnet50_fpn_v2

    from segcli.core.settings import Settings
    from segcli.inference.segmenter import Segmenter

    torch.manual_seed(0)
    path = tmp_path / "v2.pt"
    torch.save(maskrcnn_resnet50_fpn_v2(weights=None, weights_backbone=None).state_dict(), path)
    settings = Settings(score_threshold=0.0, max_detections=3, min_size=96, max_size=128)
    seg = Segmenter("coco-v2", weights=path, device="cpu", settings=settings)
    assert seg.model_info()["architecture"] == "maskrcnn_resnet50_fpn_v2"
    [inst] = seg([np.full((90, 120, 3), 127, np.uint8)])
    assert inst.image_size == (90, 120) and len(inst) == 3  # score threshold 0: the cap is reached
    assert set(inst.class_names) <= set(MODELS["coco-v2"].categories)


def test_segmenter_repr_is_one_short_line(blocks_ckpt: Path) -> None:
    from segcli.core.settings import Settings
    from segcli.inference.segmenter import Segmenter

    seg = Segmenter(
        "Blocks", weights=blocks_ckpt, device="cpu", settings=Settings(classes=("cube", "sphere"))
    )
    assert repr(seg) == f"Segmenter(model='blocks', weights='{blocks_ckpt}', device=cpu, classes=cube,sphere)"
    assert seg.model_info()["name"] == "blocks"  # the registry's spelling, whatever the user typed


def test_shipped_category_lists_are_torchvisions() -> None:
    """The category names the registry ships as data (so ``segcli classes`` needs no torch)
    are exactly what torchvision's weights metadata says, for every torchvision model."""
    checked = 0
    for spec in [*MODELS.values(), *SEMANTIC_MODELS.values()]:
        if spec.torchvision_weights is None:
            continue
        assert spec.categories == tuple(spec.torchvision_weights.meta["categories"]), spec.name
        assert spec.weights_url == spec.torchvision_weights.url, spec.name
        checked += 1
    assert checked == 5


def test_the_registry_is_a_leaf_that_models_register_into() -> None:
    from segcli.models.registry import ModelSpec, register

    assert list(MODELS) == ["coco", "coco-v2", "blocks"]
    assert list(SEMANTIC_MODELS) == ["deeplabv3", "fcn", "lraspp"]
    with pytest.raises(ValueError, match="registered already"):
        register(ModelSpec("blocks", "instance", "x", MODELS["blocks"].defaults))


@pytest.mark.parametrize("env", [{}, {"TORCH_HOME": "/tmp/th"}, {"XDG_CACHE_HOME": "/tmp/xdg"}])
def test_the_weights_cache_folder_is_torchs_without_torch(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch

    from segcli.models.cache import describe_weights, torch_hub_dir

    for name in ("TORCH_HOME", "XDG_CACHE_HOME"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert torch_hub_dir() == Path(torch.hub.get_dir())
    for spec in [*MODELS.values(), *SEMANTIC_MODELS.values()]:
        info = describe_weights(spec)
        if spec.torchvision_weights is not None:
            assert info.path == torchvision_cache_file(spec.torchvision_weights)
            assert info.source == f"torchvision:{spec.torchvision_weights}"
        else:  # blocks: the file shipped in the package
            assert spec.bundled_weights is not None, spec.name
            assert (info.source, info.path) == (f"bundled:{spec.bundled_weights.name}", spec.bundled_weights)
