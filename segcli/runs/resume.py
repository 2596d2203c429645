"""Resuming: which inputs are complete, and the refusal to mix results of other settings or
weights into an output folder (checked against run.json and every per-image JSON found)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from segcli.core.errors import SegcliError
from segcli.core.jsonio import parse_json
from segcli.outputs.plans import OutputPlan, read_record
from segcli.runs.engines.base import ItemResult, Job
from segcli.runs.video import earlier_failure

if TYPE_CHECKING:
    pass


def _settings_diff(old: object, new: dict[str, Any]) -> str:
    """``key old -> new`` for every setting that differs, a key on one side only too (``tile``
    is recorded only with tiling)."""
    old_settings = old if isinstance(old, dict) else {}
    keys = list(new) + [k for k in old_settings if k not in new]
    return "; ".join(
        f"{k} {old_settings.get(k)!r} -> {new.get(k)!r}" for k in keys if old_settings.get(k) != new.get(k)
    )


def check_record(record: dict[str, Any], job: Job, where: Path) -> None:
    """Refuse a record (per-image JSON or ``run.json``) of other settings or weights than ``job``'s."""
    settings = record.get("settings")
    if isinstance(settings, dict) and "precision" not in settings:
        settings = {**settings, "precision": "fp32"}  # a record from before --precision
    if settings != job.settings:
        diff = _settings_diff(settings, job.settings)
        raise SegcliError(
            f"{where} holds results made with other settings ({diff}); "
            "pass --overwrite to redo them, or choose another --output"
        )
    model = record.get("model")
    if not isinstance(model, dict) or model.get("sha256") != job.model_info.get("sha256"):
        weights = model.get("weights") if isinstance(model, dict) else None
        raise SegcliError(
            f"{where} holds results of other weights ({weights}); "
            "pass --overwrite to redo them, or choose another --output"
        )


def _check_polygons(record: dict[str, Any], job: Job, where: Path) -> None:
    """Refuse a per-image JSON with polygons into a run without them, or the other way round."""
    items = [i for i in record["instances"] if isinstance(i, dict)]
    if not items or "json" not in job.save:
        return  # no instance: the record is the same either way
    was = "polygons" in items[0]
    if was != ("polygons" in job.save):
        raise SegcliError(
            f"{where} holds JSON {'with' if was else 'without'} polygons; pass --overwrite to redo it "
            f"{'without' if was else 'with'} them, or choose another --output"
        )


def partition_plans(
    plans: Sequence[OutputPlan], job: Job, *, overwrite: bool = False
) -> tuple[list[ItemResult], list[OutputPlan]]:
    """Split ``plans`` into complete ones (as ``skipped`` results; a video an earlier run
    found damaged as ``failed``) and those to do.

    Complete means: every output of ``job.save`` exists and the per-image JSON parses as a
    whole ``segcli.instances/1`` record (an empty or truncated one is redone). Any per-image
    JSON found, saved or not, must hold ``job``'s settings and weights: otherwise this raises
    (results of two settings never mix in one folder, whatever stopped the earlier run).
    With ``overwrite`` everything is to do.
    """
    if overwrite:
        return [], list(plans)
    skipped: list[ItemResult] = []
    todo: list[OutputPlan] = []
    for plan in plans:
        paths = plan.paths(job.save)
        if plan.is_video:  # a video's JSON is its own record (segcli.runs.video)
            if all(path.exists() for path in paths.values()):
                earlier = earlier_failure(paths["json"])
                if earlier is not None:
                    reason = f"{earlier} (found by an earlier run; --overwrite tries again)"
                    skipped.append(ItemResult(plan, "failed", reason=reason))
                else:
                    skipped.append(ItemResult(plan, "skipped"))
            else:
                todo.append(plan)
            continue
        json_path = plan.paths(["json"])["json"]
        record = read_record(json_path) if json_path.is_file() else None
        if record is not None:
            check_record(record, job, json_path)
            _check_polygons(record, job, json_path)
        complete = all(p.exists() for p in paths.values()) and ("json" not in paths or record is not None)
        if complete:
            instances = len(record["instances"]) if record is not None else 0
            skipped.append(ItemResult(plan, "skipped", instances))
        else:
            todo.append(plan)
    return skipped, todo


def check_previous_run(out_dir: Path, job: Job, video: dict[str, Any] | None = None) -> None:
    """Refuse to mix results of other settings or weights (or video settings) into ``out_dir``.

    Reads ``run.json``, written at the start of every run (so this holds after a kill or a
    power cut too); an unreadable one proves nothing, and :func:`partition_plans` checks
    each per-image JSON instead.
    """
    previous = out_dir / "run.json"
    if not previous.is_file():
        return
    try:
        old = parse_json(previous.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return
    if not isinstance(old, dict):
        return
    check_record(old, job, out_dir)
    if video is not None and isinstance(old.get("video"), dict) and old["video"] != video:
        diff = [f"{k} {old['video'].get(k)!r} -> {v!r}" for k, v in video.items() if old["video"].get(k) != v]
        raise SegcliError(
            f"{out_dir} holds videos made with other video settings ({'; '.join(diff)}); "
            "pass --overwrite to redo them, or choose another --output"
        )
    was = "polygons" in old.get("save", ())
    if was != ("polygons" in job.save) and "json" in job.save:
        raise SegcliError(
            f"{out_dir} holds JSON {'with' if was else 'without'} polygons; pass --overwrite to redo it "
            f"{'without' if was else 'with'} them, or choose another --output"
        )
