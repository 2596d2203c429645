"""Text as the drawing libraries can take it: every label comes from a model's class names or
a ground truth's categories, which may hold any character."""

from __future__ import annotations


def _escaped(ch: str) -> str:
    return repr(ch)[1:-1]


def cv_text(text: str) -> str:
    """``text`` as OpenCV's Hershey fonts draw it: printable ASCII; control characters as
    escapes (``\\n``), other characters as ``?`` (what OpenCV would show; a lone surrogate, from
    a name that is not UTF-8, would crash it: a segfault)."""
    out = []
    for ch in str(text):
        if " " <= ch <= "~":
            out.append(ch)
        elif ord(ch) < 32 or ord(ch) == 127:
            out.append(_escaped(ch))
        else:
            out.append("?")
    return "".join(out)


def plain_text(text: str) -> str:
    """``text`` as one line Pillow can draw: control characters and lone surrogates as
    escapes (``\\n``, ``\\udcff``), everything else as it is (Pillow refuses a newline in
    anchored text and cannot encode a lone surrogate)."""
    raw = str(text)
    if not raw.isprintable():
        raw = "".join(ch if ch.isprintable() else _escaped(ch) for ch in raw)
    return raw
