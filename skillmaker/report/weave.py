"""Pweave, run as ``python -m skillmaker.report.weave TEMPLATE OUTPUT.tex`` in a child process.

The child keeps Pweave's in-process IPython kernel, its ``Processing chunk`` chatter and its global
state out of the caller. Pweave's known traps are handled here: no matplotlib integration (its
``%matplotlib inline`` set-up and per-chunk ``rcParams`` hook are switched off; figures are files the
chunks write themselves), chunk output on stderr never lands in the document, a stdout stream split
in pieces is joined back so no blank line appears inside a table, and the first failing chunk or
inline expression stops the weave with its traceback instead of printing it into the PDF.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

__all__ = ["ChunkFailed", "main", "weave"]

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


class ChunkFailed(Exception):
    """A chunk or inline expression of the template raised; the message holds its traceback."""


def _processor_class() -> Any:
    from pweave.processors import IPythonProcessor

    class ReportProcessor(IPythonProcessor):  # type: ignore[misc]
        """Pweave's IPython processor without matplotlib hooks, failing on the first error."""

        def init_matplotlib(self) -> None:
            """Leave matplotlib alone (the chunks draw on their own Agg figures)."""

        def pre_run_hook(self, chunk: dict[str, Any]) -> None:
            """Skip Pweave's per-chunk ``matplotlib.rcParams`` update."""

        def loadstring(self, code_str: str, **kwargs: Any) -> list[dict[str, Any]]:
            outputs: list[dict[str, Any]] = self.run_cell(code_str)
            kept: list[dict[str, Any]] = []
            for out in outputs:
                kind = out.get("output_type")
                if kind == "error":
                    trace = _ANSI.sub("", "\n".join(out.get("traceback", [])))
                    chunk = kwargs.get("chunk")
                    where = f"chunk at line {chunk['start_line']}" if chunk else "inline code"
                    raise ChunkFailed(f"{where} failed:\n{code_str.strip()}\n{trace}")
                if kind == "stream" and out.get("name") == "stderr":
                    sys.stderr.write(out.get("text", ""))
                    continue
                if kind == "stream" and kept and kept[-1].get("output_type") == "stream":
                    kept[-1] = {**kept[-1], "text": kept[-1]["text"] + out.get("text", "")}
                    continue
                kept.append(out)
            return kept

    return ReportProcessor


def weave(template: Path, output: Path) -> Path:
    """Give the LaTeX file woven from ``template`` (chunks run with the current folder as cwd)."""
    from pweave import Pweb, rcParams

    rcParams["usematplotlib"] = False
    rcParams["storeresults"] = False
    document = Pweb(str(template), doctype="tex", kernel="python3", output=str(output), figdir="figures")
    document.run(Processor=_processor_class())
    document.format()
    document.write()
    return output


def main(argv: list[str] | None = None) -> int:
    """Weave ``argv[0]`` into ``argv[1]``; give 0, or 1 with the failing chunk on stderr."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python -m skillmaker.report.weave TEMPLATE.texw OUTPUT.tex", file=sys.stderr)
        return 2
    try:
        weave(Path(args[0]), Path(args[1]))
    except ChunkFailed as exc:
        print(f"{args[0]}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
