"""Generated text spliced into a page (the README, docs/performance.md) between markers.

The README shows a grid's front page (:func:`front_page`): the table's header and its
validation-selected table, the overview figure, and a link to ``table.md``, which keeps every section.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

from ..core.records import atomic_write_text

FRONT_PAGE_SECTIONS = ("Validation-selected",)  # the sections of table.md the README shows
OVERVIEW = "overview"  # the figure the README embeds: results/<grid>/figures/overview.png (figures.py)


def splice_table(page: Path, name: str, markdown: str) -> None:
    """Replace the text between ``<!-- table:NAME -->`` and ``<!-- /table:NAME -->`` with ``markdown``,
    its headings nested under the page's own."""
    begin, end = f"<!-- table:{name} -->", f"<!-- /table:{name} -->"
    text = page.read_text()
    if begin not in text or end not in text:
        print(f"note: {page} has no {begin} ... {end} markers; it was not updated")
        return
    section = re.sub(r"^#", "###", markdown.strip(), flags=re.MULTILINE)
    head, rest = text.split(begin, 1)
    atomic_write_text(page, f"{head}{begin}\n{section}\n{end}{rest.split(end, 1)[1]}")


# Header lines the README leaves to table.md: the dataset's parameters and the cells' full legend (the
# README's "Reading it" says what a cell is).
HEADER_LEFT_IN_TABLE = ("- benchmark:", "- cells:")


def front_page(markdown: str, results: Path, page: Path) -> str:
    """A grid's table as the README shows it: the header (less HEADER_LEFT_IN_TABLE) and the
    validation-selected table of ``markdown`` (the grid's table.md, written into the folder ``results``), the
    overview figure when
    it has been drawn, and a link to table.md naming the sections left there. Links are relative to
    the folder of ``page``."""
    head, *sections = markdown.split("\n## ")
    head = "\n".join(line for line in head.splitlines() if not line.startswith(HEADER_LEFT_IN_TABLE))
    shown = [s for s in sections if s.startswith(FRONT_PAGE_SECTIONS)]
    left = [s.split("\n", 1)[0] for s in sections if not s.startswith(FRONT_PAGE_SECTIONS)]
    parts = [head.rstrip(), *(f"## {s.rstrip()}" for s in shown)]
    figure = results / "figures" / f"{OVERVIEW}.png"
    if figure.exists():
        parts += [f"![The accuracy overview]({link(figure, page)})",
                  "Multimodal test accuracy at the validation-selected epoch per method and regularizer arm "
                  "(mean ± std over seeds; the unimodal references as lines), and each arm's Δ against no "
                  "regularizer with its 95% paired interval."]
    table = link(results / "table.md", page)
    rest = f": {'; '.join(left)}" if left else ""
    parts.append(f"The whole table is in [`{table}`]({table}){rest}.")
    return "\n\n".join(parts) + "\n"


def link(target: Path, page: Path) -> str:
    """``target`` relative to the folder of ``page``, as a Markdown link path."""
    return Path(os.path.relpath(target.resolve(), page.resolve().parent)).as_posix()
