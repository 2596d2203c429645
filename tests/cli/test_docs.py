"""The documentation: the command-line reference is generated from the Typer app and must not
drift from it; the README and the docs link to files that exist."""

from __future__ import annotations

import difflib
import importlib.util
import re
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[2]
DOCS = REPO / "docs"


def _gen_cli() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_cli", DOCS / "gen_cli.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cli_reference_matches_the_typer_app() -> None:
    """docs/reference/cli.md is what docs/gen_cli.py makes of segcli.cli:app now."""
    gen = _gen_cli()
    committed = gen.OUT.read_text(encoding="utf-8") if gen.OUT.is_file() else ""
    fresh = gen.render()
    if fresh != committed:
        diff = difflib.unified_diff(
            committed.splitlines(), fresh.splitlines(), "committed", "from the CLI", lineterm="", n=0
        )
        shown = "\n".join(list(diff)[:20])
        pytest.fail(
            "docs/reference/cli.md is out of date with the CLI: regenerate it with "
            f"`python docs/gen_cli.py` and commit it\n{shown}"
        )


def test_cli_reference_covers_every_command_and_option() -> None:
    import typer.main

    from segcli.cli import app

    text = _gen_cli().render()
    root = typer.main.get_command(app)
    commands = [(f"segcli {name}", cmd) for name, cmd in root.commands.items()]
    commands += [(f"segcli compare {name}", cmd) for name, cmd in root.commands["compare"].commands.items()]
    for path, command in commands:
        assert f"\n## {path}\n" in text, path
        section = text.split(f"\n## {path}\n", 1)[1].split("\n## ", 1)[0]
        for param in command.params:
            if not param.hidden and param.param_type_name == "option":
                assert f"`{param.opts[0]}`" in section, (path, param.opts[0])
    assert "{" not in "".join(re.findall(r"^\| .*$", text, flags=re.M)), "a help placeholder left unfilled"


def test_cli_reference_does_not_depend_on_the_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    gen = _gen_cli()
    monkeypatch.setenv("COLUMNS", "40")
    narrow = gen.render()
    monkeypatch.setenv("COLUMNS", "250")
    assert gen.render() == narrow


def test_readme_links_and_images_exist() -> None:
    """Every relative link and image of the README points at a file of the repository."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    targets = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text)
    local = [t for t in targets if "://" not in t and not t.startswith("mailto:")]
    assert local, "the README links to the docs"
    missing = [t for t in local if not (REPO / t).exists()]
    assert not missing, f"README links to missing files: {missing}"


def test_readme_quick_start_is_the_two_commands() -> None:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    block = text.split("## Quick start", 1)[1].split("```bash\n", 1)[1].split("```", 1)[0]
    commands = [line.split("#", 1)[0].strip() for line in block.splitlines() if line.strip()]
    assert commands == ["pip install . && segcli demo", 'pip install -e ".[test]" && python -m pytest -q']


def test_every_page_is_in_the_site_navigation() -> None:
    """mkdocs --strict warns about pages left out of nav; this says which, without mkdocs."""
    config = (REPO / "mkdocs.yml").read_text(encoding="utf-8")
    listed = set(re.findall(r":\s+([\w/.-]+\.md)\s*$", config, flags=re.M))
    pages = {p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md")}
    assert pages == listed, f"not in nav: {sorted(pages - listed)}; missing: {sorted(listed - pages)}"
