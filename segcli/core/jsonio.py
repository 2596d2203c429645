"""Parsing JSON that segcli did not necessarily write (an output folder's ``run.json`` and
per-image records, a video summary, a training run's files): one exception for every way it
can be bad."""

from __future__ import annotations

import json
from typing import Any


def parse_json(text: str | bytes) -> Any:
    """``json.loads(text)``, but a document nested too deeply (``[[[[...]]]]``, which makes
    Python's parser raise ``RecursionError``) is a ``ValueError`` like any other bad JSON, so
    callers that redo or skip a damaged file on ``ValueError`` do so for this one too."""
    try:
        return json.loads(text)
    except RecursionError:
        raise ValueError("the JSON is nested too deeply") from None
