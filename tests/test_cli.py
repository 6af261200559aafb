"""The README table splice of ``python -m benchmarks tables --readme``."""
from benchmarks.report.readme import splice_table

MARKDOWN = "# t\n\nheader\n\n## Validation-selected\n\nA\n\n## Test-selected\n\nB\n\n## Cost\n\nC\n"


def test_splice_replaces_only_between_markers(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("intro\n<!-- table:x -->\nold\n<!-- /table:x -->\noutro\n")
    splice_table(readme, "x", MARKDOWN)
    text = readme.read_text()
    assert text.startswith("intro\n<!-- table:x -->\n### t") and text.endswith("<!-- /table:x -->\noutro\n")
    assert "A" in text and "#### Cost\n\nC" in text and "B" not in text and "old" not in text


def test_splice_without_markers_leaves_the_file(tmp_path, capsys):
    readme = tmp_path / "README.md"
    readme.write_text("no markers\n")
    splice_table(readme, "x", MARKDOWN)
    assert readme.read_text() == "no markers\n" and "not updated" in capsys.readouterr().out
