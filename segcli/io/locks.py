"""The output-folder lock: every segcli command that writes into a folder holds it.

``flock`` on ``<folder>/.segcli.lock``, released by the kernel when the holder exits,
however it exits (a killed run never leaves a stale lock):

- **exclusive** for a run that owns the folder: ``batch`` (and ``eval``, ``demo``'s batch
  step, which run one), the only commands that remove stale temporary files;
- **shared** for commands that only add files: ``predict``, ``compare``, ``explain``. Two of
  them coexist (every file is renamed into place whole); either kind refuses the other, so a
  batch never cleans up under a running ``predict`` and ``predict`` never writes into a
  running batch.

The lock is re-entrant within a thread: a block already holding a folder's lock (``eval``
around the batch it runs) may take it again, as strongly or more weakly. On network file
systems without ``flock``, and on Windows, no lock is taken.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from segcli.core.errors import SegcliError
from segcli.io.files import make_folders

LOCK_NAME = ".segcli.lock"
"""The lock file in an output folder."""


@dataclass
class _Held:
    shared: bool
    depth: int = 1


_held: dict[tuple[str, int], _Held] = {}
"""Locks this process holds, by folder and thread (another thread contends like another process)."""
_guard = threading.Lock()


def _lock_holders(fd: int) -> list[int]:
    """The pids holding a lock on ``fd``'s file, from Linux's ``/proc/locks`` (empty elsewhere)."""
    try:
        st = os.fstat(fd)
        with open("/proc/locks", encoding="ascii", errors="replace") as fh:
            lines = fh.read().splitlines()
    except OSError:
        return []
    want = (os.major(st.st_dev), os.minor(st.st_dev), st.st_ino)
    pids: list[int] = []
    for line in lines:
        fields = line.split()
        if len(fields) < 6 or "->" in fields or fields[1] != "FLOCK":
            continue
        try:
            major, minor, inode = fields[5].split(":")
            found = (int(major, 16), int(minor, 16), int(inode))
            pid = int(fields[4])
        except ValueError:
            continue
        if found == want and pid != os.getpid() and pid not in pids:
            pids.append(pid)
    return pids


def _busy(out_dir: Path, fd: int) -> SegcliError:
    holders = _lock_holders(fd)
    note = os.pread(fd, 200, 0).decode("utf-8", "replace").split()
    if holders:
        host = note[1] if len(note) >= 2 and note[0] == str(holders[0]) else socket.gethostname()
        pids = ", ".join(map(str, holders))
        who = f"pid{'s' if len(holders) > 1 else ''} {pids} on {host}"
    elif len(note) >= 2:
        who = f"pid {note[0]} on {note[1]}"
    else:
        who = "another process"
    return SegcliError(
        f"output folder {out_dir} is in use by another segcli run ({who}); "
        "wait for it to finish or choose another --output"
    )


@contextmanager
def output_lock(out_dir: Path, *, shared: bool = False, note: bool = True) -> Iterator[None]:
    """Hold the lock of ``out_dir`` (created if missing) for the block, exclusive or ``shared``.

    Another process holding it in a conflicting mode makes this raise a one-line
    :class:`SegcliError` naming its pid and host, at once (never waits). The holder's pid and
    host are written into the lock file for that message (``note``); shared holders overwrite
    each other's, so the message names the latest one.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    try:
        make_folders(out_dir)
        key = (os.path.realpath(out_dir), threading.get_ident())
    except OSError as exc:
        raise SegcliError(f"cannot lock output folder {out_dir} ({exc.strerror or exc})") from None
    with _guard:
        held = _held.get(key)
        if held is not None:
            if held.shared and not shared:
                raise SegcliError(
                    f"output folder {out_dir} is already open for adding files in this process; "
                    "it cannot also be taken over by a run"
                )
            held.depth += 1
    if held is not None:
        try:
            yield
        finally:
            with _guard:
                held.depth -= 1
        return
    try:
        fd = os.open(out_dir / LOCK_NAME, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o666)
    except OSError as exc:
        raise SegcliError(f"cannot lock output folder {out_dir} ({exc.strerror or exc})") from None
    try:
        try:
            fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
        except BlockingIOError:
            raise _busy(out_dir, fd) from None
        except OSError:  # no flock on this filesystem
            pass
        try:
            if note:
                os.ftruncate(fd, 0)
                os.pwrite(fd, f"{os.getpid()} {socket.gethostname()}\n".encode(), 0)
        except OSError:  # a full disk: the lock holds all the same, only the note is missing
            pass
        with _guard:
            _held[key] = _Held(shared)
        try:
            yield
        finally:
            with _guard:
                _held.pop(key, None)
    finally:
        os.close(fd)  # releases the lock


def check_output_free(out_dir: Path, *, shared: bool = True) -> None:
    """Raise the one-line :class:`SegcliError` of :func:`output_lock` now if ``out_dir`` is
    in use in a way that conflicts with ``shared`` (a check before a model loads; the command
    still takes the lock when it writes)."""
    with output_lock(out_dir, shared=shared, note=False):
        pass
