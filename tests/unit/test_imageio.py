"""Images are read as a viewer shows them; broken and hostile files are one-line errors."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from segcli.core.errors import SegcliError
from segcli.io.images import read_image


def _quadrants(h: int = 32, w: int = 64) -> np.ndarray:
    img = np.zeros((h, w, 3), np.uint8)
    img[: h // 2, : w // 2] = (255, 0, 0)
    img[: h // 2, w // 2 :] = (0, 255, 0)
    img[h // 2 :, : w // 2] = (0, 0, 255)
    img[h // 2 :, w // 2 :] = (255, 255, 0)
    return img


# What a viewer shows for each EXIF orientation, in numpy terms.
ORIENTED = {
    1: lambda a: a,
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1],
    5: lambda a: a.transpose(1, 0, 2),
    6: lambda a: np.rot90(a, -1),
    7: lambda a: np.rot90(a, 2).transpose(1, 0, 2),
    8: lambda a: np.rot90(a, 1),
}


def _centres(img: np.ndarray) -> list[tuple[int, ...]]:
    h, w = img.shape[:2]
    return [
        tuple(int(v) // 64 for v in img[y, x]) for y in (h // 4, 3 * h // 4) for x in (w // 4, 3 * w // 4)
    ]


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied(tmp_path: Path, orientation: int) -> None:
    src = _quadrants()
    path = tmp_path / f"o{orientation}.jpg"
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(src).save(path, quality=95, exif=exif)
    got = read_image(path).pixels
    want = ORIENTED[orientation](src)
    assert got.shape == want.shape
    assert _centres(got) == _centres(want)


def test_modes_are_converted_to_rgb8(tmp_path: Path) -> None:
    gray = tmp_path / "gray.png"
    Image.fromarray(np.full((5, 7), 77, np.uint8)).save(gray)
    img = read_image(gray).pixels
    assert img.shape == (5, 7, 3) and img.dtype == np.uint8 and (img == 77).all()

    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[..., 0] = 200
    rgba[0, 0, 3] = 0  # transparent: shows as white
    rgba[1:, :, 3] = 255
    rgba[0, 1:, 3] = 255
    Image.fromarray(rgba, "RGBA").save(tmp_path / "alpha.png")
    img = read_image(tmp_path / "alpha.png").pixels
    assert tuple(img[0, 0]) == (255, 255, 255) and tuple(img[2, 2]) == (200, 0, 0)

    deep = np.array([[0, 32768, 65535]], np.uint16)
    Image.fromarray(deep).save(tmp_path / "deep.png")
    img = read_image(tmp_path / "deep.png").pixels
    assert img[0, :, 0].tolist() == [0, 128, 255]

    Image.new("CMYK", (6, 6), (0, 255, 255, 0)).save(tmp_path / "cmyk.jpg")
    img = read_image(tmp_path / "cmyk.jpg").pixels
    r, g, b = (int(v) for v in img[3, 3])
    assert r > 200 and g < 60 and b < 60

    Image.new("RGB", (1, 1), (1, 2, 3)).save(tmp_path / "one.png")
    assert read_image(tmp_path / "one.png").pixels.shape == (1, 1, 3)


def test_wrong_extension_and_trailing_garbage_still_read(tmp_path: Path) -> None:
    png_as_jpg = tmp_path / "really-a-png.JPG"
    Image.fromarray(_quadrants()).save(png_as_jpg, format="PNG")
    assert read_image(png_as_jpg).format == "PNG"
    tail = tmp_path / "tail.jpg"
    Image.fromarray(_quadrants()).save(tail)
    tail.write_bytes(tail.read_bytes() + b"garbage" * 100)
    assert read_image(tail).pixels.shape == (32, 64, 3)


def _png_header_only(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )


def test_decompression_bomb_refused_before_decoding(tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(_png_header_only(30000, 30000))
    assert bomb.stat().st_size < 200
    with pytest.raises(
        SegcliError, match=r"declares 30000x30000 = 900 MP, over the 150 MP limit.*--max-pixels"
    ):
        read_image(bomb)
    with pytest.raises(SegcliError, match=r"over the 100 pixels limit"):
        read_image(bomb, max_pixels=100)
    small = tmp_path / "small.png"
    small.write_bytes(_png_header_only(600, 400))
    with pytest.raises(SegcliError, match=r"declares 600x400 = 240,000 pixels, over the 1,000 pixels limit"):
        read_image(small, max_pixels=1000)  # never "0 MP"


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("empty.jpg", b""),
        ("text.png", b"just some words\n"),
        ("page.jpg", b"<!DOCTYPE html><html><body>404</body></html>"),
    ],
)
def test_fake_images_are_one_line_errors(tmp_path: Path, name: str, content: bytes) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(SegcliError) as err:
        read_image(path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_truncated_image(tmp_path: Path) -> None:
    full = tmp_path / "full.jpg"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (200, 200, 3), np.uint8)).save(full)
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(full.read_bytes()[:2000])
    with pytest.raises(SegcliError, match="cannot decode"):
        read_image(cut)
