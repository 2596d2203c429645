"""Trees of any depth: 1500+ nested folders (whole paths under 4096 bytes) are walked, planned,
written, resumed and cleaned without meeting Python's recursion limit."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from segcli.io.files import make_folders, temp_name
from segcli.runs.batch import BatchOptions, run_batch
from segcli.runs.discovery import discover, read_list
from tests.fakes import FakeSegmenter


def _png(fd: int, name: str, width: int) -> None:
    """A small PNG written through a folder descriptor (no long path ever built)."""
    out = os.open(name, os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd)
    with os.fdopen(out, "wb") as fh:
        Image.fromarray(np.full((6, width, 3), width, np.uint8)).save(fh, format="PNG")


def _deep(root: Path, depth: int, *, branch_every: int = 0, loop: bool = False) -> list[str]:
    """``root/d/d/.../x.png`` ``depth`` folders down (made through descriptors, as ``mkdir -p``
    cannot); with ``branch_every``, a side folder ``b/`` with an image every that many levels;
    with ``loop``, a link back to ``root`` at the bottom. Returns the images' relative paths."""
    root.mkdir(parents=True)
    fd = os.open(root, os.O_RDONLY)
    rel: list[str] = []
    made: list[str] = []
    try:
        for level in range(depth):
            if branch_every and level % branch_every == 0:
                os.mkdir("b", dir_fd=fd)
                side = os.open("b", os.O_RDONLY, dir_fd=fd)
                _png(side, "s.png", 10 + level % 50)
                os.close(side)
                made.append("/".join([*rel, "b", "s.png"]))
            os.mkdir("d", dir_fd=fd)
            inner = os.open("d", os.O_RDONLY, dir_fd=fd)
            os.close(fd)
            fd = inner
            rel.append("d")
        _png(fd, "x.png", 9)
        made.append("/".join([*rel, "x.png"]))
        if loop:
            os.symlink(root, "loop", dir_fd=fd)
    finally:
        os.close(fd)
    return made


def _remove(root: Path) -> None:
    """``rm -rf root`` through folder descriptors, one level at a time: linear in the tree's
    size (``shutil.rmtree`` recurses per level; ``rm -rf`` resolves ever longer paths)."""
    if not root.exists():
        return
    top = os.open(root.parent, os.O_RDONLY)
    stack: list[tuple[int, str, list[os.DirEntry[str]]]] = []

    def push(parent: int, name: str) -> None:
        fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=parent)
        with os.scandir(fd) as listing:
            stack.append((fd, name, list(listing)))

    push(top, root.name)
    while stack:
        fd, name, entries = stack[-1]
        if entries:
            entry = entries.pop()
            if entry.is_dir(follow_symlinks=False):
                push(fd, entry.name)
            else:
                os.unlink(entry.name, dir_fd=fd)
            continue
        stack.pop()
        os.close(fd)
        os.rmdir(name, dir_fd=stack[-1][0] if stack else top)
    os.close(top)


@pytest.fixture
def scratch(tmp_path: Path) -> Iterator[Path]:
    """A folder whose deep trees are removed afterwards (pytest's own cleanup recurses per level)."""
    yield tmp_path
    for child in list(tmp_path.iterdir()):
        _remove(child) if child.is_dir() and not child.is_symlink() else child.unlink()


@pytest.mark.parametrize(("depth", "branch_every", "loop"), [(1500, 0, False), (1700, 400, True)])
def test_a_deep_tree_is_segmented_resumed_and_cleaned(
    scratch: Path, depth: int, branch_every: int, loop: bool
) -> None:
    root = scratch / "i"
    made = _deep(root, depth, branch_every=branch_every, loop=loop)
    assert len(os.fsencode(str(root / made[-1]))) < 4096
    found = discover(root)
    assert [p.relative_to(root).as_posix() for p in found.files] == sorted(made, key=_walk_order)
    assert found.problems == []
    out = scratch / "o"
    save = ("json", "masks", "yolo")
    outcome = run_batch(root, out, FakeSegmenter, options=BatchOptions(save=save))
    assert outcome.summary["counts"]["done"] == len(made), outcome.summary["failed"][:1]
    bottom = out.joinpath(*made[-1].split("/")).parent
    (bottom / temp_name("x.png.json")).write_text("{")  # a killed run's leftover, 1500 down
    (bottom / "x.png.json").unlink()
    again = run_batch(root, out, FakeSegmenter, options=BatchOptions(save=save))
    counts = again.summary["counts"]
    assert (counts["done"], counts["skipped"], again.stale_removed) == (1, len(made) - 1, 1)
    coco = json.loads((out / "coco.json").read_text())
    assert len(coco["images"]) == len(made)


def _walk_order(rel: str) -> list[str]:
    """The order discovery gives: depth first, each folder's entries by name."""
    return rel.split("/")


def test_the_walk_order_is_the_recursive_walks(tmp_path: Path) -> None:
    """The loop visits what the recursion visited, in its order (coco.json numbers images by it)."""
    rng = random.Random(3)
    root = tmp_path / "t"
    names = ["a", "a.png", "b", "B.png", "a b", "z.jpg", "é", ".hidden", "a-1"]
    for _ in range(60):
        parts = [rng.choice(names[:3] + names[4:]) for _ in range(rng.randint(0, 4))]
        folder = root.joinpath(*[p for p in parts if not p.endswith((".png", ".jpg"))])
        make_folders(folder)
        image = folder / rng.choice(["x.png", "a.png", "B.png", "z.jpg", ".h.png"])
        if not image.exists() and not (image.is_dir()):
            Image.fromarray(np.zeros((2, 2, 3), np.uint8)).save(image)

    def recursive(folder: Path) -> Iterator[Path]:
        for entry in sorted(os.scandir(folder), key=lambda e: e.name):
            if entry.name.startswith("."):
                continue
            path = folder / entry.name
            if entry.is_dir():
                yield from recursive(path)
            elif path.suffix.lower() in (".png", ".jpg"):
                yield path

    assert discover(root).files == list(recursive(root))


def test_the_cli_walks_a_deep_tree(scratch: Path) -> None:
    from tests import fake_cli
    from tests.conftest import REPO

    made = _deep(scratch / "i", 1100)
    listing = scratch / "list.txt"
    listing.write_text(f"{scratch / 'i' / made[0]}\n")
    root, files = read_list(listing)
    assert files == [scratch / "i" / made[0]] and root == files[0].parent
    deep = scratch / "m" / Path(*["d"] * 1500)
    make_folders(deep)
    make_folders(deep)  # exists: fine
    assert deep.is_dir()
    with pytest.raises(FileExistsError):
        make_folders(scratch / "i" / made[0])  # a file, not a folder
    done = subprocess.run(
        [*fake_cli.COMMAND, "batch", str(scratch / "i"), "-o", str(scratch / "o"), "-q"],
        cwd=REPO,
        env=fake_cli.environment(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads((scratch / "o" / "run.json").read_text())["counts"]["done"] == len(made)
    assert sys.getrecursionlimit() < 1100, "the depth exceeds the recursion limit"
