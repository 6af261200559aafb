"""Option tables of the docs, rendered from the code (``python -m benchmarks docs``).

Every table lists the fields of one config or ``Params`` dataclass with its default, its values and
the comment the code gives it, so the documented defaults are the ones the code runs. A docs page
holds a table between ``<!-- options:NAME -->`` and ``<!-- /options:NAME -->``; :func:`render_page`
replaces what lies between the markers and leaves the rest of the page alone. A test fails when a
committed page differs from what the code renders (``python -m benchmarks docs --check``).

Comments become the "meaning" column: the comment lines right above a field and the comment at the
end of its line. Fields that follow a commented field without a blank line and have no comment of
their own share its row (``modulation_start``, ``modulation_end_fraction``).
"""
from __future__ import annotations

import ast
import dataclasses
import inspect
import io
import re
import textwrap
import tokenize
import types
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, Union

from ..core.strict import ConfigError

# The pages that carry option tables, relative to the repository root.
METHODS_PAGE = "docs/methods.md"
PAGES = ("docs/dagr.md", METHODS_PAGE, "docs/datasets.md", "docs/configs.md")
MARKER = re.compile(r"<!-- options:(?P<name>[\w:-]+) -->\n.*?<!-- /options:(?P=name) -->", re.DOTALL)
METHOD_HEADING = re.compile(r"^## .*\(`(?P<name>\w+)`\)$", re.MULTILINE)  # "## DGL (`dgl`)"
STUB = "*To be written*"  # the prose of a section `docs` added: what one step does, sources, deviations


@dataclasses.dataclass
class Row:
    keys: list[str]
    defaults: list[str]
    values: str
    note: str


def tables() -> dict[str, Callable[[], str]]:
    """Every table the docs may hold, by marker name."""
    from baselines import METHODS, NoParams
    from benchmarks.data import DATASETS
    from benchmarks.grid import config

    found: dict[str, Callable[[], str]] = {
        "run": lambda: options_table(config.RunConfig),
        "data": lambda: options_table(config.DataConfig, "data."),
        "model": lambda: options_table(config.ModelConfig, "model."),
        "optim": lambda: options_table(config.OptimConfig, "optim."),
        "eval": lambda: options_table(config.EvalConfig, "eval."),
        "dagr": lambda: options_table(config.DAGRConfig, "dagr."),
        "grid": lambda: options_table(config.GridConfig),
        "dagr-rules": dagr_rules_table,
    }
    for name, cls in shipped_methods(METHODS).items():
        if cls.Params is not NoParams:
            found[f"method:{name}"] = (lambda p: lambda: options_table(p))(cls.Params)
    for name, dataset in DATASETS.items():
        found[f"dataset:{name}"] = (lambda p: lambda: options_table(p))(dataset.Params)
    return found


def render_page(text: str, known: dict[str, Callable[[], str]]) -> str:
    """The page with every option table between its markers re-rendered; an unknown name is an error."""
    def replace(match: re.Match) -> str:
        name = match["name"]
        if name not in known:
            raise ConfigError(f"<!-- options:{name} -->: no such table; known: {', '.join(sorted(known))}")
        return f"<!-- options:{name} -->\n{known[name]()}\n<!-- /options:{name} -->"

    return MARKER.sub(replace, text)


def stale_pages(root: Path, write: bool) -> list[str]:
    """The pages whose tables differ from what the code renders; ``write`` brings them up to date."""
    from ..core.records import atomic_write_text

    known, stale = tables(), []
    for page in PAGES:
        path = root / page
        text = path.read_text()
        rendered = render_page(with_method_sections(text) if page == METHODS_PAGE else text, known)
        if rendered != text:
            stale.append(page)
            if write:
                atomic_write_text(path, rendered)
    return stale


def with_method_sections(text: str) -> str:
    """docs/methods.md with a section for each method of the package it lacks (a new file in baselines/),
    after the last method's section: its options table, its DAGR rule and a stub for the prose."""
    from baselines import METHODS

    present = {m["name"] for m in METHOD_HEADING.finditer(text)}
    new = [method_section(name, cls) for name, cls in shipped_methods(METHODS).items() if name not in present]
    if not new:
        return text
    headings = list(METHOD_HEADING.finditer(text))
    after = text.find("\n## ", headings[-1].end()) if headings else -1
    head, tail = (text, "") if after < 0 else (text[:after + 1], text[after + 1:])
    return head.rstrip("\n") + "\n\n" + "\n".join(new) + ("\n" + tail if tail else "")


def method_section(name: str, cls: type) -> str:
    from baselines import NoParams

    dagr = f"With DAGR's fixed form, its loss is {cls.dagr_rule}." if cls.supports_dagr else "It never takes DAGR."
    lines = [f"## {cls.title} (`{name}`)", "",
             f"{STUB}: what one step does, where each default comes from, and each deviation from the official "
             f"code. {dagr}", ""]
    if cls.Params is not NoParams:
        lines += [f"<!-- options:method:{name} -->", f"<!-- /options:method:{name} -->", ""]
    return "\n".join(lines)


