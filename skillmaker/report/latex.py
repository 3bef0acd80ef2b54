"""LaTeX text from untrusted strings: every class name, file key and title passes through here.

The escape is a whitelist: ASCII letters, digits and harmless punctuation pass as they are, every
LaTeX special character becomes a command that prints it, characters the document's fonts (T1 and
TS1 through ``inputenc``) can show pass as UTF-8, and anything else (control characters, scripts the
fonts lack) prints as a visible ``<U+XXXX>``. No output of ``escape`` can start a command, open a
group, change catcodes or reach TeX's ``^^`` notation, so a class called
``\\input{/etc/passwd}`` prints as written and reads nothing.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Sequence

__all__ = [
    "Tex",
    "escape",
    "escape_breakable",
    "join_rows",
    "longtable",
    "number",
    "percent",
    "tabular",
]


class Tex(str):
    """A string that is already LaTeX (escaped data or markup), shown as itself by Pweave."""

    __slots__ = ()

    def __repr__(self) -> str:
        # Pweave shows an inline expression's repr; a Tex value must appear as its LaTeX.
        return str(self)


# Printable ASCII that needs a command to print as itself (or to stop a ligature).
_ASCII_SPECIALS: dict[str, str] = {
    "\\": r"\textbackslash{}",
    "{": r"\{",
    "}": r"\}",
    "$": r"\$",
    "&": r"\&",
    "#": r"\#",
    "^": r"\textasciicircum{}",
    "_": r"\_",
    "%": r"\%",
    "~": r"\textasciitilde{}",
    "<": r"\textless{}",
    ">": r"\textgreater{}",
    "|": r"\textbar{}",
    '"': r"\textquotedbl{}",
    "'": r"\textquotesingle{}",
    "`": r"\textasciigrave{}",
}

# Characters that form a T1 ligature when doubled (-- and --- dashes, ,, a low quote).
_LIGATURE_PAIRS = frozenset("-,")

# Code points that LaTeX's utf8 input maps to glyphs of the T1 and TS1 encodings (from the
# kernel's t1enc.dfu and ts1enc.dfu); the report loads both, so these print as themselves.
_FONT_RANGES: tuple[tuple[int, int], ...] = (
    (0x00A0, 0x00B7), (0x00B9, 0x0125), (0x0128, 0x0137), (0x0139, 0x013E), (0x0141, 0x0148),
    (0x014A, 0x0165), (0x0168, 0x017E), (0x0192, 0x0192), (0x01C4, 0x01D4), (0x01E2, 0x01E3),
    (0x01E6, 0x01EB), (0x01F0, 0x01F0), (0x01F4, 0x01F5), (0x0218, 0x021B), (0x0232, 0x0233),
    (0x0237, 0x0237), (0x02C7, 0x02C7), (0x02D8, 0x02D9), (0x02DB, 0x02DB), (0x02DD, 0x02DD),
    (0x0E3F, 0x0E3F), (0x1E02, 0x1E03), (0x1E0D, 0x1E0D), (0x1E1E, 0x1E21), (0x1E25, 0x1E25),
    (0x1E30, 0x1E31), (0x1E37, 0x1E37), (0x1E43, 0x1E43), (0x1E45, 0x1E45), (0x1E47, 0x1E47),
    (0x1E5B, 0x1E5B), (0x1E63, 0x1E63), (0x1E6D, 0x1E6D), (0x1E8E, 0x1E91), (0x1E9E, 0x1E9E),
    (0x1EF2, 0x1EF3), (0x2010, 0x2016), (0x2018, 0x201A), (0x201C, 0x201E), (0x2020, 0x2022),
    (0x2030, 0x2031), (0x2039, 0x203B), (0x203D, 0x203D), (0x2044, 0x2044), (0x204E, 0x204E),
    (0x2052, 0x2052), (0x20A1, 0x20A1), (0x20A4, 0x20A4), (0x20A6, 0x20A6), (0x20A9, 0x20A9),
    (0x20AB, 0x20AC), (0x20B1, 0x20B1), (0x2103, 0x2103), (0x2116, 0x2117), (0x211E, 0x211E),
    (0x2120, 0x2120), (0x2122, 0x2122), (0x2126, 0x2127), (0x212E, 0x212E), (0x2190, 0x2193),
    (0x2329, 0x232A), (0x2422, 0x2423), (0x25E6, 0x25E6), (0x25EF, 0x25EF), (0x266A, 0x266A),
    (0x27E8, 0x27E9), (0x3008, 0x3009), (0xFB00, 0xFB06),
)  # fmt: skip

# Where a long word may break across lines in a narrow column.
_BREAK_AFTER = frozenset("/._-")


def _printable_by_fonts(code: int) -> bool:
    return any(low <= code <= high for low, high in _FONT_RANGES)


def _char(char: str) -> str:
    code = ord(char)
    if 0x20 <= code < 0x7F:
        return _ASCII_SPECIALS.get(char, char)
    if code >= 0xA0 and _printable_by_fonts(code):
        return char
    # Control characters, lone surrogates and glyphs the fonts lack: visible, never raw.
    return rf"\textless{{}}U+{code:04X}\textgreater{{}}"


def _escape(text: str, *, breakable: bool) -> str:
    text = unicodedata.normalize("NFC", text)
    parts: list[str] = []
    previous = ""
    for index, char in enumerate(text):
        if char == " ":
            # TeX merges spaces; a control space keeps each one (and a leading one) visible.
            parts.append(" " if previous not in ("", " ") else r"\ ")
        else:
            parts.append(_char(char))
        nxt = text[index + 1] if index + 1 < len(text) else ""
        if char in _LIGATURE_PAIRS and nxt == char:
            parts.append("{}")
        if breakable and char in _BREAK_AFTER and nxt:
            parts.append(r"\allowbreak{}")
        previous = char
    return "".join(parts)


def escape(text: object) -> Tex:
    """Give LaTeX that prints ``text`` exactly as written (see the module notes for limits)."""
    return Tex(_escape(str(text), breakable=False))


def escape_breakable(text: object) -> Tex:
    """Give LaTeX that prints ``text`` as written and may wrap after ``/ . _ -`` (keys, paths)."""
    return Tex(_escape(str(text), breakable=True))


def number(value: float | int | None, digits: int = 3) -> Tex:
    """Give a number with ``digits`` decimals (integers as they are), or an em dash for None."""
    if value is None:
        return Tex("---")
    if isinstance(value, int) and not isinstance(value, bool):
        return Tex(f"{value:,}".replace(",", "{,}"))
    return Tex(f"{float(value):.{digits}f}")


def percent(value: float | None, digits: int = 1) -> Tex:
    """Give a fraction as a percentage (0.953 -> 95.3\\,\\%), or an em dash for None."""
    if value is None:
        return Tex("---")
    return Tex(f"{float(value) * 100:.{digits}f}\\,\\%")


def join_rows(rows: Iterable[Sequence[str]]) -> str:
    """Give table rows (cells already LaTeX) joined with ``&`` and ended with ``\\\\``."""
    return "\n".join(" & ".join(row) + r" \\" for row in rows)


def tabular(spec: str, header: Sequence[str], rows: Iterable[Sequence[str]]) -> Tex:
    """Give a booktabs ``tabular`` (cells already LaTeX), centred."""
    body = join_rows(rows)
    return Tex(
        "\\begin{center}\n"
        f"\\begin{{tabular}}{{{spec}}}\n\\toprule\n"
        f"{join_rows([header])}\n\\midrule\n{body}\n\\bottomrule\n"
        "\\end{tabular}\n\\end{center}\n"
    )


def longtable(spec: str, header: Sequence[str], rows: Iterable[Sequence[str]]) -> Tex:
    """Give a booktabs ``longtable`` that breaks across pages and repeats its header."""
    head = join_rows([header])
    columns = len(header)
    return Tex(
        f"\\begin{{longtable}}{{{spec}}}\n\\toprule\n{head}\n\\midrule\n\\endfirsthead\n"
        f"\\toprule\n{head}\n\\midrule\n\\endhead\n"
        f"\\midrule\n\\multicolumn{{{columns}}}{{r}}{{\\footnotesize continued on the next page}}"
        " \\\\\n\\endfoot\n\\bottomrule\n\\endlastfoot\n"
        f"{join_rows(rows)}\n\\end{{longtable}}\n"
    )
