"""Finding the inputs of a run: a folder tree walked (links followed, loops cut, earlier output
folders skipped), a --from-list file read, and the input/output folder checks."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from segcli.core.errors import SegcliError, UsageError
from segcli.io.images import is_image_path
from segcli.io.video import is_video_path
from segcli.outputs.plans import OUTPUT_MARKER


# --------------------------------------------------------------------------- discovery
@dataclass
class Discovery:
    files: list[Path]
    problems: list[tuple[Path, str]]  # folders that could not be read
    outputs: list[Path] = field(default_factory=list)  # segcli output folders, not entered


def discover(
    root: Path, *, recursive: bool = True, exclude: Sequence[Path] = (), videos: bool = True
) -> Discovery:
    """Image (and, with ``videos``, video) files under ``root`` by extension
    (case-insensitive), sorted by path.

    Hidden files and folders are skipped; symlinked folders are followed once
    (loops are cut); folders in ``exclude`` (e.g. our own output) are never entered,
    nor are other segcli output folders (they hold :data:`OUTPUT_MARKER`), which are
    listed in ``outputs``.
    """

    def identity(path: Path | os.DirEntry[str]) -> tuple[int, int] | None:
        """A folder's (device, inode): the same however it is reached (a link, ``..``), found
        without resolving its path from the top (``realpath`` costs a system call per level,
        so depth x depth in a deep tree of links)."""
        try:
            st = path.stat() if isinstance(path, os.DirEntry) else os.stat(path)
        except OSError:
            return None
        return st.st_dev, st.st_ino

    excluded = {ident for ident in map(identity, exclude) if ident is not None}

    def wanted(path: Path) -> bool:
        return is_image_path(path) or (videos and is_video_path(path))

    seen: set[tuple[int, int]] = set()
    files: list[Path] = []
    problems: list[tuple[Path, str]] = []
    outputs: list[Path] = []

    def enter(folder: Path, ident: tuple[int, int] | None) -> Iterator[os.DirEntry[str]] | None:
        """The sorted entries of ``folder`` (of identity ``ident``), or None where it is not
        to be walked: seen before (a loop, or a second link to it), excluded, an output folder."""
        if ident is not None:
            if ident in seen or ident in excluded:
                return None
            seen.add(ident)
        if folder != root and (folder / OUTPUT_MARKER).is_file():
            outputs.append(folder)
            return None
        try:
            with os.scandir(folder) as listing:
                return iter(sorted(listing, key=lambda e: e.name))
        except OSError as exc:
            problems.append((folder, f"cannot list folder ({exc.strerror or exc})"))
            return None

    # Depth first, in name order, with a stack of its own: a tree of any depth (thousands of
    # nested folders) never meets Python's recursion limit.
    first = enter(root, identity(root))
    stack: list[tuple[Path, Iterator[os.DirEntry[str]]]] = [(root, first)] if first is not None else []
    while stack:
        folder, entries = stack[-1]
        entry = next(entries, None)
        if entry is None:
            stack.pop()
            continue
        if entry.name.startswith("."):
            continue
        path = folder / entry.name
        try:
            if entry.is_dir(follow_symlinks=True):
                if recursive:
                    inner = enter(path, identity(entry))
                    if inner is not None:
                        stack.append((path, inner))
            elif entry.is_file(follow_symlinks=True) and wanted(path):
                files.append(path)
            elif entry.is_symlink() and not path.exists() and wanted(path):
                problems.append((path, "broken symbolic link"))
        except OSError as exc:
            problems.append((path, f"cannot stat ({exc.strerror or exc})"))

    return Discovery(files=files, problems=problems, outputs=outputs)


def read_list(list_file: Path) -> tuple[Path, list[Path]]:
    """The inputs named in a list file (``--from-list``) and their common root.

    One path per line; blank lines and lines starting with ``#`` are skipped,
    surrounding whitespace is dropped, repeats count once. A relative path is
    relative to the list file's folder. Outputs mirror the paths under the deepest
    folder holding every listed file (the root), as for a folder run on that root.
    Files are not checked here: a missing one fails its own entry when it is read.
    """
    try:
        data = list_file.read_bytes()
    except OSError as exc:
        raise SegcliError(f"cannot read --from-list {list_file} ({exc.strerror or exc})") from None
    base = list_file.parent.absolute()
    files: dict[str, None] = {}
    for raw in data.splitlines():
        line = os.fsdecode(raw.strip())
        if not line or line.startswith("#"):
            continue
        files.setdefault(os.path.normpath(os.path.join(base, os.path.expanduser(line))), None)
    if not files:
        raise SegcliError(f"--from-list {list_file} names no files")
    root = Path(os.path.commonpath([os.path.dirname(f) for f in files]))
    return root, [Path(f) for f in files]


def check_folders(folder: Path, output: Path) -> None:
    """Usage errors of a batch's two folders, before anything is read or written."""
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"{folder} is a file, not a folder: use segcli predict for single images")
    if os.path.realpath(output) == os.path.realpath(folder):
        raise UsageError(f"--output {output} is the input folder itself; choose another output folder")
    if (folder / OUTPUT_MARKER).is_file():
        raise UsageError(
            f"{folder} is a segcli output folder (it holds {OUTPUT_MARKER}); segmenting it would "
            f"segment overlays. Remove {folder / OUTPUT_MARKER} to do it anyway"
        )
