"""Shell completion offers values, tested through the completion protocol itself: the
environment bash's, zsh's and fish's completion scripts set, and what segcli prints back."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

CODE = "from segcli.cli import main\nmain()"


def _complete(shell: str, line: str) -> list[str]:
    """What ``segcli`` offers for the command ``line`` (ending in a space: a new word) in ``shell``."""
    env = {**os.environ, "_SEGCLI_COMPLETE": f"complete_{shell}"}
    if shell == "bash":
        words = line.split()
        env |= {"COMP_WORDS": line, "COMP_CWORD": str(len(words) if line.endswith(" ") else len(words) - 1)}
    else:
        env |= {"_TYPER_COMPLETE_ARGS": line, "_TYPER_COMPLETE_FISH_ACTION": "get-args"}
    result = subprocess.run(
        [sys.executable, "-c", CODE], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    if shell == "zsh":  # _arguments '*: :(("coco" "coco-v2"))'
        items = out.split("((", 1)[1].rsplit("))", 1)[0].split("\n")
        return [part.strip('"').replace("\\\\:", ":") for part in items]  # zsh escapes ":" as "\\\\:"
    return [item.split("\t")[0] for item in out.splitlines() if item]


LINES = [
    ("segcli predict --model ", ["coco", "coco-v2", "blocks"]),
    ("segcli batch --model bl", ["blocks"]),
    ("segcli predict --model blocks --classes ", ["cube", "sphere", "cylinder"]),
    ("segcli predict -m blocks --classes cube,", ["cube,sphere", "cube,cylinder"]),
    ("segcli eval gt.json imgs --model blocks --classes cy", ["cylinder"]),
    ("segcli predict --classes tooth", ["toothbrush"]),
    ("segcli predict --save +ma", ["+masks"]),
    ("segcli batch --save overlay,j", ["overlay,json"]),
    ("segcli predict --precision ", ["fp32", "bf16", "fp16", "auto"]),
    ("segcli predict --device cu", ["cuda", "cuda:0", "cuda:1"]),
    ("segcli compare semantic-vs-instance --semantic ", ["derived", "deeplabv3", "fcn", "lraspp"]),
]


@pytest.mark.parametrize(("line", "offered"), LINES)
def test_option_values_complete_in_bash(line: str, offered: list[str]) -> None:
    assert _complete("bash", line) == offered


@pytest.mark.parametrize("shell", ["zsh", "fish"])
@pytest.mark.parametrize(("line", "offered"), [LINES[0], LINES[3], LINES[6], LINES[9]])
def test_option_values_complete_in_zsh_and_fish(shell: str, line: str, offered: list[str]) -> None:
    assert _complete(shell, line) == offered


def test_completion_imports_no_torch() -> None:
    code = CODE.replace(
        "main()",
        "try:\n    main()\n    status = 0\nexcept SystemExit as stop:\n    status = stop.code or 0\n"
        "import sys\nprint(status, 'torch' in sys.modules)",
    )
    env = {
        **os.environ,
        "_SEGCLI_COMPLETE": "complete_bash",
        "COMP_WORDS": "segcli predict --model ",
        "COMP_CWORD": "3",
    }
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=False
    )
    *offered, last = result.stdout.splitlines()
    assert last == "0 False", result.stdout + result.stderr
    assert offered == ["coco", "coco-v2", "blocks"], "the completion itself ran"
