"""The docs stay true: option tables equal what the code renders, links resolve inside the repository,
no tracked file names a path outside it, and the console entry point configures the numerics first."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pytest

from benchmarks.report.options import PAGES, field_comments, marked_tables, option_rows, render_page, stale_pages, tables

ROOT = Path(__file__).resolve().parents[1]


# --- option tables rendered from the code --------------------------------------------------------
@dataclass(frozen=True)
class Example:
    # Window start and end, shared by the next field.
    start: int = 0
    end_fraction: float = 0.5
    form: Literal["a", "b"] = "a"  # "a" | "b"

    gap: float | None = None
    names: list[str] = field(default_factory=lambda: ["x"])


def test_rows_take_defaults_values_and_comments_from_the_dataclass():
    rows = option_rows(Example, "ex.")
    assert [r.keys for r in rows] == [["ex.start", "ex.end_fraction"], ["ex.form"], ["ex.gap"], ["ex.names"]]
    start, form, gap, names = rows
    assert start.defaults == ["`0`", "`0.5`"] and start.values == "int, float"
    assert start.note == "Window start and end, shared by the next field."
    assert form.values == "`a` \\| `b`" and form.note == '"a" \\| "b"'  # pipes escaped inside a table cell
    assert gap.defaults == ["`null`"] and gap.values == "float or `null`" and gap.note == ""
    assert names.defaults == ["`[x]`"] and names.values == "list of str"
    assert field_comments(Example)[1] == {"end_fraction": "start"}


def test_render_page_replaces_only_between_markers():
    page = "intro\n<!-- options:t -->\nold\n<!-- /options:t -->\noutro\n"
    assert render_page(page, {"t": lambda: "new"}) == "intro\n<!-- options:t -->\nnew\n<!-- /options:t -->\noutro\n"
    from benchmarks.core.strict import ConfigError

    with pytest.raises(ConfigError, match="no such table"):
        render_page(page, {})


def test_committed_option_tables_equal_what_the_code_renders():
    assert stale_pages(ROOT, write=False) == [], "run `python -m benchmarks docs` and commit the pages"


def test_every_method_dataset_and_config_has_its_table_in_the_docs():
    missing = sorted(set(tables()) - marked_tables(ROOT))
    assert not missing, (f"no table for {missing} in {PAGES}: run `python -m benchmarks docs` (it adds a new "
                         "method's section to docs/methods.md; other tables need <!-- options:NAME --> markers)")


# --- nothing outside the repository ---------------------------------------------------------------
# Written so that this file does not match them itself.
OUTSIDE = [
    (re.compile(r"\.\./sh[a]red"), "a sibling folder of the checkout"),
    (re.compile(r"/w[o]rk/"), "a machine's work folder"),
    (re.compile(r"/h[o]me/[\w.-]+"), "a home folder"),
    (re.compile(r"/U[s]ers/[\w.-]+"), "a home folder"),
    (re.compile(r"(?<![\w.])/r[o]ot/"), "the administrator's home folder"),
    (re.compile(r"\b(dagr-p[a]per|more-m[e]thods|a[n]chors|envir[o]nment)\.md\b"), "a reference note not in the repository"),
    (re.compile(r"(?<![\w/-])b[a]selines\.md\b"), "a reference note not in the repository"),
]


def tracked_text_files() -> dict[str, str]:
    try:
        names = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout: the tracked files are unknown")
    texts = {}
    for name in filter(None, names.decode().split("\0")):
        path = ROOT / name
        if not path.is_file():
            continue  # deleted in the work tree
        data = path.read_bytes()
        if b"\0" not in data[:8192]:
            texts[name] = data.decode("utf-8", errors="replace")
    return texts


def test_no_tracked_file_names_a_path_outside_the_repository():
    found = [f"{name}:{text.count(chr(10), 0, m.start()) + 1}: {m.group()!r} ({why})"
             for name, text in tracked_text_files().items() for pattern, why in OUTSIDE
             for m in pattern.finditer(text)]
    assert not found, "\n".join(found)


LINK = re.compile(r"\]\((?!https?://|mailto:|#)([^)\s]+)\)")


def test_markdown_links_resolve_inside_the_repository():
    broken = []
    for name, text in tracked_text_files().items():
        if not name.endswith(".md"):
            continue
        for m in LINK.finditer(text):
            target = ((ROOT / name).parent / m.group(1).split("#")[0]).resolve()
            if ROOT not in (target, *target.parents) or not target.exists():
                broken.append(f"{name}: {m.group(1)}")
    assert not broken, "\n".join(broken)


# --- the console entry point ----------------------------------------------------------------------
def test_console_entry_point_is_declared_and_configures_numerics_before_torch():
    tomllib = pytest.importorskip("tomllib")
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["geomreg-bench"] == "benchmarks.__main__:console_main"
    code = ("import sys; from benchmarks.__main__ import console_main; assert 'torch' not in sys.modules; "
            "sys.argv = ['geomreg-bench', '--help']\n"
            "try:\n    console_main()\nexcept SystemExit as done:\n    assert done.code == 0\n"
            "import os; print(os.environ['GEOMREG_NUMERICS'], os.environ['ATEN_CPU_CAPABILITY'])")
    env = {k: v for k, v in os.environ.items() if k not in ("GEOMREG_NUMERICS", "ATEN_CPU_CAPABILITY")}
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                         check=True).stdout
    assert out.startswith("usage: geomreg-bench")
    assert out.rstrip().endswith("portable avx2")
    from benchmarks.__main__ import SUMMARIES

    for name, summary in SUMMARIES.items():  # one line per command
        assert f"  {name:<11} {summary}\n" in out


def test_the_library_defaults_of_dagr_are_the_documented_ones():
    """``geomreg.DAGR()`` and the suite's ``DAGRConfig`` (whose table is in docs/dagr.md) agree."""
    import dataclasses
    import inspect

    from benchmarks.grid.config import DAGRConfig
    from geomreg import DAGR

    library = {name: p.default for name, p in inspect.signature(DAGR.__init__).parameters.items() if name != "self"}
    suite = {f.name: f.default for f in dataclasses.fields(DAGRConfig) if f.name != "enabled"}
    assert library == suite


def test_docs_adds_the_section_of_a_method_the_page_lacks_after_the_last_methods_section():
    from baselines import METHODS
    from benchmarks.report.options import shipped_methods, with_method_sections

    page = "# M\n\n## Joint training (`joint`)\n\nOne step.\n\n## The cost\n\nText.\n"
    text = with_method_sections(page)
    names = [name for name in shipped_methods(METHODS) if name != "joint"]
    assert text.startswith(page.split("## The cost")[0]) and text.endswith("## The cost\n\nText.\n")
    for name in names:
        assert f"## {METHODS[name].title} (`{name}`)\n\n*To be written*: what one step does" in text
    assert "<!-- options:method:dgl -->\n<!-- /options:method:dgl -->" in text  # rendered by render_page
    assert "options:method:joint" not in text  # joint has no params
    assert [text.index(f"(`{n}`)") for n in names] == sorted(text.index(f"(`{n}`)") for n in names)
    assert with_method_sections(text) == text
    assert "It never takes DAGR." in text.split("(`unimodal`)")[1].split("##")[0]
