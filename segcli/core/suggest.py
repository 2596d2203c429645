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
