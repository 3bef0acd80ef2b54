"""Reading PDFs back with poppler's ``pdftotext`` and ``pdftoppm``, as a reviewer's viewer would."""

from __future__ import annotations

import subprocess
from pathlib import Path

from PIL import Image


def pdf_text(pdf: Path, *, layout: bool = False) -> str:
    """Give the text of a PDF (pdftotext, reading order unless ``layout``)."""
    argv = ["pdftotext", "-enc", "UTF-8", *(["-layout"] if layout else []), str(pdf), "-"]
    return subprocess.run(argv, capture_output=True, check=True).stdout.decode("utf-8")


def squeezed(text: str) -> str:
    """Give text without any whitespace (names may wrap across lines in narrow columns)."""
    return "".join(text.split())


def render_pages(pdf: Path, folder: Path, dpi: int = 30) -> list[Path]:
    """Give the PNG files of every page of a PDF rendered by pdftoppm."""
    folder.mkdir(parents=True, exist_ok=True)
    subprocess.run(["pdftoppm", "-png", "-r", str(dpi), str(pdf), str(folder / "page")], check=True)
    return sorted(folder.glob("page-*.png"))


def page_count(pdf: Path) -> int:
    """Give the number of pages pdfinfo reports."""
    info = subprocess.run(["pdfinfo", str(pdf)], capture_output=True, check=True, text=True).stdout
    line = next(line for line in info.splitlines() if line.startswith("Pages:"))
    return int(line.split()[1])


def has_ink(png: Path) -> bool:
    """Tell whether a rendered page has anything on it (not a blank white page)."""
    with Image.open(png) as page:
        extrema = page.convert("L").getextrema()
    return bool(int(extrema[0]) < 200)  # type: ignore[arg-type]
