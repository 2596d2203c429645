"""The result tables the commands print: batch summary, eval, compare, proposals, explain."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from segcli.cli.console import err_console, out_console, plain, say

if TYPE_CHECKING:
    from segcli.evaluation.evaluate import EvalResult
    from segcli.runs.runfiles import RunSummary


def _print_summary(summary: RunSummary, output: Path, coco_path: Path | None) -> None:
    from rich import box
    from rich.table import Table

    from segcli.runs.runfiles import status_title

    counts = summary["counts"]
    table = Table(
        title=f"segcli batch: {status_title(summary)}",
        header_style="bold",
        box=box.SIMPLE_HEAD,
        show_edge=False,
        padding=(0, 1),
        collapse_padding=True,
    )
    # images and video frames are counted apart, each with its own rate (a video is not an image)
    columns = ["done", "skipped", "failed", "instances", "time", "img/s"]
    values = [
        str(counts["done"]),
        str(counts["skipped"]),
        plain(counts["failed"], "red") if counts["failed"] else "0",
        str(counts["instances"]),
        f"{summary['seconds']:.1f} s",
        _rate(summary.get("images_per_second")),
    ]
    if counts.get("videos"):
        columns = [*columns[:4], "videos", "frames", "time", "img/s", "frames/s"]
        values = [*values[:4], str(counts["videos"]), str(counts["frames"]), values[4], values[5]]
        values.append(_rate(summary.get("frames_per_second")))
    for col in columns:
        table.add_column(col, justify="right", no_wrap=True)
    table.add_row(*values)
    out_console().print(table)
    say(f"run report: {output / 'run.json'}")
    if coco_path is not None:
        say(f"COCO file:  {coco_path}")
        results = coco_path.with_name("coco-results.json")
        if results.is_file():
            say(f"COCO results (for COCO.loadRes): {results}")
    yolo = output / "yolo" / "data.yaml"
    if "yolo" in summary.get("save", ()) and yolo.is_file():
        say(f"YOLO-seg dataset: {yolo}")


def _rate(value: float | None) -> str:
    return f"{value:.2f}" if value else "-"


def _print_eval_warnings(result: EvalResult) -> None:
    """Warnings go to stderr, also with --quiet (errors and warnings only)."""
    for warning in result.warnings:
        say(warning, console=err_console(), label="warning:", style="yellow")


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _print_eval(result: EvalResult) -> None:
    from rich.table import Table

    from segcli.evaluation.evaluate import TABLE_STATS

    title = plain(f"{Path(result.ground_truth).name}: {result.images} images, {result.detections} detections")
    table = Table(title=title, header_style="bold")
    table.add_column("")
    for name in TABLE_STATS:
        table.add_column("AR@100" if name == "AR100" else name, justify="right")
    for iou_type, label in (("bbox", "box"), ("segm", "mask")):
        if iou_type in result.stats:
            table.add_row(label, *(_fmt(result.stats[iou_type][name]) for name in TABLE_STATS))
    out_console().print(table)
    per_class = Table(title="per class: ground-truth instances, detections, AP", header_style="bold")
    per_class.add_column("class", no_wrap=True)
    per_class.add_column("GT", justify="right")
    per_class.add_column("det", justify="right")
    types = [t for t in ("bbox", "segm") if t in result.stats]
    for iou_type in types:
        prefix = "box " if iou_type == "bbox" else "mask "
        for name in ("AP", "AP50", "AP75"):
            per_class.add_column(f"{prefix if name == 'AP' else ''}{name}", justify="right")
    for cls in result.classes:
        per_class.add_row(
            plain(cls.name),
            str(cls.instances),
            str(cls.detections),
            *(_fmt(cls.ap[t][name]) for t in types for name in ("AP", "AP50", "AP75")),
        )
    out_console().print(per_class)
    _print_eval_warnings(result)
    for note in result.notes:
        say(f"note: {note}", console=err_console())


def _print_compare(record: dict[str, Any]) -> None:
    from rich.table import Table

    table = Table(
        title=plain(f"{Path(record['image']['path']).name}: semantic ({record['semantic']}) vs instance"),
        show_header=True,
        header_style="bold",
    )
    table.add_column("label")
    for col in ("instances", "semantic regions", "semantic pixels", "instance pixels"):
        table.add_column(col, justify="right")
    for row in record["classes"]:
        table.add_row(
            plain(row["label"]),
            str(row["instances"]),
            str(row["semantic_regions"]),
            str(row["semantic_pixels"]),
            str(row["instance_pixels"]),
        )
    if not record["classes"]:
        table.add_row("[dim](no objects found)[/]", "0", "0", "0", "0")
    out_console().print(table)


def _print_proposals(record: dict[str, Any]) -> None:
    from rich.table import Table

    ref = record["reference_n"]
    table = Table(
        title=plain(f"{Path(record['image']['path']).name}: RPN proposals N (agreement with N = {ref})"),
        show_header=True,
        header_style="bold",
    )
    for col in ("N", "s/image", "detections", "matched", "agreement", "mean mask IoU"):
        table.add_column(col, justify="right")
    for run in record["runs"]:
        share, iou = run["agreement"], run["mean_iou"]
        table.add_row(
            str(run["n"]),
            f"{run['seconds_per_image']:.3f}",
            str(run["detections"]),
            f"{run['matched']}/{len(record['runs'][-1]['instances'])}",
            "-" if share is None else f"{share:.2f}",
            "-" if iou is None else f"{iou:.3f}",
        )
    out_console().print(table)
    say("matched: greedy by score within class at mask IoU >= 0.5, against the largest N")


def _print_explain(record: dict[str, Any]) -> None:
    p, b, inst = record["proposals"], record["box_branch"], record["instance"]
    lines = [
        f"RPN: {p['count']} proposals kept (top N = {p['top_n']}), the first {p['drawn']} drawn",
        f"box branch: {b['proposals']} proposals scored, {b['before_nms']} boxes above "
        f"{b['score_threshold']:g} before NMS, {b['after_nms']} after",
    ]
    if inst is None:
        lines.append("no detection: no mask to follow")
    else:
        size, resized = inst["mask_head"]["size"], inst["resized"]
        lines.append(
            f"mask of detection {inst['id']} ({inst['label']} {inst['score']:.2f}): "
            f"{size[0]}x{size[1]} -> {resized['width']}x{resized['height']} box, "
            f"p > {resized['threshold']:g}: {resized['area']} pixels"
            + ("" if resized["matches_output"] else " (DIFFERS from the segmenter's mask)")
        )
    for line in lines:
        say(line)
