"""The package layout holds: the layer contract in pyproject.toml is kept, and no module
takes part in an import cycle, in-function imports included, except where the import that
closes the cycle sits inside a function with a comment saying why (lazy torch for --help)."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import grimp

REPO = Path(__file__).resolve().parents[2]


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    counter = 0
    for root in sorted(edges):
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                scc = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    scc.append(member)
                    if member == node:
                        break
                if len(scc) > 1:
                    out.append(sorted(scc))
    return out


def _function_level_lines(module_file: Path) -> set[int]:
    """Line numbers of the import statements inside a function of ``module_file``."""
    tree = ast.parse(module_file.read_text())
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            for inner in ast.walk(node):
                if isinstance(inner, ast.Import | ast.ImportFrom):
                    lines.add(inner.lineno)
    return lines


def test_the_layer_contract_is_kept() -> None:
    result = subprocess.run(
        [sys.executable, "-c", "import importlinter.cli, sys; sys.exit(importlinter.cli.lint_imports())"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0 and "0 broken" in result.stdout, result.stdout + result.stderr


def test_no_import_cycles_but_commented_lazy_imports() -> None:
    graph = grimp.build_graph("segcli")
    edges = {m: set(graph.find_modules_directly_imported_by(m)) for m in graph.modules}
    lazy_allowed: set[tuple[str, str]] = set()
    for scc in _cycles(edges):
        for importer in scc:
            path = REPO / (importer.replace(".", "/") + ".py")
            if not path.exists():
                path = REPO / importer.replace(".", "/") / "__init__.py"
            in_function = _function_level_lines(path)
            source = path.read_text().splitlines()
            for imported in edges[importer] & set(scc):
                details = graph.get_import_details(importer=importer, imported=imported)
                lines = [d["line_number"] for d in details]
                if lines and all(n in in_function and "#" in source[n - 1] for n in lines):
                    lazy_allowed.add((importer, imported))
    for importer, imported in lazy_allowed:
        edges[importer].discard(imported)
    assert _cycles(edges) == [], "import cycles (module-level, or an in-function import with no comment)"
    assert lazy_allowed == {("segcli.models.blocks.spec", "segcli.models.blocks.arch")}, lazy_allowed


def test_the_cycle_finder_finds_cycles() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_openmp_threads_wait_passively_unless_the_user_chose() -> None:
    """segcli sets OMP_WAIT_POLICY=PASSIVE before torch loads (the CLI, the library and the Ray
    workers all import the segcli package first); a value the user set is kept."""
    code = "import segcli, os, torch; print(os.environ['OMP_WAIT_POLICY'])"
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    run = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert run.stdout.strip() == "PASSIVE"
    env["OMP_WAIT_POLICY"] = "ACTIVE"
    run = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert run.stdout.strip() == "ACTIVE"
