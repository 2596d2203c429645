"""segcli --help does not pay for rich.markdown (pygments) or rich.traceback (attrs), and the
stand-ins that keep them out hand over to the real modules on first use."""

from __future__ import annotations

import subprocess
import sys

CHECK = (
    "import sys\nsys.argv = {argv!r}\nfrom segcli.cli import main\n"
    "try:\n    main()\n    status = 0\nexcept SystemExit as stop:\n    status = stop.code or 0\n"
    "print(status, sorted(m for m in ('pygments', 'attr', 'markdown_it') if m in sys.modules))"
)


def _loaded(argv: list[str]) -> str:
    code = CHECK.format(argv=argv)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout


def test_help_imports_no_pygments_attrs_or_markdown_it() -> None:
    for argv in (["segcli", "--help"], ["segcli", "predict", "--help"], ["segcli", "classes"]):
        out = _loaded(argv)
        assert out.strip().splitlines()[-1] == "0 []", (argv, out)  # the command succeeded, too


def test_the_stand_ins_hand_over_to_the_real_modules() -> None:
    code = """
import sys
from segcli.cli.fasthelp import defer_unused_rich_modules
for name in ("rich.markdown", "rich.traceback"):
    sys.modules.pop(name, None)
defer_unused_rich_modules()
from rich.markdown import Markdown
from rich.traceback import Traceback
assert "pygments" not in sys.modules
md = Markdown("# title")
import rich.markdown as real
assert type(md) is real.Markdown and isinstance(md, Markdown) and sys.modules["rich.markdown"] is real
try:
    raise ValueError("x")
except ValueError as exc:
    tb = Traceback.from_exception(type(exc), exc, exc.__traceback__)
import rich.traceback
assert type(tb) is rich.traceback.Traceback and rich.traceback.install is not None
print("ok")
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert out.stdout.strip() == "ok", out.stderr
