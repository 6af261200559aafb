"""The generated tables spliced into a page (the README, docs/performance.md) between markers."""
from __future__ import annotations

import re
from pathlib import Path

from ..core.records import atomic_write_text


def splice_table(readme: Path, name: str, markdown: str) -> None:
    """Replace the text between the table markers with the generated table, less its test-selected
    section (the README shows the honest protocol; table.md keeps both)."""
    begin, end = f"<!-- table:{name} -->", f"<!-- /table:{name} -->"
    text = readme.read_text()
    if begin not in text or end not in text:
        print(f"note: {readme} has no {begin} ... {end} markers; it was not updated")
        return
    sections = markdown.split("\n## ")
    section = "\n## ".join(s for s in sections if not s.startswith("Test-selected")).strip()
    section = re.sub(r"^#", "###", section, flags=re.MULTILINE)  # nested under the README's own headings
    head, rest = text.split(begin, 1)
    atomic_write_text(readme, f"{head}{begin}\n{section}\n{end}{rest.split(end, 1)[1]}")
