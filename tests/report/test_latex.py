"""LaTeX escaping: unit rules, and a real pdflatex round trip printing every nasty string back."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from skillmaker.report.latex import (
    Tex,
    escape,
    escape_breakable,
    longtable,
    number,
    percent,
    tabular,
)
from skillmaker.report.pdflatex import compile_pdf
from tests.report.pdftools import pdf_text

needs_latex = pytest.mark.skipif(
    shutil.which("pdflatex") is None or shutil.which("pdftotext") is None,
    reason="pdflatex and pdftotext (texlive-latex-base, poppler-utils) are not installed",
)

NASTY = [
    r"50%_off & {new} #1 \input{/etc/passwd}",
    r"\def\x{1}\x \csname relax\endcsname \\ \\\\",
    r"^^5cinput{/etc/passwd} ^^M ^^^^0041",
    "~tilde~ $math$ a_b^c",
    "dash--and---em ,,low`` ''high'' !` ?` <<a>> |bar|",
    "quotes \"double\" and 'single' `grave`",
    "café Zürich Škoda Łódź Øresund naïve façade Ærø £5 €3 ¿qué?",
    "  two  spaces ",
    "".join(chr(c) for c in range(0x20, 0x7F)),
]


def test_every_special_character_becomes_a_command_that_prints_it() -> None:
    text = escape(r"\{}$&#^_%~")
    assert text == (r"\textbackslash{}\{\}\$\&\#\textasciicircum{}\_\%\textasciitilde{}")
    assert isinstance(text, Tex)


def test_escaped_text_never_holds_a_raw_special_character() -> None:
    for sample in NASTY:
        out = escape(sample)
        # Remove the commands escape itself writes; nothing special may be left over.
        for command in (
            r"\textbackslash{}", r"\textasciicircum{}", r"\textasciitilde{}", r"\textless{}",
            r"\textgreater{}", r"\textbar{}", r"\textquotedbl{}", r"\textquotesingle{}",
            r"\textasciigrave{}", r"\{", r"\}", r"\$", r"\&", r"\#", r"\_", r"\%", r"\ ",
        ):  # fmt: skip
            out = Tex(out.replace(command, ""))
        out = Tex(out.replace("{}", ""))
        assert not set(out) & set("\\{}$&#^_%~"), (sample, out)


def test_doubled_characters_cannot_form_ligatures_or_caret_notation() -> None:
    assert escape("--") == "-{}-"
    assert escape(",,") == ",{},"
    assert "^^" not in escape("^^5c")


def test_characters_without_a_glyph_print_as_code_points() -> None:
    assert escape("a\nb") == r"a\textless{}U+000A\textgreater{}b"
    assert escape("猫") == r"\textless{}U+732B\textgreater{}"
    assert escape("\x00") == r"\textless{}U+0000\textgreater{}"
    assert escape("é") == "é"  # in T1: passes as UTF-8


def test_decomposed_accents_are_composed_first() -> None:
    assert escape("e\u0301") == "é"


def test_breakable_escape_allows_breaks_only_after_separators() -> None:
    assert escape_breakable("a/b.c") == r"a/\allowbreak{}b.\allowbreak{}c"
    assert escape_breakable("abc/") == "abc/"


def test_numbers_and_percentages() -> None:
    assert number(12345) == "12{,}345"
    assert number(0.12345) == "0.123"
    assert number(None) == "---"
    assert percent(0.9531) == r"95.3\,\%"


def test_tables_end_each_row() -> None:
    table = tabular("lr", ["a", "b"], [["1", "2"]])
    assert r"1 & 2 \\" in table and r"\toprule" in table
    long = longtable("lr", ["a", "b"], [["1", "2"], ["3", "4"]])
    assert long.count(r"\endhead") == 1 and r"3 & 4 \\" in long


@needs_latex
def test_pdflatex_prints_every_nasty_string_exactly(tmp_path: Path) -> None:
    body = "\n\n".join(
        rf"\noindent\mbox{{BEGIN{i}:{escape(s)}:END{i}}}" for i, s in enumerate(NASTY)
    )
    tex = tmp_path / "strings.tex"
    tex.write_text(
        "\\documentclass{article}\n\\usepackage[T1]{fontenc}\n\\usepackage[utf8]{inputenc}\n"
        "\\usepackage{lmodern}\n\\usepackage{textcomp}\n\\input{glyphtounicode}\\pdfgentounicode=1\n"
        "\\usepackage[a3paper,landscape,margin=1cm]{geometry}\n"
        f"\\begin{{document}}\n{body}\n\\end{{document}}\n",
        encoding="utf-8",
    )
    text = pdf_text(compile_pdf(tex, runs=1))
    for index, sample in enumerate(NASTY):
        start = text.index(f"BEGIN{index}:") + len(f"BEGIN{index}:")
        shown = text[start : text.index(f":END{index}")]
        # pdftotext reports a control space as a plain space, so compare the words.
        assert shown.split() == sample.split(), (sample, shown)
    fls = (tmp_path / "strings.fls").read_text()
    assert "passwd" not in fls
