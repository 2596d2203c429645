"""A Griffe extension for the API pages (mkdocs.yml loads it): segcli's docstrings are written
with Sphinx's inline roles, which Markdown would show as they are. Each role becomes a code span
(``:func:`~segcli.runs.batch.run_batch``` -> ``run_batch``, without the ``~`` the whole path), and a
paragraph ending in ``::`` (reST's literal block) ends in ``:``, its indented block being a
Markdown code block already, and doctest lines (``>>>``) go in a code block."""

from __future__ import annotations

import re
from typing import Any

import griffe

ROLE = re.compile(r":(?:py:)?(?:class|func|meth|mod|data|attr|exc|obj|const):`(~?)([^`]+)`")


def _role(match: re.Match[str]) -> str:
    tilde, target = match.groups()
    return f"`{target.rsplit('.', 1)[-1] if tilde else target}`"


def _fence_doctests(text: str) -> str:
    """Runs of ``>>>`` lines (doctest examples) in a ``pycon`` block: Markdown would read them
    as nested quotes."""
    out: list[str] = []
    block: list[str] = []
    for line in [*text.splitlines(), ""]:
        if line.lstrip().startswith((">>>", "...")) and (block or line.lstrip().startswith(">>>")):
            block.append(line.strip())
            continue
        if block:
            out += ["```pycon", *block, "```"]
            block = []
        out.append(line)
    return "\n".join(out[:-1])


def plain_markdown(text: str) -> str:
    """``text`` (a docstring) with Sphinx roles as code spans, ``::`` blocks and doctests as
    Markdown's."""
    text = ROLE.sub(_role, text)
    text = re.sub(r"(?<=\S)::$", ":", text, flags=re.M)  # "Example::" -> "Example:"
    text = re.sub(r"[ \t]*::$", "", text, flags=re.M)  # "an example ::" and a lone "::" go
    return _fence_doctests(text)


class SphinxRoles(griffe.Extension):
    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = plain_markdown(obj.docstring.value)
