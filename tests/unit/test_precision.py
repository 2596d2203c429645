"""``--precision``: mode resolution per device, batch-norm folding, and the bf16 forward."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from segcli.core.errors import SegcliError
from segcli.models import precision
from segcli.models.precision import fold_batch_norms, native_precisions, prepare_model, resolve_precision
from tests.conftest import BATCH_FAST, PHOTOS

CPU = torch.device("cpu")


@pytest.fixture()
def bf16_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(precision, "cpu_bf16_feature", lambda: "AVX-512 BF16")


@pytest.fixture()
def plain_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(precision, "cpu_bf16_feature", lambda: None)


# --------------------------------------------------------------------------- resolution
def test_cpu_with_native_bf16(bf16_cpu: None) -> None:
    assert native_precisions(CPU) == ("bf16", "fp32")
    assert resolve_precision("auto", CPU) == "bf16"
    assert resolve_precision("bf16", CPU) == "bf16"
    assert resolve_precision(" FP32 ", CPU) == "fp32"
    with pytest.raises(SegcliError, match="fp16 runs on CUDA only; on this CPU use bf16 or fp32"):
        resolve_precision("fp16", CPU)


def test_cpu_without_native_bf16(plain_cpu: None) -> None:
    assert native_precisions(CPU) == ("fp32",)
    assert resolve_precision("auto", CPU) == "fp32"
    with pytest.raises(SegcliError, match="needs a CPU with AVX-512 BF16 or AMX") as err:
        resolve_precision("bf16", CPU)
    assert "\n" not in str(err.value)
    with pytest.raises(SegcliError, match=r"on this CPU use fp32$"):
        resolve_precision("fp16", CPU)


def test_unknown_precision_names_the_choices() -> None:
    with pytest.raises(SegcliError, match=r"one of fp32, bf16, fp16, auto; got 'int8'"):
        resolve_precision("int8", CPU)


def test_cuda_modes(monkeypatch: pytest.MonkeyPatch) -> None:
    cuda = torch.device("cuda")
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a: "Tesla T4")
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: False)
    assert native_precisions(cuda) == ("fp16", "fp32")
    assert resolve_precision("auto", cuda) == "fp16"
    with pytest.raises(SegcliError, match="Tesla T4 has no native bf16; use fp16 or fp32"):
        resolve_precision("bf16", cuda)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: True)
    assert resolve_precision("bf16", cuda) == "bf16"
    assert resolve_precision("auto", cuda) == "fp16"


def test_mps_is_fp32_only() -> None:
    mps = torch.device("mps")
    assert resolve_precision("auto", mps) == "fp32"
    with pytest.raises(SegcliError, match="not supported on mps"):
        resolve_precision("bf16", mps)


def test_cpu_detection_falls_back_to_cpuinfo_flags(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(torch.cpu, "_is_amx_tile_supported", raising=False)
    monkeypatch.setattr(precision, "_cpuinfo_flags", lambda: {"avx512f", "avx512_bf16"})
    assert precision.cpu_bf16_feature() == "AVX-512 BF16"
    monkeypatch.setattr(precision, "_cpuinfo_flags", lambda: {"avx512f", "amx_tile", "amx_bf16"})
    assert precision.cpu_bf16_feature() == "AMX"
    monkeypatch.setattr(precision, "_cpuinfo_flags", lambda: {"avx2", "fma"})
    assert precision.cpu_bf16_feature() is None


def test_cpu_detection_agrees_with_cpuinfo() -> None:
    """torch's detection and the kernel's flags must tell the same story on this machine."""
    cpuinfo = Path("/proc/cpuinfo")
    if not cpuinfo.is_file() or not re.search(r"^flags\s*:", cpuinfo.read_text(), flags=re.M):
        pytest.skip("no x86 CPU flags in /proc/cpuinfo here")
    flags = precision._cpuinfo_flags()
    assert flags, "/proc/cpuinfo has a flags line: segcli read none from it"
    assert (precision.cpu_bf16_feature() is not None) == bool({"avx512_bf16", "amx_bf16"} & flags)


# --------------------------------------------------------------------------- folding
def _randomise_norms(module: nn.Module, seed: int = 0) -> None:
    from torchvision.ops.misc import FrozenBatchNorm2d

    gen = torch.Generator().manual_seed(seed)
    for m in module.modules():
        if isinstance(m, (nn.BatchNorm2d, FrozenBatchNorm2d)):
            n = m.running_mean.shape[0]
            m.running_mean.copy_(torch.randn(n, generator=gen) * 0.1)
            m.running_var.copy_(torch.rand(n, generator=gen) + 0.5)
            m.weight.data.copy_(torch.rand(n, generator=gen) + 0.5)
            m.bias.data.copy_(torch.randn(n, generator=gen) * 0.1)


def test_fold_blocks_backbone_keeps_fp32_outputs() -> None:
    from segcli.models.blocks.arch import BlocksBackbone

    backbone = BlocksBackbone().eval()
    _randomise_norms(backbone)
    x = torch.rand(1, 3, 96, 128, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        before = backbone(x)
    norms = sum(isinstance(m, nn.BatchNorm2d) for m in backbone.modules())
    assert fold_batch_norms(backbone) == norms > 0
    assert not any(isinstance(m, nn.BatchNorm2d) for m in backbone.modules())
    with torch.inference_mode():
        after = backbone(x)
    for key in before:
        torch.testing.assert_close(after[key], before[key], rtol=1e-4, atol=1e-4)


def test_fold_resnet_body_with_frozen_norms() -> None:
    """The COCO backbone's shape: FrozenBatchNorm2d in an IntermediateLayerGetter over a ResNet."""
    from torchvision.models import resnet18
    from torchvision.models._utils import IntermediateLayerGetter
    from torchvision.ops.misc import FrozenBatchNorm2d

    body = IntermediateLayerGetter(resnet18(norm_layer=FrozenBatchNorm2d), {"layer4": "0"}).eval()
    _randomise_norms(body)
    x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    with torch.inference_mode():
        before = body(x)["0"]
    # stem + 2 per BasicBlock x 8 + 3 downsamples
    assert fold_batch_norms(body) == 1 + 16 + 3
    assert not any(isinstance(m, FrozenBatchNorm2d) for m in body.modules())
    with torch.inference_mode():
        torch.testing.assert_close(body(x)["0"], before, rtol=1e-4, atol=1e-4)


