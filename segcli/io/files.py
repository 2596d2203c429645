"""Writing files atomically: a reader sees the old file or the new one, never half of one.

Every output segcli writes goes through :func:`atomic_path` (or :func:`make_temp`): the data
is written to a hidden sibling ``.<name>.segcli-<token>.part``, flushed to the disk
(``fsync``) and renamed onto the target. The token is 8 random hex digits and 4 hex digits
of a hash of the name and those 8 (:func:`temp_name`), so a temporary name proves
that segcli made it (:func:`is_segcli_temp`): a user's ``.thesis.docx.part`` never passes.
A run killed mid-write leaves only such files, which the next batch run into that output
folder removes (``segcli.runs.runfiles.remove_stale_temp_files``). After a power cut a
renamed file holds its data, once its folder has been synced too (:func:`fsync_dir`; the
batch writers sync it after each image's completion mark).

Versions before this scheme named temporaries ``.<name>.XXXXXXXX.part`` (:mod:`tempfile`'s
8 random characters): :func:`legacy_temp_target` recognises that shape, and the cleanup
removes such a file only where ``<name>`` is an output that segcli writes in that folder.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import re
import secrets
import shutil
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

UMASK = os.umask(0)
os.umask(UMASK)
"""The process umask, read once: temp files get the permissions a plain ``open`` would give."""

TEMP_SUFFIX = ".part"

NAME_MAX = 255
"""The longest file name, in bytes, of the usual file systems (ext4, XFS, Btrfs, APFS, NTFS)."""

TEMP_MARK = ".segcli-"
"""What sits between the target's name and the token in a temporary name."""
_RANDOM_HEX = 8
_CHECK_HEX = 4
_TOKEN_HEX = _RANDOM_HEX + _CHECK_HEX
_TEMP_ROOM = NAME_MAX - 1 - len(TEMP_MARK) - _TOKEN_HEX - len(TEMP_SUFFIX)
"""The longest target name a temporary name holds whole (longer ones are cut to it)."""
_LEGACY_TEMP = re.compile(r"\.(?P<target>.+)\.[a-z0-9_]{8}\.part", re.DOTALL)
"""``.<name>.XXXXXXXX.part``: the temporary names of segcli before :data:`TEMP_MARK`."""


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


