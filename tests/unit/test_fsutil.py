"""Atomic writes: a reader sees the old file or the new one; failures leave nothing behind."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from segcli.io.files import (
    NAME_MAX,
    UMASK,
    atomic_path,
    atomic_write_bytes,
    is_temp_name,
    legacy_temp_target,
    temp_name,
    temp_target,
)


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


def test_temp_names_prove_segcli_made_them() -> None:
    for target in ("a.json", "x.png.masks", "é" * 127 + "x", os.fsdecode(b"\xff\xfe.png.json"), "a\nb"):
        name = temp_name(target)
        assert is_temp_name(name) and len(os.fsencode(name)) <= NAME_MAX
        found = temp_target(name)
        assert found is not None and target.startswith(found), "the target's name, cut to fit"
        assert name != temp_name(target), "a random part"
    real = temp_name("a.json")
    token = real[len(".a.json.segcli-") : -len(".part")]
    forged = [
        ".thesis.docx.part",  # a user's
        "a.json.part",
        ".hidden.json",
        ".a.json.k2j3.part",  # an earlier version's shape: not proof
        f".a.json.segcli-{'0' * 12}.part",  # the shape, not the check digits
        real.upper(),
        real.replace(token, token[::-1]) if token != token[::-1] else ".x.part",
        f".b.json.segcli-{token}.part",  # the check covers the target's name too
        real[:-1],
        f".segcli-{token}.part",
    ]
    assert not [name for name in forged if is_temp_name(name)]


def test_legacy_temp_names_give_their_target() -> None:
    assert legacy_temp_target(".a.png.json.k2j3x_9z.part") == "a.png.json"
    assert legacy_temp_target(".a.png.masks.abcdefgh.part") == "a.png.masks"
    for name in (
        ".thesis.docx.part",
        ".a.json.k2j3.part",
        ".a.json.ABCDEFGH.part",
        temp_name("a.json"),
        "x.part",
    ):
        assert legacy_temp_target(name) is None, name