def test_fold_leaves_a_norm_that_does_not_follow_a_conv() -> None:
    seq = nn.Sequential(nn.ReLU(), nn.BatchNorm2d(3), nn.Conv2d(3, 3, 1), nn.BatchNorm2d(3)).eval()
    assert fold_batch_norms(seq) == 1
    assert isinstance(seq[1], nn.BatchNorm2d) and isinstance(seq[3], nn.Identity)


def test_prepare_fp32_leaves_the_model_alone() -> None:
    from segcli.models.blocks.arch import build_blocks_maskrcnn

    model = build_blocks_maskrcnn().eval()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    done = prepare_model(model, "fp32", CPU)
    assert done.folded_norms == 0 and done.wrapped == ()
    after = model.state_dict()
    assert after.keys() == state.keys() and all(torch.equal(after[k], v) for k, v in state.items())


# --------------------------------------------------------------------------- bf16 forward
@pytest.mark.blocks
def test_bf16_forward_on_blocks_matches_fp32() -> None:
    """The bundled model on a held-out scene: bf16 gives valid fp32 outputs that match fp32 closely."""
    from segcli.core.settings import Settings
    from segcli.inference.segmenter import Segmenter
    from segcli.models.blocks.scenes import HELDOUT_SEED_BASE, render_scene

    scene = render_scene(HELDOUT_SEED_BASE + 900_001, size=(320, 240))
    settings = Settings(min_size=240, max_size=320)
    ref_seg = Segmenter("blocks", device="cpu", settings=settings, progress=False)
    bf16_seg = Segmenter("blocks", device="cpu", settings=settings, progress=False)
    done = prepare_model(bf16_seg.loaded.module, "bf16", CPU)
    assert done.folded_norms > 0 and "backbone" in done.wrapped and "roi_heads.mask_head" in done.wrapped
    [ref] = ref_seg([scene.image])
    [out] = bf16_seg([scene.image])

    assert len(ref) >= 1 and len(out) == len(ref)
    assert out.boxes.dtype == np.float32 and out.scores.dtype == np.float32
    assert np.isfinite(out.boxes).all() and ((out.scores >= 0) & (out.scores <= 1)).all()
    assert all(m.dtype == bool for m in out.masks)
    # Near-tied scores may swap neighbours in the ranking: pair each fp32 detection with
    # the bf16 detection of its class whose box is closest.
    assert sorted(out.class_ids.tolist()) == sorted(ref.class_ids.tolist())
    for i in range(len(ref)):
        same = np.flatnonzero(out.class_ids == ref.class_ids[i])
        j = int(same[np.abs(out.boxes[same] - ref.boxes[i]).max(axis=1).argmin()])
        np.testing.assert_allclose(out.boxes[j], ref.boxes[i], atol=2.0)
        assert abs(float(out.scores[j]) - float(ref.scores[i])) < 0.03
        a, b = ref.full_mask(i), out.full_mask(j)
        assert (a & b).sum() / (a | b).sum() > 0.9


# --------------------------------------------------------------------------- Segmenter, settings, CLI
def test_segmenter_records_the_resolved_precision(bf16_cpu: None, blocks_ckpt: Path) -> None:
    from segcli.core.settings import Settings
    from segcli.inference.segmenter import Segmenter

    tiny = Settings(min_size=64, max_size=96, precision="auto")
    seg = Segmenter("blocks", weights=blocks_ckpt, device="cpu", settings=tiny, progress=False)
    assert seg.precision == "bf16" and seg.settings.precision == "bf16"
    assert seg.settings.to_dict()["precision"] == "bf16"
    assert isinstance(seg.module.backbone, precision.DenseAutocast)
    assert "precision=bf16" in repr(seg)
    fp32 = Segmenter(
        "blocks", weights=blocks_ckpt, device="cpu", settings=Settings(min_size=64), progress=False
    )
    assert fp32.settings.precision == "fp32" and not isinstance(fp32.module.backbone, precision.DenseAutocast)


