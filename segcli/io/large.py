"""Large images for sliced inference: decoded once into a memory map, read tile by tile.

``read_image`` decodes an image into memory: 3 bytes a pixel, plus Pillow's own 4-byte
copy while it converts, so a 400 MP scan costs 2.8 GB before the model runs.
:func:`read_image_mapped` decodes it instead into an unlinked temporary file mapped into
memory (``np.memmap``): the pixels live in the page cache, which the kernel writes back and
drops under pressure, and a tile reads only its own rows. Resident memory is then bounded by
the tiles in flight, not by the image.

- **TIFF/BigTIFF** (tiled or striped, any compression tifffile decodes): tifffile decodes
  each of its tiles or strips straight into the map (``out="memmap"``).
- **PNG, JPEG and other Pillow formats** in RGB or grayscale: Pillow's decoder writes its
  rows straight into the map (the map is handed to Pillow as the image's memory). RGB is
  held as 4 bytes a pixel (Pillow's layout); grayscale as 1, shown as RGB without a copy.
- Anything else (palette, alpha, 16-bit, CMYK) is converted in memory as ``read_image``
  does and then copied into a map.

EXIF orientation is applied as a view of the map (flips and transposes, no copy), so a tile
of a rotated photo is cut from the right pixels. The temporary file needs 3-4 bytes a pixel
of disk in the temporary folder (``TMPDIR``) and disappears with the image.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile

from segcli.core.errors import SegcliError
from segcli.core.settings import TILED_MAX_PIXELS
from segcli.io.images import (
    LoadedImage,
    _check_jpeg_size,
    _open,
    _open_regular,
    decode_errors,
    pillow_warnings,
    pixel_count,
    read_image,
)

MAP_ABOVE_PIXELS = 16_000_000
"""Images declaring more pixels than this are decoded into a memory map; smaller ones are
read as ``read_image`` reads them (in memory: the map would save nothing worth its file)."""

_TIFF = (".tif", ".tiff")


def read_image_mapped(
    path: str | Path, *, max_pixels: int | None = TILED_MAX_PIXELS, map_above: int = MAP_ABOVE_PIXELS
) -> LoadedImage:
    """``path`` as a :class:`LoadedImage` whose pixels (H, W, 3) uint8 RGB are a view of a memory
    map when the image declares more than ``map_above`` pixels (else :func:`read_image`'s
    array). Same checks and errors as ``read_image``: the declared size against
    ``max_pixels`` before any pixel is decoded, a forged JPEG, a FIFO, a missing file."""
    path = Path(path)
    with decode_errors(path):
        with _open_regular(path) as fh:
            with pillow_warnings(path, report=False):  # the full read says them
                im = _open(fh)
            with im:
                width, height = im.size
                fmt = im.format or "unknown"
        if max_pixels is not None and width * height > max_pixels:
            raise SegcliError(
                f"{path}: declares {width}x{height} = {pixel_count(width * height)}, over "
                f"the {pixel_count(max_pixels)} limit (raise it with --max-pixels)"
            )
        if width * height <= map_above:
            return read_image(path, max_pixels=max_pixels)
        if fmt == "TIFF" or path.suffix.lower() in _TIFF:
            pixels = _tiff_mapped(path)
            if pixels is not None:
                return LoadedImage(path=path, pixels=pixels, format="TIFF")
        if fmt == "JPEG":
            _check_jpeg_size(path, width, height)
        return LoadedImage(path=path, pixels=_pillow_mapped(path), format=fmt)


def _memmap(shape: tuple[int, ...]) -> np.memmap:
    """A zero-filled writable map of ``shape`` uint8 on an unlinked temporary file."""
    return np.memmap(tempfile.TemporaryFile(prefix="segcli-"), dtype=np.uint8, mode="w+", shape=shape)


def _pillow_mapped(path: Path) -> np.ndarray:
    with _open_regular(path) as fh:
        with pillow_warnings(path):
            opened = _open(fh)
        with opened as im:
            width, height = im.size
            if im.mode in ("RGB", "L") and im.tile:
                channels = 4 if im.mode == "RGB" else 1
                mm = _memmap((height, width, channels) if channels > 1 else (height, width))
                # Pillow decodes into the image's memory: make that memory the map
                im.im = Image.core.map_buffer(mm, (width, height), "raw", 0, (im.mode, 0, 1))
                ImageFile.ImageFile.load(im)
                # after decoding: a PNG's getexif() would decode the image (in memory) to find it
                with pillow_warnings(path):  # corrupt EXIF: one warning naming the file
                    orientation = int(im.getexif().get(0x0112, 1) or 1)
                pixels = mm[..., :3] if channels > 1 else np.broadcast_to(mm[..., None], (height, width, 3))
            else:  # palette, alpha, 16-bit, CMYK: converted in memory, then mapped
                rgb = read_image(path, max_pixels=None).pixels
                mm = _memmap(rgb.shape)
                mm[...] = rgb
                del rgb
                return mm  # read_image applied the EXIF orientation
    return _oriented(pixels, orientation)


def _oriented(pixels: np.ndarray, orientation: int) -> np.ndarray:
    """``pixels`` as EXIF ``orientation`` says to show them, as a view (Pillow's
    ``exif_transpose``, without copying)."""
    if orientation == 2:
        return pixels[:, ::-1]
    if orientation == 3:
        return pixels[::-1, ::-1]
    if orientation == 4:
        return pixels[::-1]
    if orientation == 5:
        return pixels.transpose(1, 0, 2)
    if orientation == 6:
        return pixels.transpose(1, 0, 2)[:, ::-1]
    if orientation == 7:
        return pixels.transpose(1, 0, 2)[::-1, ::-1]
    if orientation == 8:
        return pixels.transpose(1, 0, 2)[::-1]
    return pixels


def _tiff_mapped(path: Path) -> np.ndarray | None:
    """The first page of a TIFF decoded by tifffile into a map, as RGB; None when tifffile
    is missing or the page is not 8-bit grayscale or RGB (Pillow's path takes it then)."""
    try:
        import tifffile
    except ImportError:  # pragma: no cover - tifffile is installed with segcli
        return None
    with tifffile.TiffFile(path) as tif:
        page = tif.pages.first
        if page.dtype != np.uint8 or page.ndim not in (2, 3):
            return None
        if page.ndim == 3 and (page.shape[-1] != 3 or page.planarconfig != 1):
            return None
        arr = page.asarray(out="memmap")
    if arr.ndim == 2:
        return np.broadcast_to(arr[..., None], (*arr.shape, 3))
    return arr[..., :3]
