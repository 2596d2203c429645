"""Regenerate the docs' images under docs/images/ (run from the repository root).

    python docs/make_images.py [--coco-weights PATH]

- help-predict.png: ``segcli predict --help`` as a terminal shows it (Rich colours), drawn
  with Pillow in DejaVu Sans Mono.
- overlay-cluttered.png, compare-two-red-cubes.png, examples/*.overlay.png (every image of
  examples/blocks, for the gallery page): the bundled blocks model, offline.
- overlay-busy-photo.jpg: examples/photos/astronaut.jpg through the COCO architecture at
  ``--score-threshold 0`` (100 detections). Without the COCO weights (no network), pass a
  checkpoint with ``--coco-weights``, e.g. a randomly initialised one: the labels are then
  meaningless but the crowding is real, which is what the picture shows.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont
from rich.text import Text

OUT = Path("docs/images")
FONTS = ("/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf", "DejaVuSansMono.ttf")
BOLD = ("/usr/share/fonts/truetype/dejavu/DejaVuSansMono-Bold.ttf", "DejaVuSansMono-Bold.ttf")
BACKGROUND, FOREGROUND = (30, 30, 36), (220, 220, 220)
ANSI = {  # the 16 terminal colours Rich/Typer use, as a dark theme draws them
    0: (40, 40, 40), 1: (230, 90, 90), 2: (120, 200, 120), 3: (230, 200, 100), 4: (110, 150, 240),
    5: (200, 120, 220), 6: (90, 200, 210), 7: (210, 210, 210), 8: (130, 130, 130), 9: (255, 120, 120),
    10: (150, 230, 150), 11: (250, 230, 130), 12: (140, 180, 255), 13: (230, 150, 240), 14: (120, 230, 240),
    15: (250, 250, 250),
}  # fmt: skip


def _font(names: tuple[str, ...], size: int) -> ImageFont.FreeTypeFont:
    for name in names:
        try:
            return ImageFont.truetype(name, size)
        except OSError:
            continue
    raise SystemExit(f"none of the fonts {names} found")


def terminal_png(command: list[str], path: Path, columns: int = 104, size: int = 15) -> None:
    """Run ``command`` with colours on and draw its output like a terminal would."""
    env = {**os.environ, "FORCE_COLOR": "1", "COLUMNS": str(columns), "TERM": "xterm-256color"}
    env.pop("NO_COLOR", None)
    ansi = subprocess.run(command, capture_output=True, text=True, env=env, check=True).stdout
    lines = [Text.from_ansi(line) for line in ansi.rstrip("\n").split("\n")]
    regular, bold = _font(FONTS, size), _font(BOLD, size)
    cell_w, cell_h = regular.getbbox("M")[2], int(size * 1.35)
    pad = 16
    image = Image.new("RGB", (columns * cell_w + 2 * pad, len(lines) * cell_h + 2 * pad), BACKGROUND)
    draw = ImageDraw.Draw(image)
    for row, line in enumerate(lines):
        x = pad
        for segment in line.render(_console()):
            style = segment.style
            color = FOREGROUND
            if style is not None and style.color is not None:
                if style.color.number is not None and style.color.number < 16:
                    color = ANSI[style.color.number]
                else:
                    triplet = style.color.get_truecolor()
                    color = (triplet.red, triplet.green, triplet.blue)
            if style is not None and style.dim:
                color = tuple(int(c * 0.6) for c in color)  # type: ignore[assignment]
            font = bold if style is not None and style.bold else regular
            draw.text((x, pad + row * cell_h), segment.text, font=font, fill=color)
            x += len(segment.text) * cell_w
    image.save(path, optimize=True)


def _console():  # type: ignore[no-untyped-def]
    from rich.console import Console

    return Console(width=400, color_system="truecolor")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--coco-weights", type=Path, help="checkpoint for the busy-photo overlay")
    args = parser.parse_args()
    segcli = [sys.executable, "-m", "segcli"]
    OUT.mkdir(parents=True, exist_ok=True)
    terminal_png([*segcli, "predict", "--help"], OUT / "help-predict.png")
    with tempfile.TemporaryDirectory() as tmp:
        run = {"check": True, "capture_output": True}
        blocks = ["--model", "blocks", "--device", "cpu", "-q", "-o", tmp]
        examples = sorted(str(p) for p in Path("examples/blocks").glob("*.png"))
        subprocess.run([*segcli, "predict", *examples, *blocks], **run)  # type: ignore[call-overload]
        shutil.copy(Path(tmp) / "cluttered.png.overlay.png", OUT / "overlay-cluttered.png")
        gallery = OUT / "examples"  # every example's overlay, as the CLI writes it (docs: gallery)
        gallery.mkdir(exist_ok=True)
        for example in examples:
            name = Path(example).name
            shutil.copy(Path(tmp) / f"{name}.overlay.png", gallery / f"{name}.overlay.png")
        compare = [*segcli, "compare", "semantic-vs-instance", "examples/blocks/two-red-cubes.png", *blocks]
        subprocess.run(compare, **run)  # type: ignore[call-overload]
        shutil.copy(Path(tmp) / "two-red-cubes.png.compare.png", OUT / "compare-two-red-cubes.png")
        if args.coco_weights is not None:
            coco = ["--weights", str(args.coco_weights), "-c", "0", "--device", "cpu", "-q", "-o", tmp]
            subprocess.run([*segcli, "predict", "examples/photos/astronaut.jpg", *coco], **run)  # type: ignore[call-overload]
            shutil.copy(Path(tmp) / "astronaut.jpg.overlay.jpg", OUT / "overlay-busy-photo.jpg")
    print(f"wrote {', '.join(sorted(p.name for p in OUT.iterdir()))}")


if __name__ == "__main__":
    main()