def test_segmenter_refuses_a_foreign_precision_before_loading(
    plain_cpu: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    import segcli.inference.segmenter
    from segcli.core.settings import Settings

    def no_load(*args: object, **kwargs: object) -> None:
        raise AssertionError("the model must not load")

    monkeypatch.setattr(segcli.inference.segmenter, "load_model", no_load)
    with pytest.raises(SegcliError, match="AVX-512 BF16 or AMX"):
        segcli.inference.segmenter.Segmenter("blocks", device="cpu", settings=Settings(precision="bf16"))
    with pytest.raises(SegcliError, match="runs on CUDA only"):
        segcli.inference.segmenter.Segmenter("blocks", device="cpu", half=True)
    with pytest.raises(SegcliError, match="half=True is precision fp16"):
        segcli.inference.segmenter.Segmenter(
            "blocks", device="cpu", half=True, settings=Settings(precision="fp32")
        )


def test_settings_reject_an_unknown_precision() -> None:
    from segcli.core.settings import Settings

    with pytest.raises(SegcliError, match="--precision must be one of fp32, bf16, fp16, auto; got 'fp8'"):
        Settings(precision="fp8")


USAGE_ERRORS = [
    (["--precision", "int8"], "--precision must be one of fp32, bf16, fp16, auto; got 'int8'"),
    (["--precision", "fp16"], "--precision fp16 runs on CUDA only; on this CPU use fp32"),
    (["--precision", "bf16"], "--precision bf16 needs a CPU with AVX-512 BF16 or AMX"),
    (["--half"], "--precision fp16 runs on CUDA only"),
    (["--half", "--precision", "bf16"], "--half is --precision fp16; it cannot be combined"),
]


@pytest.mark.parametrize(
    ("command", "args", "message"),
    [
        (command, args, message)
        for command in ("predict", "batch", "compare", "eval", "demo")
        for args, message in USAGE_ERRORS
        if not (command == "demo" and "--half" in args)  # demo never had --half
    ],
)
def test_cli_precision_usage_errors_exit_2_before_loading(
    plain_cpu: None,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    command: str,
    args: list[str],
    message: str,
) -> None:
    import segcli.inference.segmenter
    from segcli.cli import app

    def no_load(*a: object, **k: object) -> None:
        raise AssertionError("the model must not load")

    monkeypatch.setattr(segcli.inference.segmenter, "load_model", no_load)
    out = tmp_path / "out"
    photo = str(PHOTOS / "chelsea.jpg")
    argv = {
        "predict": ["predict", photo, "--model", "blocks"],
        "batch": ["batch", str(PHOTOS), "--model", "blocks"],
        "compare": ["compare", "semantic-vs-instance", photo, "--model", "blocks"],
        "eval": ["eval", str(PHOTOS.parent / "blocks" / "ground-truth.json"), "--model", "blocks"],
        "demo": ["demo"],
    }[command]
    result = CliRunner().invoke(app, [*argv, "-o", str(out), "--device", "cpu", *args])
    assert result.exit_code == 2, result.output
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("usage error: ") and message in line
    assert not out.exists()


def test_batch_records_precision_and_resume_refuses_another(
    bf16_cpu: None, tmp_path: Path, blocks_ckpt: Path
) -> None:
    from segcli.cli import app

    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(PHOTOS / "chelsea.jpg", folder / "cat.jpg")
    out = tmp_path / "out"
    base = ["batch", str(folder), "-o", str(out), "--weights", str(blocks_ckpt), *BATCH_FAST]
    result = CliRunner().invoke(app, [*base, "--precision", "auto"])
    assert result.exit_code == 0, result.output
    assert json.loads((out / "run.json").read_text())["settings"]["precision"] == "bf16"
    assert json.loads((out / "cat.jpg.json").read_text())["settings"]["precision"] == "bf16"
    again = CliRunner().invoke(app, [*base, "--precision", "fp32"])
    assert again.exit_code == 1
    assert "other settings (precision 'bf16' -> 'fp32')" in " ".join(again.stderr.split())


def test_resume_treats_a_run_from_before_precision_as_fp32(tmp_path: Path, blocks_ckpt: Path) -> None:
    from segcli.cli import app

    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(PHOTOS / "chelsea.jpg", folder / "cat.jpg")
    out = tmp_path / "out"
    base = ["batch", str(folder), "-o", str(out), "--weights", str(blocks_ckpt), *BATCH_FAST]
    assert CliRunner().invoke(app, base).exit_code == 0
    run = json.loads((out / "run.json").read_text())
    del run["settings"]["precision"]  # as written by segcli before --precision existed
    (out / "run.json").write_text(json.dumps(run))
    result = CliRunner().invoke(app, base)
    assert result.exit_code == 0, result.output
    assert json.loads((out / "run.json").read_text())["counts"]["skipped"] == 1
