"""Pweave, run as ``python -m skillmaker.report.weave TEMPLATE OUTPUT.tex`` in a child process.

The child keeps Pweave's in-process IPython kernel, its ``Processing chunk`` chatter and its global
state out of the caller. Pweave's known traps are handled here: no matplotlib integration (its
``%matplotlib inline`` set-up and per-chunk ``rcParams`` hook are switched off; figures are files
the chunks write themselves), chunk output on stderr never lands in the document, a stdout stream
split in pieces is joined back so no blank line appears inside a table, and the first failing chunk
or inline expression stops the weave with its traceback instead of printing it into the PDF.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from typing import Any

from pweave import Pweb, rcParams
from pweave.processors import IPythonProcessor

__all__ = ["ChunkError", "ReportProcessor", "main", "weave"]

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


class ChunkError(Exception):
    """A chunk or inline expression of the template raised; the message holds its traceback."""


class ReportProcessor(IPythonProcessor):  # type: ignore[misc]
    """Pweave's IPython processor without matplotlib hooks, failing on the first error."""

    def init_matplotlib(self) -> None:
        """Leave matplotlib alone (the chunks draw on their own Agg figures)."""

    def pre_run_hook(self, chunk: dict[str, Any]) -> None:
        """Skip Pweave's per-chunk ``matplotlib.rcParams`` update."""

    def loadstring(self, code_str: str, **kwargs: Any) -> list[dict[str, Any]]:
        """Give the outputs of running code: stdout joined, stderr passed on, errors raised."""
        outputs: list[dict[str, Any]] = self.run_cell(code_str)
        kept: list[dict[str, Any]] = []
        for out in outputs:
            kind = out.get("output_type")
            if kind == "error":
                trace = _ANSI.sub("", "\n".join(out.get("traceback", [])))
                chunk = kwargs.get("chunk")
                # Pweave's start_line is the line of the chunk's closing "@".
                where = (
                    f"chunk {chunk['number']} (ending at line {chunk['start_line']})"
                    if chunk
                    else "inline code"
                )
                raise ChunkError(f"{where} failed:\n{code_str.strip()}\n{trace}")
            if kind == "stream" and out.get("name") == "stderr":
                sys.stderr.write(out.get("text", ""))
                continue
            if kind == "stream" and kept and kept[-1].get("output_type") == "stream":
                kept[-1] = {**kept[-1], "text": kept[-1]["text"] + out.get("text", "")}
                continue
            kept.append(out)
        return kept


def weave(template: Path, output: Path) -> Path:
    """Give the LaTeX file woven from ``template`` (chunks run with the current folder as cwd)."""
    rcParams["usematplotlib"] = False
    rcParams["storeresults"] = False
    document = Pweb(
        str(template), doctype="tex", kernel="python3", output=str(output), figdir="figures"
    )
    document.run(Processor=ReportProcessor)
    document.format()
    document.write()
    return output


def main(argv: list[str] | None = None) -> int:
    """Weave ``TEMPLATE`` into ``OUTPUT``; give 0, or 1 with the failing chunk in ``ERROR_FILE``."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 3:
        print(
            "usage: python -m skillmaker.report.weave TEMPLATE.texw OUTPUT.tex ERROR_FILE",
            file=sys.stderr,
        )
        return 2
    try:
        weave(Path(args[0]), Path(args[1]))
    except ChunkError as exc:
        Path(args[2]).write_text(str(exc), encoding="utf-8")
        print(f"{args[0]}: {exc}", file=sys.stderr)
        sys.stderr.flush()
        # The in-process kernel was left running mid-chunk; skip its noisy asyncio teardown.
        os._exit(1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
