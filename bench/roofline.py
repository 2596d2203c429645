"""CPU roofline of the detector in every precision and runtime segcli could use.

    python -m bench.roofline                          # COCO architecture (random weights) + blocks
    python -m bench.roofline --model coco --threads 1 --rounds 3 --json bench/out/roofline.json
    python -m bench.roofline --modes fp32,bf16        # a subset (names: see MODES below)

For each mode: GFLOPs per image (``torch.utils.flop_counter.FlopCounterMode`` over the fp32
forward; every mode does the same arithmetic), seconds per image (median over rounds; the
modes are interleaved, A B C A B C ..., so that a neighbour's load hits all of them alike),
achieved GFLOP/s, and the machine's measured peak (best of a large fp32 and a large bf16
matmul) -> % of peak. Both wall seconds and process CPU seconds are printed: on a shared
machine the CPU seconds of a one-thread run are the steadier figure, so achieved and peak
GFLOP/s (and % of peak) are per CPU second, i.e. per busy core.

The image is a real photo (``examples/photos/astronaut.jpg`` cropped to 768x576, as in issue
12), resized by the model itself to 800 px on the short side (``--min-size``). The COCO
architecture runs on a randomly initialised checkpoint at ``--score-threshold 0`` (so every
image yields ``--max-detections`` detections and the mask head runs on all of them); the
blocks model runs on a held-out scene at 512x384 with its bundled weights.

Each mode runs ``Segmenter.__call__`` (preprocess, staged forward, mask pasting) on the
same image. A runtime that cannot take the whole Mask R-CNN (data-dependent control flow:
NMS, top-k, per-image loops) is tried on the whole model first; the reason it failed is
printed, then it runs the backbone + FPN (most of the FLOPs) with the rest in PyTorch.
A mode that cannot run at all prints why and is skipped.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import os
import statistics
import sys
import tempfile
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from bench.common import REPO, make_photo, random_coco_checkpoint, write_json
from segcli.inference.segmenter import Segmenter

OUT = REPO / "bench" / "out"


class Unavailable(Exception):
    """A mode that cannot run here; the message says why."""


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0][:300] if text else ''}"


def _copy_segmenter(seg: Segmenter) -> Segmenter:
    return copy.deepcopy(seg)


ContextFactory = Callable[[], contextlib.AbstractContextManager[None]]
Runner = tuple[Segmenter, ContextFactory]
"""A prepared Segmenter and the context each call runs in."""


def _null() -> contextlib.AbstractContextManager[None]:
    return contextlib.nullcontext()


def _autocast_bf16() -> contextlib.AbstractContextManager[None]:
    return torch.autocast("cpu", dtype=torch.bfloat16)


# --------------------------------------------------------------------------- mode setups
def setup_fp32(seg: Segmenter) -> Runner:
    return seg, _null


def setup_fp32_cl(seg: Segmenter) -> Runner:
    s = _copy_segmenter(seg)
    s.loaded.module.to(memory_format=torch.channels_last)
    return s, _null


def setup_bf16_whole(seg: Segmenter) -> Runner:
    """The issue's measurement: the whole forward under autocast (boxes decoded in bf16)."""
    return seg, _autocast_bf16


def setup_bf16_whole_cl(seg: Segmenter) -> Runner:
    s = _copy_segmenter(seg)
    s.loaded.module.to(memory_format=torch.channels_last)
    return s, _autocast_bf16


def _dense_only(seg: Segmenter, *, fold: bool, channels_last: bool) -> Segmenter:
    from segcli.models.precision import DENSE_PARTS, DenseAutocast, fold_batch_norms, replace_submodule

    s = _copy_segmenter(seg)
    module: nn.Module = s.loaded.module
    if fold:
        fold_batch_norms(module)
    if channels_last:
        module.to(memory_format=torch.channels_last)
    for dotted in DENSE_PARTS:
        wrapper = DenseAutocast(
            module.get_submodule(dotted), torch.bfloat16, "cpu", channels_last=channels_last
        )
        replace_submodule(module, dotted, wrapper)
    return s


