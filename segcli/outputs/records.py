"""The per-image JSON record (``segcli.instances/1``) and the one JSON encoder every output uses."""

from __future__ import annotations

import json
from typing import Any

from segcli.core.instances import Instances
from segcli.core.masks import rle_encode
from segcli.outputs.formats import coco_polygons

SCHEMA = "segcli.instances/1"


# --------------------------------------------------------------------------- JSON
def instances_record(
    instances: Instances,
    *,
    image_path: str,
    model: dict[str, Any],
    settings: dict[str, Any],
    polygons: bool = False,
) -> dict[str, Any]:
    """The ``segcli.instances/1`` JSON object of one image.

    With ``polygons``, each instance also carries its mask as COCO polygons
    (``[[x1, y1, x2, y2, ...], ...]``, holes bridged in; see :mod:`segcli.outputs.formats`).
    """
    height, width = instances.image_size
    items = []
    for i in range(len(instances)):
        x1, y1, x2, y2 = (round(float(v), 2) for v in instances.boxes[i])
        item: dict[str, Any] = {
            "id": i,
            "category_id": int(instances.class_ids[i]),
            "label": instances.class_names[i],
            "score": round(float(instances.scores[i]), 4),
            "box": [x1, y1, x2, y2],
            "area": int(instances.areas[i]),
            "mask": rle_encode(instances.masks[i], instances.mask_boxes[i], instances.image_size),
        }
        if polygons:
            item["polygons"] = coco_polygons(instances, i)
        items.append(item)
    record: dict[str, Any] = {
        "schema": SCHEMA,
        "image": {"path": image_path, "width": width, "height": height},
        "model": model,
        "settings": settings,
        "instances": items,
    }
    tiling = getattr(instances, "tiling", None)  # TiledInstances: what --tile did
    if tiling:
        record["tiling"] = tiling
    return record


def dumps(obj: Any) -> bytes:
    """``obj`` as one line of UTF-8 JSON.

    A path that is not valid UTF-8 (a POSIX file name may hold any bytes) reaches here as a
    string with lone surrogates (Python's ``surrogateescape``: byte 0xff is U+DCFF). They are
    written as JSON escapes (``\\udcff``), so the file is valid UTF-8 and nothing is lost:
    ``os.fsencode(json.loads(text)["image"]["path"])`` gives back the original bytes, and
    ``Path(json.loads(text)["image"]["path"])`` opens the file.
    """
    text = json.dumps(obj, ensure_ascii=False, separators=(",", ":")) + "\n"
    return text.encode("utf-8", JSON_ERRORS)


JSON_ERRORS = "backslashreplace"
"""The codec error handler that writes a lone surrogate as the JSON escape ``\\udcXX``."""
