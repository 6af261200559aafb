"""The README's part of a grid's table (``python -m benchmarks tables --readme``) and the splice itself."""
import re
from pathlib import Path

from benchmarks.report.readme import front_page, splice_table

ROOT = Path(__file__).parents[1]
MARKDOWN = "# t\n\nheader\n\n## Validation-selected\n\nA\n\n## Test-selected\n\nB\n\n## Cost\n\nC\n"


def test_splice_replaces_only_between_markers_and_nests_the_headings(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("intro\n<!-- table:x -->\nold\n<!-- /table:x -->\noutro\n")
    splice_table(readme, "x", MARKDOWN)
    text = readme.read_text()
    assert text.startswith("intro\n<!-- table:x -->\n### t\n") and text.endswith("C\n<!-- /table:x -->\noutro\n")
    assert "#### Validation-selected\n\nA" in text and "#### Cost\n\nC" in text and "old" not in text


def test_splice_without_markers_leaves_the_file(tmp_path, capsys):
    readme = tmp_path / "README.md"
    readme.write_text("no markers\n")
    splice_table(readme, "x", MARKDOWN)
    assert readme.read_text() == "no markers\n" and "not updated" in capsys.readouterr().out


def test_front_page_keeps_the_header_and_the_validation_table_and_links_the_rest(tmp_path):
    results = tmp_path / "results" / "grid"
    text = front_page(MARKDOWN, results, tmp_path / "README.md")
    assert text == ("# t\n\nheader\n\n## Validation-selected\n\nA\n\n"
                    "The whole table is in [`results/grid/table.md`](results/grid/table.md): Test-selected; Cost.\n")
    (results / "figures").mkdir(parents=True)
    (results / "figures" / "overview.png").write_bytes(b"png")
    text = front_page(MARKDOWN, results, tmp_path / "docs" / "page.md")  # links from the page's folder
    assert "\n\n![The accuracy overview](../results/grid/figures/overview.png)\n\nMultimodal test accuracy " in text
    assert text.endswith("[`../results/grid/table.md`](../results/grid/table.md): Test-selected; Cost.\n")


def test_front_page_of_the_fake_records_drops_the_paired_statistics(tmp_path):
    from test_tables import render_fake

    results = tmp_path / "results" / "fake"
    markdown = render_fake(results)
    readme = tmp_path / "README.md"
    readme.write_text("# Suite\n\n<!-- table:fake -->\n<!-- /table:fake -->\n\nMore.\n")
    splice_table(readme, "fake", front_page(markdown, results, readme))
    text = re.sub(" +", " ", readme.read_text())
    assert "### fake: golden table\n" in text and "- MISSING: joint+dagr-s3" in text  # the header, nested
    assert "- seeds:" in text and "- cells:" not in text and "- benchmark:" not in text  # those stay in table.md
    assert "- cells:" in markdown and "- benchmark:" in markdown
    assert "#### Validation-selected (our protocol)" in text
    assert "| Joint training | 50.00 ± 2.00 | 55.00 ± 2.00 | +5.00 [+0.03, +9.97] within noise |" in text
    assert "Paired statistics" not in text.split("The whole table is in")[0] and "95.00" not in text
    assert ("The whole table is in [`results/fake/table.md`](results/fake/table.md): Test-selected (paper "
            "protocol, optimistic); Paired statistics (validation-selected); Cost.\n<!-- /table:fake -->\n\nMore.\n"
            in text)


def test_the_readme_shows_the_front_page_of_the_committed_powered_table():
    """`make powered` writes results/avdigits_powered/table.md and the README's headline block together: the
    block must be what the code makes of the committed table, with the committed overview figure."""
    results, readme = ROOT / "results" / "avdigits_powered", ROOT / "README.md"
    assert (results / "figures" / "overview.png").exists()
    block = readme.read_text().split("<!-- table:avdigits_powered -->\n", 1)[1].split("<!-- /table:avdigits_powered -->", 1)[0]
    expected = front_page((results / "table.md").read_text(), results, readme)
    assert block == re.sub(r"^#", "###", expected.strip(), flags=re.MULTILINE) + "\n"
    assert "![The accuracy overview](results/avdigits_powered/figures/overview.png)" in block


def test_reproduce_draws_the_figures_and_the_readme_embeds_the_overview(tmp_path, capsys):
    from benchmarks.__main__ import main as cli

    readme = tmp_path / "README.md"
    readme.write_text("<!-- table:debug -->\n<!-- /table:debug -->\n")
    args = ["benchmarks/configs/debug.yaml", "--runs", str(tmp_path / "runs"), "--results", str(tmp_path / "results"),
            "--readme", str(readme), "--no-progress", "--set", "seeds=[0]", "--set", "run.optim.epochs=1",
            "--set", "references=[]"]
    assert cli(["reproduce", *args]) == 0
    figures = tmp_path / "results" / "debug" / "figures"
    assert {p.name for p in figures.iterdir()} >= {"overview.png", "overview.pdf", "curves_joint.png"}
    assert "![The accuracy overview](results/debug/figures/overview.png)" in readme.read_text()
