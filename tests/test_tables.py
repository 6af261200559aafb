"""Golden-file test of the table builder on committed fake records (tests/data/fake_runs).

Each cell's seeds are m-2, m, m+2 so the expected means and std (2.00) are checkable by hand;
the test-selected table is 10 points higher everywhere (see tests/data/make_fake_runs.py).
Regenerate the expected file after a deliberate format change:
    python tests/test_tables.py --regenerate
"""
import re
import sys
from pathlib import Path

import pandas as pd

from benchmarks.tables import load_records, render

DATA = Path(__file__).parent / "data"
EXPECTED = DATA / "expected_table.md"


def render_fake(out: Path) -> str:
    records, failed = load_records(DATA / "fake_runs" / "fake")
    return render(records, out, "fake: golden table", failed=failed, missing=["joint+dagr-s3"])


def test_table_matches_golden_file(tmp_path):
    assert render_fake(tmp_path) == EXPECTED.read_text()


def test_hand_computed_cells(tmp_path):
    text = render_fake(tmp_path)
    assert "| Joint training | 50.00 ± 2.00 | 55.00 ± 2.00 | +5.00 | 30.00 ± 2.00 | 36.00 ± 2.00 | +6.00 " \
           "| 85.00 ± 2.00 | 86.00 ± 2.00 | +1.00 |" in re.sub(" +", " ", text)
    assert "| Joint training | 1.00 | 1.00 | 1.10 | 1.10 |" in re.sub(" +", " ", text)
    assert "- FAILED: joint-s3 (NonFiniteLossError: boom)" in text
    assert "- MISSING: joint+dagr-s3" in text
    csv = pd.read_csv(tmp_path / "table.csv")
    paper = csv[(csv.selection == "best_test") & (csv.method == "Joint training") & (csv.arm == "none")
            & (csv.column == "Multi")]
    assert paper["mean"].item() == 95.0 and paper["n"].item() == 3
    assert (tmp_path / "table.tex").read_text().startswith("\\begin{tabular}")


if __name__ == "__main__" and "--regenerate" in sys.argv:
    import tempfile

    EXPECTED.write_text(render_fake(Path(tempfile.mkdtemp())))