def stubbed_methods(root: Path) -> list[str]:
    """The methods whose section in docs/methods.md still has the stub in place of its prose."""
    text = (root / METHODS_PAGE).read_text()
    headings = list(METHOD_HEADING.finditer(text))
    ends = [h.start() for h in headings[1:]] + [len(text)]
    return [h["name"] for h, end in zip(headings, ends) if STUB in text[h.end():end]]


def marked_tables(root: Path) -> set[str]:
    """The table names the pages hold."""
    return {m["name"] for page in PAGES for m in MARKER.finditer((root / page).read_text())}


# --- one table ----------------------------------------------------------------------------------
def options_table(cls: type, prefix: str = "") -> str:
    rows = option_rows(cls, prefix)
    lines = ["| key | default | values | meaning and source |", "|---|---|---|---|"]
    lines += [f"| {', '.join(f'`{k}`' for k in row.keys)} | {', '.join(row.defaults)} | {row.values} | {row.note} |"
              for row in rows]
    return "\n".join(lines)


def option_rows(cls: type, prefix: str = "") -> list[Row]:
    """One row per field (nested config dataclasses are left to their own tables), grouped as
    the source groups them."""
    hints = typing.get_type_hints(cls)
    notes, groups = field_comments(cls)
    rows: list[Row] = []
    for f in dataclasses.fields(cls):
        hint = hints[f.name]
        if dataclasses.is_dataclass(hint):
            continue
        default, values = format_default(f), format_values(hint)
        if rows and groups.get(f.name) == rows[-1].keys[0].removeprefix(prefix):
            rows[-1].keys.append(prefix + f.name)
            rows[-1].defaults.append(default)
            if values not in rows[-1].values.split(", "):
                rows[-1].values += f", {values}"
            continue
        rows.append(Row([prefix + f.name], [default], values, notes.get(f.name, "")))
    return rows


def field_comments(cls: type) -> tuple[dict[str, str], dict[str, str]]:
    """``(notes, groups)``: each field's comment, from the most derived class that comments it, and
    for an uncommented field right below a field with a comment above it, that field's name."""
    notes: dict[str, str] = {}
    groups: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass):
            continue
        own_notes, own_groups = class_comments(klass)
        notes.update({k: v for k, v in own_notes.items() if v})
        groups.update(own_groups)
    return notes, groups


def class_comments(klass: type) -> tuple[dict[str, str], dict[str, str]]:
    source = textwrap.dedent(inspect.getsource(klass))
    lines = source.splitlines()
    comments = {tok.start[0]: tok.string.lstrip("#").strip()
                for tok in tokenize.generate_tokens(io.StringIO(source).readline) if tok.type == tokenize.COMMENT}
    body = [n for n in ast.parse(source).body[0].body
            if isinstance(n, ast.AnnAssign) and isinstance(n.target, ast.Name)]
    notes: dict[str, str] = {}
    groups: dict[str, str] = {}
    leader, previous_end = None, None
    for node in body:
        above = []
        line = node.lineno - 1
        while line >= 1 and line in comments and lines[line - 1].lstrip().startswith("#"):
            above.insert(0, comments[line])
            line -= 1
        trailing = [comments[node.end_lineno]] if node.end_lineno in comments else []
        name = node.target.id
        notes[name] = markdown_cell(" ".join(above + trailing))
        if above:
            leader = name
        elif not trailing and leader is not None and previous_end == node.lineno - 1:
            groups[name] = leader
        else:
            leader = None
        previous_end = node.end_lineno
    return notes, groups


def markdown_cell(text: str) -> str:
    """Text that stays inside one table cell and is shown as written (no HTML tags)."""
    return text.replace("|", "\\|").replace("<", "\\<")


def format_default(f: dataclasses.Field) -> str:
    if f.default is not dataclasses.MISSING:
        value = f.default
    elif f.default_factory is not dataclasses.MISSING:
        value = f.default_factory()
    else:
        return "required"
    return f"`{yaml_text(value)}`"


def yaml_text(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value) if len(repr(value)) <= 10 else f"{value:.6g}"
    if isinstance(value, list):
        return "[" + ", ".join(yaml_text(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {yaml_text(v)}" for k, v in value.items()) + "}"
    return str(value) if value != "" else '""'


def format_values(hint: Any) -> str:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is Literal:
        return " \\| ".join(f"`{a}`" for a in args)
    if origin in (Union, types.UnionType):
        kept = [a for a in args if a is not type(None)]
        text = " or ".join(format_values(a) for a in kept)
        return f"{text} or `null`" if len(kept) < len(args) else text
    if origin is list:
        return f"list of {format_values(args[0])}" if args else "list"
    if origin is dict:
        return "mapping"
    return getattr(hint, "__name__", str(hint))


def dagr_rules_table() -> str:
    """How DAGR's fixed-form loss joins each method (the Pareto form is added after every method)."""
    from baselines import METHODS

    lines = ["| method | where the fixed-form DAGR loss goes |", "|---|---|"]
    lines += [f"| {cls.title} (`{name}`) | {markdown_cell(cls.dagr_rule)} |"
              for name, cls in shipped_methods(METHODS).items() if cls.supports_dagr]
    return "\n".join(lines)


def shipped_methods(methods: dict[str, type]) -> dict[str, type]:
    """The methods of the package, without those a program or a test registers for itself."""
    return {name: cls for name, cls in methods.items() if cls.__module__.startswith("baselines.")}
