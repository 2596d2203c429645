"""Reading images as a viewer shows them."""

from __future__ import annotations

import errno
import os
import stat
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, UnidentifiedImageError

from segcli.core.errors import SegcliError, SegcliWarning, first_line
from segcli.core.settings import DEFAULT_MAX_PIXELS
from segcli.io.files import atomic_write_bytes as atomic_write_bytes  # re-exported: its old home

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif"})
"""What ``batch`` picks up (case-insensitively); ``predict`` reads any file Pillow reads.
A GIF is read as its first frame."""

_PILLOW_LIMIT = threading.Lock()
_PILLOW_WARNINGS = threading.Lock()
"""Held while Pillow's warnings are recorded: ``warnings.catch_warnings`` is process-wide, so
two decode threads recording at once would restore each other's state (and leak warnings)."""
ORIENTATION = 0x0112
_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
"""EXIF orientation -> the transpose that shows the image upright (``ImageOps.exif_transpose``'s)."""


class ImageWarning(SegcliWarning):
    """A problem of one image that does not stop it (corrupt EXIF data): names the file."""


@contextmanager
def pillow_warnings(path: Path, *, report: bool = True) -> Iterator[None]:
    """Record what Pillow warns about inside the block and say it again as one
    :class:`ImageWarning` per message, naming ``path`` (the bomb warning is segcli's
    ``--max-pixels`` business, and dropped); with ``report=False`` drop them all (a header
    read that a full read repeats). Every segcli use of ``warnings.catch_warnings`` around
    Pillow goes through here: the lock keeps two threads from restoring each other's state."""
    with _PILLOW_WARNINGS:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            yield
        # Still under the lock (no other thread is recording): Pillow's are said again naming
        # the file; whatever another thread warned about meanwhile goes on as it was.
        for item in caught:
            if not _from_pillow(item):
                warnings.warn_explicit(item.message, item.category, item.filename, item.lineno)
                continue
            if not report or _dropped(item):
                continue
            text = " ".join(str(item.message).split())
            if "EXIF" in text:
                text = f"corrupt EXIF data, orientation read as far as it goes (Pillow: {text})"
            warnings.warn(f"{path}: {text}", ImageWarning, stacklevel=3)


def _from_pillow(item: warnings.WarningMessage) -> bool:
    return f"{os.sep}PIL{os.sep}" in item.filename


def _dropped(item: warnings.WarningMessage) -> bool:
    """segcli's --max-pixels business, or a palette's transparency (converted right)."""
    return issubclass(item.category, Image.DecompressionBombWarning) or "Palette images with" in str(
        item.message
    )


def _open(path: Path | BinaryIO) -> Image.Image:
    """``Image.open`` with Pillow's pixel limit lifted for this one call.

    segcli checks the declared size itself (``max_pixels``), after opening. Pillow's own limit
    (``Image.MAX_IMAGE_PIXELS``) is global; segcli leaves it set for the rest of the process
    and lifts it only to reopen a file Pillow refused, under a lock, for that one header read.
    """
    try:
        return Image.open(path)
    except Image.DecompressionBombError:
        with _PILLOW_LIMIT:
            previous = Image.MAX_IMAGE_PIXELS
            Image.MAX_IMAGE_PIXELS = None
            try:
                if not isinstance(path, Path):
                    path.seek(0)
                return Image.open(path)
            finally:
                Image.MAX_IMAGE_PIXELS = previous


_ARITHMETIC_SOF = (b"\xff\xc9", b"\xff\xca", b"\xff\xcb", b"\xff\xcd", b"\xff\xce", b"\xff\xcf")


def _check_jpeg_size(path: Path, width: int, height: int) -> None:
    """Refuse a JPEG too small to hold the pixels it declares (a forged or truncated header).

    A Huffman-coded JPEG spends at least one bit per 8x8 luma block, so it has at least
    ``width * height / 512`` bytes; a quarter of that is required (real files hold 8x or
    more, a solid grey one included). libjpeg would otherwise fill the missing data with
    grey and report success. Arithmetic-coded files (rare) are not checked.
    """
    size = os.path.getsize(path)
    if size * 2048 >= width * height:
        return
    with open(path, "rb") as fh:
        head = fh.read(65536)
    if any(marker in head for marker in _ARITHMETIC_SOF):
        return
    raise SegcliError(
        f"{path}: truncated or forged JPEG ({size} bytes cannot hold the {width}x{height} pixels it declares)"
    )


@dataclass(frozen=True)
class LoadedImage:
    """An image as RGB uint8, EXIF orientation applied."""

    path: Path
    pixels: np.ndarray  # (H, W, 3) uint8, RGB
    format: str  # "JPEG", "PNG", ...

    @property
    def size(self) -> tuple[int, int]:
        return int(self.pixels.shape[0]), int(self.pixels.shape[1])

    def __repr__(self) -> str:
        h, w = self.size
        return f"LoadedImage({str(self.path)!r}, {w}x{h} {self.format})"