def setup_bf16_dense(seg: Segmenter) -> Runner:
    return _dense_only(seg, fold=False, channels_last=False), _null


def setup_bf16_dense_fold(seg: Segmenter) -> Runner:
    return _dense_only(seg, fold=True, channels_last=False), _null


def setup_bf16_shipped(seg: Segmenter) -> Runner:
    from segcli.models.precision import prepare_model

    s = _copy_segmenter(seg)
    prepare_model(s.loaded.module, "bf16", torch.device("cpu"))
    return s, _null


def setup_fp32_fold_cl(seg: Segmenter) -> Runner:
    from segcli.models.precision import fold_batch_norms

    s = _copy_segmenter(seg)
    fold_batch_norms(s.loaded.module)
    s.loaded.module.to(memory_format=torch.channels_last)
    return s, _null


class _CompiledBackbone(nn.Module):
    """torch.compile'd backbone; one compilation per input shape (``dynamic=False``)."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner
        self.compiled = torch.compile(inner, backend="inductor", dynamic=False)

    def forward(self, x: Tensor) -> object:
        return self.compiled(x)


def _compile(seg: Segmenter, precision: str, notes: list[str], image: np.ndarray) -> Segmenter:
    import torch._inductor.config as inductor_config

    inductor_config.freezing = True  # constant-fold and pre-pack the weights (inference only)
    seg = setup_bf16_shipped(seg)[0] if precision == "bf16" else _copy_segmenter(seg)
    module: nn.Module = seg.loaded.module
    notes.append(f"whole model: {_once('compile', lambda: _try_compile_whole(module))}")
    part = "backbone.inner" if precision == "bf16" else "backbone"
    from segcli.models.precision import replace_submodule

    replace_submodule(module, part, _CompiledBackbone(module.get_submodule(part)))
    t0 = time.perf_counter()
    with torch.inference_mode():
        seg([image])
    notes.append(f"backbone only; first call (compilation) {time.perf_counter() - t0:.1f} s wall")
    return seg


_WHOLE_MODEL: dict[tuple[str, int], str] = {}


def _once(runtime: str, attempt: Callable[[], str]) -> str:
    """The whole-model attempt of ``runtime``, made once per benchmarked model (they are slow)."""
    key = (runtime, _MODEL_INDEX[0])
    if key not in _WHOLE_MODEL:
        t0 = time.perf_counter()
        _WHOLE_MODEL[key] = f"{attempt()} [{time.perf_counter() - t0:.0f} s wall]"
    return _WHOLE_MODEL[key]


_MODEL_INDEX = [0]
_CONVERTED: dict[tuple[str, int], object] = {}


def _try_compile_whole(module: nn.Module) -> str:
    """Whether ``torch.compile(fullgraph=True)`` can capture the whole Mask R-CNN."""
    try:
        compiled = torch.compile(module, backend="eager", fullgraph=True, dynamic=False)
        with torch.inference_mode():
            compiled([torch.rand(3, 64, 64)])
    except Exception as exc:
        return f"cannot be captured as one graph ({_first_line(exc)})"
    return "captured as one graph"


def setup_compile_fp32(seg: Segmenter, notes: list[str], image: np.ndarray) -> Runner:
    return _compile(seg, "fp32", notes, image), _null


def setup_compile_bf16(seg: Segmenter, notes: list[str], image: np.ndarray) -> Runner:
    return _compile(seg, "bf16", notes, image), _null


class _RuntimeBackbone(nn.Module):
    """Runs the backbone + FPN in another runtime; hands back the same OrderedDict of fp32 tensors."""

    def __init__(self, names: list[str], run: Callable[[np.ndarray], list[np.ndarray]]) -> None:
        super().__init__()
        self.names = names
        self.run = run

    def forward(self, x: Tensor) -> OrderedDict[str, Tensor]:
        outs = self.run(x.contiguous().numpy())
        return OrderedDict((n, torch.from_numpy(np.ascontiguousarray(o))) for n, o in zip(self.names, outs))


class _TupleBackbone(nn.Module):
    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: Tensor) -> tuple[Tensor, ...]:
        return tuple(self.inner(x).values())


def _example_input(seg: Segmenter, image: np.ndarray) -> tuple[Tensor, list[str]]:
    from segcli.inference.forward import preprocess

    module = seg.loaded.module
    tensor = torch.from_numpy(image).permute(2, 0, 1).float().div(255.0)
    with torch.inference_mode():
        image_list, _ = preprocess(module, [tensor])
        names = list(module.backbone(image_list.tensors).keys())
    return image_list.tensors.clone(), names


def _openvino(seg: Segmenter, precision: str, notes: list[str], image: np.ndarray, threads: int) -> Segmenter:
    try:
        import openvino as ov
    except ImportError as exc:
        raise Unavailable(f"openvino is not installed ({exc})") from None
    seg = _copy_segmenter(seg)
    module: nn.Module = seg.loaded.module
    tensor = torch.from_numpy(image).permute(2, 0, 1).float().div(255.0)

    def whole() -> str:
        try:
            ov.convert_model(module, example_input=([tensor],))
        except Exception as exc:
            return f"cannot convert ({_first_line(exc)})"
        return "converted (not used: the staged forward needs the parts)"

    notes.append(f"whole model: {_once('openvino', whole)}")
    example, names = _example_input(seg, image)
    key = ("openvino-ir", _MODEL_INDEX[0])
    t0 = time.perf_counter()
    if key not in _CONVERTED:  # one conversion serves both precision hints
        _CONVERTED[key] = ov.convert_model(
            _TupleBackbone(module.backbone), example_input=example, input=[ov.PartialShape([-1, 3, -1, -1])]
        )
    ov_model = _CONVERTED[key]
    convert_s = time.perf_counter() - t0
    core = ov.Core()
    config = {
        "INFERENCE_PRECISION_HINT": "f32" if precision == "fp32" else "bf16",
        "INFERENCE_NUM_THREADS": threads,
        "PERFORMANCE_HINT": "LATENCY",
    }
    t0 = time.perf_counter()
    compiled = core.compile_model(ov_model, "CPU", config)
    request = compiled.create_infer_request()
    outputs = list(compiled.outputs)

    def run(x: np.ndarray) -> list[np.ndarray]:
        result = request.infer({0: x})
        return [result[o] for o in outputs]

    run(example.numpy())
    notes.append(
        f"backbone + FPN only; conversion {convert_s:.0f} s + compile/first call "
        f"{time.perf_counter() - t0:.1f} s wall, once per process (or cached IR)"
    )
    module.backbone = _RuntimeBackbone(names, run)
    return seg


def setup_openvino_fp32(seg: Segmenter, notes: list[str], image: np.ndarray, threads: int) -> Runner:
    return _openvino(seg, "fp32", notes, image, threads), _null


def setup_openvino_bf16(seg: Segmenter, notes: list[str], image: np.ndarray, threads: int) -> Runner:
    return _openvino(seg, "bf16", notes, image, threads), _null


def setup_onnxruntime(seg: Segmenter, notes: list[str], image: np.ndarray, threads: int) -> Runner:
    try:
        import onnxruntime as ort
    except ImportError as exc:
        raise Unavailable(f"onnxruntime is not installed ({exc})") from None
    seg = _copy_segmenter(seg)
    module: nn.Module = seg.loaded.module
    tensor = torch.from_numpy(image).permute(2, 0, 1).float().div(255.0)
    with tempfile.TemporaryDirectory() as tmp:

        def whole() -> str:
            try:
                torch.onnx.export(
                    module, ([tensor],), str(Path(tmp) / "whole.onnx"), opset_version=17, dynamo=False
                )
            except Exception as exc:
                return f"cannot export ({_first_line(exc)})"
            return "exported (not used: the staged forward needs the parts)"

        notes.append(f"whole model: {_once('onnx', whole)}")
        example, names = _example_input(seg, image)
        path = Path(tmp) / "backbone.onnx"
        torch.onnx.export(
            _TupleBackbone(module.backbone),
            (example,),
            str(path),
            opset_version=17,
            dynamo=False,
            input_names=["x"],
            dynamic_axes={"x": {0: "n", 2: "h", 3: "w"}},
        )
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def run(x: np.ndarray) -> list[np.ndarray]:
        return list(session.run(None, {"x": x}))

    notes.append(
        "backbone + FPN only, fp32 (ONNX Runtime's CPU provider has no bf16 convolutions; "
        "fp16 would be emulated)"
    )
    module.backbone = _RuntimeBackbone(names, run)
    return seg, _null


MODES: dict[str, tuple[str, str]] = {
    # name: (precision for % of peak, description)
    "fp32": ("fp32", "fp32 eager (today's path, bit-exact with torchvision)"),
    "fp32-cl": ("fp32", "fp32 eager, channels_last"),
    "fp32-fold-cl": ("fp32", "fp32 eager, batch norms folded, channels_last"),
    "bf16-autocast": ("bf16", "bf16 autocast over the whole forward (boxes decoded in bf16)"),
    "bf16-autocast-cl": ("bf16", "bf16 autocast over the whole forward, channels_last"),
    "bf16-dense": ("bf16", "bf16 autocast on the dense layers only, NCHW"),
    "bf16-dense-fold": ("bf16", "bf16 dense layers, batch norms folded, NCHW"),
    "bf16": ("bf16", "SHIPPED --precision bf16: dense layers in bf16, norms folded, channels_last"),
    "compile-fp32": ("fp32", "torch.compile (inductor, freezing) fp32"),
    "compile-bf16": ("bf16", "torch.compile (inductor, freezing) of the shipped bf16 mode"),
    "openvino-fp32": ("fp32", "OpenVINO CPU, INFERENCE_PRECISION_HINT f32"),
    "openvino-bf16": ("bf16", "OpenVINO CPU, INFERENCE_PRECISION_HINT bf16"),
    "onnxruntime": ("fp32", "ONNX Runtime CPU execution provider"),
}
DEFAULT_MODES = (
    "fp32,fp32-cl,fp32-fold-cl,bf16-autocast,bf16-autocast-cl,bf16-dense,bf16-dense-fold,bf16,"
    "compile-fp32,compile-bf16,openvino-fp32,openvino-bf16,onnxruntime"
)


def build_mode(name: str, seg: Segmenter, image: np.ndarray, threads: int, notes: list[str]) -> Runner:
    simple = {
        "fp32": setup_fp32,
        "fp32-cl": setup_fp32_cl,
        "fp32-fold-cl": setup_fp32_fold_cl,
        "bf16-autocast": setup_bf16_whole,
        "bf16-autocast-cl": setup_bf16_whole_cl,
        "bf16-dense": setup_bf16_dense,
        "bf16-dense-fold": setup_bf16_dense_fold,
        "bf16": setup_bf16_shipped,
    }
    if name in simple:
        return simple[name](seg)
    if name == "compile-fp32":
        return setup_compile_fp32(seg, notes, image)
    if name == "compile-bf16":
        return setup_compile_bf16(seg, notes, image)
    if name == "openvino-fp32":
        return setup_openvino_fp32(seg, notes, image, threads)
    if name == "openvino-bf16":
        return setup_openvino_bf16(seg, notes, image, threads)
    if name == "onnxruntime":
        return setup_onnxruntime(seg, notes, image, threads)
    raise SystemExit(f"unknown mode {name!r}; choose from {', '.join(MODES)}")


# --------------------------------------------------------------------------- measuring
def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load {one:.1f}/{five:.1f}/{fifteen:.1f}"


def machine_line() -> str:
    from bench.common import machine
    from segcli.models.precision import cpu_bf16_feature

    return (
        f"{machine()}; CPU capability {torch.backends.cpu.get_cpu_capability()}, "
        f"native bf16: {cpu_bf16_feature() or 'no'}"
    )


def matmul_peak(dtype: torch.dtype, n: int = 4096, repeats: int = 5) -> tuple[float, float]:
    """Best (GFLOP per wall second, GFLOP per CPU second) of an (n x n) @ (n x n) matmul in ``dtype``."""
    a = torch.randn(n, n).to(dtype)
    b = torch.randn(n, n).to(dtype)
    torch.mm(a, b)
    best_wall = best_cpu = float("inf")
    for _ in range(repeats):
        with timed() as t:
            torch.mm(a, b)
        best_wall, best_cpu = min(best_wall, t[0]), min(best_cpu, t[1])
    flop = 2 * n**3 / 1e9
    return flop / best_wall, flop / best_cpu


def count_gflops(seg: Segmenter, image: np.ndarray) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with torch.inference_mode(), counter:
        seg([image])
    return counter.get_total_flops() / 1e9


@contextlib.contextmanager
def timed() -> Iterator[list[float]]:
    out: list[float] = []
    w0, c0 = time.perf_counter(), time.process_time()
    yield out
    out.extend([time.perf_counter() - w0, time.process_time() - c0])


@dataclass
class ModelResult:
    label: str
    gflops: float
    wall: dict[str, list[float]]  # mode -> seconds per round
    cpu: dict[str, list[float]]
    notes: dict[str, list[str]]  # every mode tried, in order
    detections: dict[str, int]


def bench_model(
    label: str, seg: Segmenter, image: np.ndarray, modes: list[str], rounds: int, threads: int
) -> ModelResult:
    _MODEL_INDEX[0] += 1
    print(f"\n== {label}: image {image.shape[1]}x{image.shape[0]}, {load()}", flush=True)
    gflops = count_gflops(seg, image)
    print(f"GFLOPs per image (FlopCounterMode, fp32 forward): {gflops:.1f}", flush=True)
    runners: dict[str, Runner] = {}
    notes: dict[str, list[str]] = {}
    detections: dict[str, int] = {}
    for name in modes:
        notes[name] = []
        t0 = time.perf_counter()
        try:
            runner = build_mode(name, seg, image, threads, notes[name])
            s, ctx = runner
            with torch.inference_mode(), ctx():
                [inst] = s([image])  # warm-up
            detections[name] = len(inst)
            runners[name] = runner
        except Unavailable as exc:
            notes[name].append(f"UNAVAILABLE: {exc}")
        except Exception as exc:
            notes[name].append(f"FAILED: {_first_line(exc)}")
        print(
            f"  setup {name}: {time.perf_counter() - t0:.1f} s wall; " + "; ".join(notes[name]),
            flush=True,
        )
    wall: dict[str, list[float]] = {n: [] for n in runners}
    cpu: dict[str, list[float]] = {n: [] for n in runners}
    for r in range(rounds):
        for name, (s, ctx) in runners.items():
            with torch.inference_mode(), ctx(), timed() as t:
                s([image])
            wall[name].append(t[0])
            cpu[name].append(t[1])
        print(f"  round {r + 1}/{rounds} done, {load()}", flush=True)
    return ModelResult(label, gflops, wall, cpu, notes, detections)


def report(result: ModelResult, peaks: dict[str, float], threads: int) -> list[dict[str, object]]:
    gflops, wall, cpu, notes = result.gflops, result.wall, result.cpu, result.notes
    base = statistics.median(wall["fp32"]) if "fp32" in wall else None
    base_cpu = statistics.median(cpu["fp32"]) if "fp32" in cpu else None
    rows = []
    print(f"\n{result.label}: {gflops:.1f} GFLOPs/image, {threads} thread(s), {load()}")
    head = (
        f"{'mode':18s} {'s/img wall':>10s} {'CPU s/img':>9s} {'GFLOP/s':>8s} {'/CPU-s':>7s} {'% peak':>7s} "
        f"{'x fp32':>7s} {'x fp32 CPU':>10s}  description"
    )
    print(head)
    for name in notes:
        precision, description = MODES[name]
        if name not in wall:
            print(
                f"{name:18s} {'-':>10s} {'-':>9s} {'-':>8s} {'-':>7s} {'-':>7s} {'-':>10s}  {notes[name][-1]}"
            )
            rows.append({"mode": name, "available": False, "notes": notes[name]})
            continue
        w = statistics.median(wall[name])
        c = statistics.median(cpu[name])
        rate = gflops / w
        rate_cpu = gflops / c
        pct = 100 * rate_cpu / peaks[precision]
        print(
            f"{name:18s} {w:10.3f} {c:9.3f} {rate:8.1f} {rate_cpu:7.1f} {pct:6.1f}% "
            f"{(base / w if base else float('nan')):6.2f}x "
            f"{(base_cpu / c if base_cpu else float('nan')):9.2f}x"
            f"  {description}"
        )
        for note in notes[name]:
            print(f"{'':20s}{note}")
        rows.append(
            {
                "mode": name,
                "available": True,
                "description": description,
                "seconds_wall_median": round(w, 4),
                "seconds_cpu_median": round(c, 4),
                "seconds_wall": [round(v, 4) for v in wall[name]],
                "gflops_per_wall_s": round(rate, 1),
                "gflops_per_cpu_s": round(rate_cpu, 1),
                "percent_of_peak": round(pct, 1),
                "peak": precision,
                "speedup_wall": round(base / w, 3) if base else None,
                "speedup_cpu": round(base_cpu / c, 3) if base_cpu else None,
                "notes": notes[name],
            }
        )
    return rows


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", choices=("coco", "blocks", "both"), default="both")
    p.add_argument("--modes", default=DEFAULT_MODES, help=f"comma-separated, from: {', '.join(MODES)}")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    p.add_argument("--min-size", type=int, default=800, help="COCO model input short side")
    p.add_argument("--score-threshold", type=float, default=0.0)
    p.add_argument("--json", type=Path, default=None)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    from segcli.core.settings import Settings
    from segcli.inference.segmenter import Segmenter
    from segcli.io.images import read_image

    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    unknown = [m for m in modes if m not in MODES]
    if unknown:
        raise SystemExit(f"unknown mode {unknown[0]!r}; choose from {', '.join(MODES)}")
    print(machine_line())
    print(f"{load()}; {args.threads} thread(s); modes interleaved, median of {args.rounds} rounds")
    measured = {"fp32": matmul_peak(torch.float32), "bf16": matmul_peak(torch.bfloat16)}
    peaks = {k: v[1] for k, v in measured.items()}
    print(
        "measured peak (best of 5, 4096^3 matmul), per wall second / per CPU second: "
        + ", ".join(f"{k} {w:.0f} / {c:.0f} GFLOP/s" for k, (w, c) in measured.items())
        + f"; {load()}",
        flush=True,
    )
    results = []
    if args.model in ("coco", "both"):
        ckpt = random_coco_checkpoint(OUT / "coco-random.pt")
        photo = make_photo(OUT / "photo-768x576.jpg", (768, 576))
        image = read_image(photo).pixels
        settings = Settings(score_threshold=args.score_threshold, min_size=args.min_size)
        seg = Segmenter("coco", weights=ckpt, device="cpu", settings=settings, progress=False)
        label = f"COCO architecture (maskrcnn_resnet50_fpn, random weights), min size {args.min_size}"
        results.append(bench_model(label, seg, image, modes, args.rounds, args.threads))
    if args.model in ("blocks", "both"):
        from segcli.models.blocks.scenes import HELDOUT_SEED_BASE, render_scene

        image = render_scene(HELDOUT_SEED_BASE + 500_000, size=(512, 384)).image
        settings = Settings(score_threshold=args.score_threshold)
        seg = Segmenter("blocks", device="cpu", settings=settings, progress=False)
        label = "blocks model (bundled weights), 512x384"
        results.append(bench_model(label, seg, image, modes, args.rounds, args.threads))
    models = [
        {"label": r.label, "gflops": round(r.gflops, 1), "modes": report(r, peaks, args.threads)}
        for r in results
    ]
    out = {
        "machine": machine_line(),
        "threads": args.threads,
        "peak_gflops_per_wall_s": {k: round(v[0], 1) for k, v in measured.items()},
        "peak_gflops_per_cpu_s": {k: round(v[1], 1) for k, v in measured.items()},
        "models": models,
    }
    print(f"\nfinished, {load()}")
    write_json(args.json, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
