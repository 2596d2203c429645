"""Did-you-mean suggestions for mistyped option, command, model and class names (torch-free)."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def suggest(word: str, choices: Iterable[str], *, limit: int = 3) -> list[str]:
    """The ``choices`` closest to ``word``, best first; empty when nothing is close.

    A choice that starts with ``word`` (``--scor`` -> ``--score-threshold``) or contains it
    (``semantic`` -> ``semantic-vs-instance``) comes first, then the choices
    :func:`difflib.get_close_matches` finds similar (``--nms-iuo`` -> ``--nms-iou``).
    Leading dashes and case are ignored when comparing.
    """
    options = list(dict.fromkeys(choices))
    key = word.lstrip("-").casefold()
    if not key:
        return []
    keyed = {choice: choice.lstrip("-").casefold() for choice in options}
    prefix = [c for c, k in keyed.items() if k.startswith(key)]
    inside = [c for c, k in keyed.items() if key in k and c not in prefix] if len(key) >= 3 else []
    by_key: dict[str, list[str]] = {}
    for choice, k in keyed.items():
        by_key.setdefault(k, []).append(choice)
    similar = [
        c
        for k in difflib.get_close_matches(key, list(by_key), n=limit, cutoff=0.6)
        for c in by_key[k]
        if c not in prefix and c not in inside
    ]
    return (sorted(prefix, key=len) + sorted(inside, key=len) + similar)[:limit]


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` or ``""``: a tail for an error message."""
    found = suggest(word, choices)
    if not found:
        return ""
    return " (did you mean " + " or ".join(repr(f) for f in found) + "?)"


# --------------------------------------------------------------------------- other tools' options
_INPUT = "segcli takes its inputs as arguments: segcli predict IMAGE... (files, videos), segcli batch FOLDER"
_SIZE = "segcli's input size is --min-size (short side) and --max-size (cap on the long side)"
_OUT = "segcli writes into -o/--output FOLDER"
FOREIGN_OPTIONS: dict[str, str] = {
    # Ultralytics (yolo predict ... / YOLOv5-8 detect.py), Detectron2's demo, MMDetection's demos
    "source": _INPUT,
    "input": _INPUT,
    "video-input": _INPUT,
    "imgsz": _SIZE,
    "img-size": _SIZE,
    "img": _SIZE,
    "conf": "segcli's is --score-threshold (-c)",
    "conf-thres": "segcli's is --score-threshold (-c)",
    "conf-threshold": "segcli's is --score-threshold (-c)",
    "confidence-threshold": "segcli's is --score-threshold (-c)",
    "score-thr": "segcli's is --score-threshold (-c)",
    "pred-score-thr": "segcli's is --score-threshold (-c)",
    "iou": "segcli's is --nms-iou",
    "iou-thres": "segcli's is --nms-iou",
    "max-det": "segcli's is --max-detections",
    "agnostic-nms": "segcli's NMS is per class; --nms-iou sets its IoU",
    "save-txt": "segcli's is --save yolo (YOLO-seg polygons; add ,json to keep the JSON)",
    "save-conf": "segcli's JSON has every score: --save json",
    "save-crop": "segcli's is --save masks (one PNG per instance)",
    "save-json": "segcli's is --save json, or --json - for JSON Lines on stdout",
    "print-result": "segcli's is --json - (JSON Lines on stdout)",
    "project": _OUT,
    "name": _OUT,
    "out-dir": _OUT,
    "output-dir": _OUT,
    "exist-ok": "segcli resumes into an existing -o folder; --overwrite redoes it",
    "weights-path": "segcli's is --weights PATH",
    "checkpoint": "segcli's is --weights PATH",
    "config-file": "segcli's is --model NAME (segcli models lists them)",
    "config": "segcli's is --model NAME (segcli models lists them)",
    "opts": "segcli takes each setting as its own option: segcli predict --help lists them",
    "half": "segcli's is --precision fp16 (CUDA) or --precision bf16 (CPUs with AVX-512 BF16/AMX)",
    "vid-stride": "segcli's is --stride",
    "batch": "segcli's is --batch-size",
    "line-width": "segcli draws outlines sized to the image; no option",
    "show": "segcli writes overlays (--save overlay) instead of opening a window",
}
"""Options users bring from Ultralytics, Detectron2 and MMDetection (dashes or underscores),
and what segcli calls them: said in the unknown-option error instead of a guess."""


def foreign_option(option: str) -> str | None:
    """What segcli calls another tool's ``option`` (``--imgsz``, ``--conf_thres``), or None."""
    key = option.split("=", 1)[0].lstrip("-").replace("_", "-").casefold()
    return FOREIGN_OPTIONS.get(key)