def _check(target: str, random_part: str) -> str:
    data = os.fsencode(target) + b"\0" + random_part.encode("ascii")
    return hashlib.blake2s(data, digest_size=_CHECK_HEX // 2, person=b"segcli-t").hexdigest()


def temp_name(name: str) -> str:
    """A fresh temporary name for a file or folder called ``name``:
    ``.<name>.segcli-<8 random hex><4 hex check>.part``, ``name`` shortened so that the
    whole fits in :data:`NAME_MAX` bytes. Only segcli makes names that pass :func:`is_segcli_temp`."""
    target = truncate_name(name, _TEMP_ROOM)
    random_part = secrets.token_hex(_RANDOM_HEX // 2)
    return f".{target}{TEMP_MARK}{random_part}{_check(target, random_part)}{TEMP_SUFFIX}"


def temp_target(name: str) -> str | None:
    """The (possibly shortened) target name a :func:`temp_name` was made for, or None if
    ``name`` is not one (its check digits must match: a name that merely looks alike fails)."""
    if not (name.startswith(".") and name.endswith(TEMP_SUFFIX)):
        return None
    stem = name[1 : -len(TEMP_SUFFIX)]
    target, mark, token = stem.rpartition(TEMP_MARK)
    if not mark or not target or len(token) != _TOKEN_HEX or token != token.lower():
        return None
    try:
        int(token, 16)
    except ValueError:
        return None
    random_part, check = token[:_RANDOM_HEX], token[_RANDOM_HEX:]
    return target if secrets.compare_digest(check, _check(target, random_part)) else None


def is_segcli_temp(name: str) -> bool:
    """Whether ``name`` is a temporary name segcli made (:func:`temp_name`)."""
    return temp_target(name) is not None


def legacy_temp_target(name: str) -> str | None:
    """``<name>`` of a temporary name of an earlier segcli, ``.<name>.XXXXXXXX.part``, else
    None. The shape alone proves nothing (a user may name a file so): the cleanup trusts it
    only where ``<name>`` is an output segcli writes in that folder."""
    if TEMP_MARK in name:
        return None
    match = _LEGACY_TEMP.fullmatch(name)
    return match.group("target") if match else None


def _loops(path: Path) -> bool:
    try:
        os.stat(path)
    except OSError as exc:
        return exc.errno == errno.ELOOP
    return False


def make_folders(path: Path) -> None:
    """``path.mkdir(parents=True, exist_ok=True)`` without recursion: an output tree may be
    thousands of folders deep (``Path.mkdir`` and ``os.makedirs`` recurse once per level).

    What stands in the way is said in words (the ``strerror`` of the ``OSError`` raised): a
    file where a folder should be, a symbolic link that loops or leads nowhere."""
    missing: list[Path] = []
    folder = Path(path)

    def who(place: Path) -> str:
        return "it" if place == Path(path) else str(place)

    while True:
        try:
            mode = os.stat(folder).st_mode
        except FileNotFoundError:
            if os.path.islink(folder):
                why = f"{who(folder)} is a symbolic link to {os.readlink(folder)}, which does not exist"
                raise FileExistsError(errno.EEXIST, why, str(folder)) from None
            missing.append(folder)
            if folder.parent == folder:
                break
            folder = folder.parent
            continue
        except NotADirectoryError:  # a file further up: say which
            missing.append(folder)
            folder = folder.parent
            continue
        except OSError as exc:
            if exc.errno != errno.ELOOP:
                raise
            while folder.parent != folder and _loops(folder.parent):
                folder = folder.parent  # the link that loops, not a path through it
            why = f"{who(folder)} is a symbolic link that loops back on itself"
            raise OSError(errno.ELOOP, why, str(folder)) from None
        if not stat.S_ISDIR(mode):
            kind = (
                "a file" if stat.S_ISREG(mode) else "a FIFO" if stat.S_ISFIFO(mode) else "a device or socket"
            )
            raise FileExistsError(errno.EEXIST, f"{who(folder)} is {kind}, not a folder", str(folder))
        break
    for folder in reversed(missing):  # another thread may make one meanwhile: that is fine
        try:
            os.mkdir(folder)
        except FileExistsError:
            if not folder.is_dir():
                raise


def make_temp(path: Path, *, directory: bool = False) -> Path:
    """Create an empty temporary file (or folder) beside ``path``, named by :func:`temp_name`,
    with the permissions a plain ``open`` (``mkdir``) would give; returns its path."""
    make_folders(path.parent)
    for _ in range(100):
        tmp = path.parent / temp_name(path.name)
        try:
            if directory:
                os.mkdir(tmp, 0o700)
                tmp.chmod(0o777 & ~UMASK)
            else:
                fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o600)
                try:
                    os.fchmod(fd, 0o666 & ~UMASK)
                finally:
                    os.close(fd)
        except FileExistsError:
            continue
        return tmp
    raise FileExistsError(errno.EEXIST, "no free temporary name", str(path))  # pragma: no cover


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
    """Whether ``name`` is a temporary file or folder made by :func:`atomic_path` (this
    version's names: see :func:`is_segcli_temp`)."""
    return is_segcli_temp(name)


@contextmanager
def atomic_path(path: Path, *, directory: bool = False) -> Iterator[Path]:
    """Yield a temporary sibling of ``path`` to fill; on success rename it onto ``path``.

    With ``directory=True`` the temporary is an empty folder (an existing folder at
    ``path`` is replaced). The data is synced to the disk before the rename; the rename
    itself is durable once ``path.parent`` is synced (:func:`fsync_dir`). On any error,
    KeyboardInterrupt included, the temporary is removed and ``path`` is left as it was.
    """
    tmp = make_temp(path, directory=directory)
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
