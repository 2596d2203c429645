"""Atomic writes: a reader sees the old file or the new one; failures leave nothing behind."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from segcli.io.files import UMASK, atomic_path, atomic_write_bytes, is_temp_name


def test_atomic_write_replaces_with_plain_file_permissions(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "a.json"
    atomic_write_bytes(target, b"old")
    atomic_write_bytes(target, b"new")
    assert target.read_bytes() == b"new"
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~UMASK, "not mkstemp's 0600"
    assert [p.name for p in target.parent.iterdir()] == ["a.json"]


@pytest.mark.parametrize("error", [OSError("disk gone"), KeyboardInterrupt()])
def test_failed_write_keeps_the_old_file_and_no_temp(tmp_path: Path, error: BaseException) -> None:
    target = tmp_path / "a.json"
    target.write_bytes(b"old")
    with pytest.raises(type(error)), atomic_path(target) as tmp:
        tmp.write_bytes(b"half")
        assert is_temp_name(tmp.name) and tmp.parent == tmp_path
        raise error
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]


def test_atomic_folder_replaces_the_old_folder(tmp_path: Path) -> None:
    target = tmp_path / "x.masks"
    target.mkdir()
    (target / "old.png").write_bytes(b"1")
    with atomic_path(target, directory=True) as tmp:
        (tmp / "000.png").write_bytes(b"2")
        assert not (target / "000.png").exists(), "nothing shows before the rename"
    assert [p.name for p in target.iterdir()] == ["000.png"]
    assert stat.S_IMODE(target.stat().st_mode) == 0o777 & ~UMASK
    with pytest.raises(RuntimeError), atomic_path(target, directory=True) as tmp:
        (tmp / "001.png").write_bytes(b"3")
        raise RuntimeError
    assert [p.name for p in tmp_path.iterdir()] == ["x.masks"]
    assert [p.name for p in target.iterdir()] == ["000.png"]


def test_temp_names() -> None:
    assert is_temp_name(".a.json.k2j3.part")
    assert not is_temp_name("a.json.part") and not is_temp_name(".hidden.json")
