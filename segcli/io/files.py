"""Writing files atomically: a reader sees the old file or the new one, never half of one.

Every output segcli writes goes through :func:`atomic_path`: the data is written to a
hidden sibling ``.<name>.XXXXXXXX.part``, flushed to the disk (``fsync``) and renamed onto
the target. A run killed mid-write leaves only ``.part`` files, which the next batch run
removes. After a power cut a renamed file holds its data, once its folder has been synced
too (:func:`fsync_dir`; the batch writers sync it after each image's completion mark).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

UMASK = os.umask(0)
os.umask(UMASK)
"""The process umask, read once: temp files get the permissions a plain ``open`` would give."""

TEMP_SUFFIX = ".part"

NAME_MAX = 255
"""The longest file name, in bytes, of the usual file systems (ext4, XFS, Btrfs, APFS, NTFS)."""

_RANDOM_CHARS = 8
"""Length of the random part of :mod:`tempfile` names."""


def name_bytes(name: str) -> int:
    """Length of ``name`` on disk, in bytes (non-UTF-8 bytes held as surrogates count one each)."""
    return len(os.fsencode(name))


def truncate_name(name: str, limit: int) -> str:
    """The longest prefix of ``name`` whose on-disk form fits in ``limit`` bytes (never cuts a
    character in two, so a UTF-8 name stays valid UTF-8)."""
    if name_bytes(name) <= limit:
        return name
    size = 0
    for i, char in enumerate(name):
        size += name_bytes(char)
        if size > limit:
            return name[:i]
    return name


def _temp_prefix(name: str) -> str:
    """``.<name>.``, with ``name`` shortened so that the temporary name fits in NAME_MAX bytes."""
    room = NAME_MAX - len(TEMP_SUFFIX) - _RANDOM_CHARS - 2
    return f".{truncate_name(name, room)}."


FSYNC = True
"""Flush written files (and folders, where asked) to the disk. Off only to measure its cost."""


def fsync_path(path: Path) -> None:
    """Flush ``path`` (a file or a folder) to the disk, if :data:`FSYNC`."""
    if not FSYNC:
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: Path) -> None:
    """Make the entries of folder ``path`` (renames into it) durable, if :data:`FSYNC`."""
    with contextlib.suppress(OSError):  # some filesystems cannot sync a folder; files are synced
        fsync_path(path)


def _fsync_tree(root: Path) -> None:
    for folder, _, names in os.walk(root):
        for name in names:
            fsync_path(Path(folder) / name)
        fsync_dir(Path(folder))


def is_temp_name(name: str) -> bool:
    """Whether ``name`` is a temporary file or folder made by :func:`atomic_path`."""
    return name.startswith(".") and name.endswith(TEMP_SUFFIX)


@contextmanager
def atomic_path(path: Path, *, directory: bool = False) -> Iterator[Path]:
    """Yield a temporary sibling of ``path`` to fill; on success rename it onto ``path``.

    With ``directory=True`` the temporary is an empty folder (an existing folder at
    ``path`` is replaced). The data is synced to the disk before the rename; the rename
    itself is durable once ``path.parent`` is synced (:func:`fsync_dir`). On any error,
    KeyboardInterrupt included, the temporary is removed and ``path`` is left as it was.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    prefix = _temp_prefix(path.name)
    if directory:
        tmp = Path(tempfile.mkdtemp(prefix=prefix, suffix=TEMP_SUFFIX, dir=path.parent))
        tmp.chmod(0o777 & ~UMASK)
    else:
        fd, name = tempfile.mkstemp(prefix=prefix, suffix=TEMP_SUFFIX, dir=path.parent)
        os.fchmod(fd, 0o666 & ~UMASK)
        os.close(fd)
        tmp = Path(name)
    try:
        yield tmp
        if directory:
            _fsync_tree(tmp)
        else:
            fsync_path(tmp)
        if directory and path.is_dir():
            shutil.rmtree(path)
        os.replace(tmp, path)
    except BaseException:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_path`)."""
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        fh.write(data)
