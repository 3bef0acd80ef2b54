"""The pdflatex adapter: compile a LaTeX file into a PDF, twice, without shell escape.

pdflatex runs in the file's folder with ``-no-shell-escape`` and kpathsea's paranoid file policy
(``openin_any=p``, ``openout_any=p``): even a string that slipped past escaping could neither run a
program nor read a file by absolute path or above the working folder. ``-recorder`` leaves a
``.fls`` list of every file TeX opened, which tests read to prove nothing else was touched.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path

from skillmaker.errors import UserError

__all__ = ["PDFLATEX", "LatexError", "compile_pdf", "log_excerpt"]

PDFLATEX = "pdflatex"
_ERROR_LINE = re.compile(r"^(!|\S+\.tex:\d+: )")
_DEBIAN_PACKAGES = "texlive-latex-base texlive-latex-recommended texlive-fonts-recommended lmodern"


class LatexError(UserError):
    """pdflatex stopped with an error; the message holds the relevant part of its log."""


def log_excerpt(log: str, tail: int = 25) -> str:
    """Give the first error of a TeX log with its context, then the log's last lines."""
    lines = log.splitlines()
    first = next((i for i, line in enumerate(lines) if _ERROR_LINE.match(line)), None)
    parts: list[str] = []
    if first is not None:
        parts.extend(lines[first : first + 8])
        parts.append("...")
    parts.extend(lines[-tail:])
    return "\n".join(parts)


def _environment(base: Mapping[str, str], source_date_epoch: int | None) -> dict[str, str]:
    env = dict(base)
    env.update({"openin_any": "p", "openout_any": "p", "shell_escape": "f", "LC_ALL": "C.UTF-8"})
    env.pop("TEXINPUTS", None)  # only the system's TeX tree and the working folder
    if source_date_epoch is not None:
        # pdfTeX stamps the PDF's dates (and derives its /ID) from this, not from the clock.
        env["SOURCE_DATE_EPOCH"] = str(source_date_epoch)
    return env


def compile_pdf(
    tex: Path,
    *,
    runs: int = 2,
    timeout: float = 300.0,
    source_date_epoch: int | None = None,
    env: Mapping[str, str] | None = None,
) -> Path:
    """Give the PDF compiled from ``tex`` (``runs`` passes, for references and the contents)."""
    executable = shutil.which(PDFLATEX, path=(env or os.environ).get("PATH"))
    if executable is None:
        raise UserError(
            f"{PDFLATEX} not found on PATH: the report needs LaTeX "
            f"(on Debian/Ubuntu: apt-get install {_DEBIAN_PACKAGES})"
        )
    folder = tex.parent
    argv = [
        executable,
        "-interaction=nonstopmode",
        "-halt-on-error",
        "-file-line-error",
        "-no-shell-escape",
        "-recorder",
        tex.name,
    ]
    environment = _environment(env if env is not None else os.environ, source_date_epoch)
    log = folder / f"{tex.stem}.log"
    for _ in range(runs):
        try:
            result = subprocess.run(
                argv,
                cwd=folder,
                env=environment,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise LatexError(f"{tex.name}: pdflatex ran longer than {timeout:.0f} s") from None
        if result.returncode != 0:
            text = (
                log.read_text(encoding="utf-8", errors="replace")
                if log.is_file()
                else result.stdout.decode(errors="replace")
            )
            raise LatexError(
                f"{tex.name}: pdflatex failed (exit {result.returncode}):\n{log_excerpt(text)}"
            )
    pdf = folder / f"{tex.stem}.pdf"
    if not pdf.is_file():
        raise LatexError(f"{tex.name}: pdflatex wrote no PDF")
    return pdf
