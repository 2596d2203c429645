"""Values for shell completion (``segcli --install-completion``): models, classes, outputs,
precisions and devices, from the registry's data (no torch, so a <TAB> answers at once).

Each function is a Typer ``autocompletion`` callback; comma-separated options (``--classes``,
``--save``) complete their last item and keep the ones before it.
"""

from __future__ import annotations

from collections.abc import Iterable

import typer

from segcli.core.settings import PRECISION_CHOICES

DEVICES = ("auto", "cpu", "cuda", "cuda:0", "cuda:1", "mps")
"""What ``--device`` completes to (the real check, which needs torch, runs when the command does)."""


def _starting(incomplete: str, choices: Iterable[str]) -> list[str]:
    low = incomplete.casefold()
    return [c for c in choices if c.casefold().startswith(low)]


def _last_item(incomplete: str, choices: Iterable[str]) -> list[str]:
    """Complete the last comma-separated item of ``incomplete`` from ``choices`` (any case),
    leaving out the items already named."""
    head, sep, last = incomplete.rpartition(",")
    prefix = head + sep
    taken = {item.strip().lstrip("+").casefold() for item in head.split(",") if item.strip()}
    return [prefix + c for c in _starting(last, choices) if c.casefold() not in taken]


def complete_model(incomplete: str) -> list[str]:
    from segcli.models.registry import MODELS

    return _starting(incomplete, MODELS)


def complete_semantic(incomplete: str) -> list[str]:
    from segcli.models.registry import SEMANTIC_MODELS

    return _starting(incomplete, ["derived", *SEMANTIC_MODELS])


def complete_classes(ctx: typer.Context, incomplete: str) -> list[str]:
    """The class names of the ``--model`` given so far (else the default, ``coco``)."""
    from segcli.models.cache import class_names
    from segcli.models.registry import MODELS

    spec = MODELS.get(str(ctx.params.get("model") or "coco").strip().lower())
    if spec is None:
        return []
    return _last_item(incomplete, [name for _, name in class_names(spec)])


def complete_save(incomplete: str) -> list[str]:
    """Output kinds, comma-separated; a leading ``+`` (add to the defaults) is kept."""
    from segcli.outputs.plans import OUTPUT_KINDS

    plus = "+" if incomplete.startswith("+") else ""
    return [plus + c for c in _last_item(incomplete[len(plus) :], OUTPUT_KINDS)]


def complete_precision(incomplete: str) -> list[str]:
    return _starting(incomplete, PRECISION_CHOICES)


def complete_device(incomplete: str) -> list[str]:
    return _starting(incomplete, DEVICES)