def is_image_path(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS


@contextmanager
def decode_errors(path: Path) -> Iterator[None]:
    """Any failure to open or decode ``path`` as one line (:class:`SegcliError`) naming it:
    what :func:`read_image` and the memory-mapped reader both raise."""
    try:
        yield
    except SegcliError:
        raise
    except UnidentifiedImageError:
        raise SegcliError(f"{path}: not an image segcli can read") from None
    except FileNotFoundError:
        raise SegcliError(f"{path}: no such file") from None
    except PermissionError:
        raise SegcliError(f"{path}: permission denied") from None
    except IsADirectoryError:
        raise SegcliError(f"{path}: is a folder, not an image") from None
    except MemoryError:
        raise SegcliError(f"{path}: out of memory while decoding") from None
    except (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError) as exc:
        raise SegcliError(f"{path}: cannot decode image ({first_line(exc)})") from None


def read_image(path: str | Path, *, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> LoadedImage:
    """Decode ``path`` to RGB uint8 the way an image viewer shows it.

    EXIF orientation is applied; grayscale, palette, alpha (composited on white),
    16-bit and CMYK inputs are converted. The pixel count the file declares is
    checked against ``max_pixels`` before any pixel is decoded.
    """
    path = Path(path)
    with decode_errors(path), _open_regular(path) as fh:
        with pillow_warnings(path):
            im = _open(fh)
        with im:
            width, height = im.size
            if max_pixels is not None and width * height > max_pixels:
                raise SegcliError(
                    f"{path}: declares {width}x{height} = {pixel_count(width * height)}, over "
                    f"the {pixel_count(max_pixels)} limit (raise it with --max-pixels)"
                )
            if width < 1 or height < 1:
                raise SegcliError(f"{path}: has no pixels ({width}x{height})")
            fmt = im.format or "unknown"
            if fmt == "JPEG":
                _check_jpeg_size(path, width, height)
            im.load()  # the pixels: outside the lock (decode threads run side by side)
            with pillow_warnings(path):
                orientation = im.getexif().get(ORIENTATION, 1)
            method = _TRANSPOSE.get(orientation) if isinstance(orientation, int) else None
            upright = im.transpose(method) if method is not None else im
            if upright.mode in ("P", "PA"):  # converting a palette may warn (harmlessly)
                with pillow_warnings(path):
                    pixels = _to_rgb8(upright)
            else:
                pixels = _to_rgb8(upright)
    return LoadedImage(path=path, pixels=pixels, format=fmt)


def pixel_count(n: int) -> str:
    """``1,000 pixels`` below a megapixel, else ``12.3 MP`` (never a misleading ``0 MP``)."""
    if n < 1_000_000:
        return f"{n:,} pixels"
    return f"{n / 1e6:.3g} MP" if n < 100_000_000 else f"{n / 1e6:,.0f} MP"


def _open_regular(path: Path) -> BinaryIO:
    """Open ``path`` for reading if it is a regular file; a FIFO, socket or device is refused
    at once (opened non-blocking, so a FIFO with no writer cannot hang the read)."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise IsADirectoryError(errno.EISDIR, "is a folder", str(path))
        if not stat.S_ISREG(mode):
            kind = "a FIFO" if stat.S_ISFIFO(mode) else "a device or socket"
            raise SegcliError(f"{path}: is {kind}, not an image file")
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        fh = os.fdopen(fd, "rb")
        fh.raw.name = os.fspath(path)  # type: ignore[attr-defined]  # as open(path) names it
        return fh
    except BaseException:
        os.close(fd)
        raise


def declared_pixels(path: Path) -> int | None:
    """The pixel count ``path``'s header declares (nothing decoded), or None if unreadable."""
    try:
        with _open_regular(path) as fh:
            with pillow_warnings(path, report=False):  # its warnings: read_image's to say
                im = _open(fh)
            with im:
                width, height = im.size
                return int(width) * int(height)
    except Exception:
        return None


def _to_rgb8(im: Image.Image) -> np.ndarray:
    mode = im.mode
    if mode in ("1", "L"):
        # One byte per pixel, spread into three: no 4-byte-per-pixel RGB copy inside Pillow.
        gray = np.asarray(im if mode == "L" else im.convert("L"))
        rgb = np.empty((*gray.shape, 3), np.uint8)
        rgb[...] = gray[..., None]
        return rgb
    if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in im.info):
        rgba = im.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return np.array(Image.alpha_composite(white, rgba).convert("RGB"))
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        arr = np.asarray(im)
        if arr.dtype.kind == "f":
            top = float(np.nanmax(arr)) if arr.size else 1.0
            scale = 255.0 if top <= 1.0 else 255.0 / max(top, 1e-12)
            arr8 = np.clip(np.nan_to_num(arr) * scale, 0, 255).astype(np.uint8)
        else:
            top = int(arr.max()) if arr.size else 0
            arr8 = (
                (arr.astype(np.float32) / 257.0).round().clip(0, 255).astype(np.uint8)
                if top > 255
                else arr.astype(np.uint8)
            )
        return np.ascontiguousarray(np.repeat(arr8[..., None], 3, axis=2))
    if mode != "RGB":
        im = im.convert("RGB")
    return np.array(im)
