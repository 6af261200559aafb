"""Command line: ``python -m benchmarks {reproduce,grid,tables,list} ...``."""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from .strict import ConfigError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for name, help_text in (("reproduce", "train the grid, then render its tables"),
                            ("grid", "train every run of a grid (finished runs are skipped)"),
                            ("tables", "render results/<benchmark>/table.{md,csv,tex} from the records")):
        p = sub.add_parser(name, help=help_text)
        p.add_argument("config", help="grid YAML, e.g. benchmarks/configs/avdigits.yaml")
        p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                       help="override a config value, e.g. --set run.optim.epochs=5 (repeatable)")
        p.add_argument("--runs", default="runs", help="root folder of run directories (default: runs)")
        p.add_argument("--results", default="results", help="root folder of tables (default: results)")
        p.add_argument("--no-progress", action="store_true", help="hide progress bars")
        p.add_argument("--readme", help="also copy the validation-selected table into this file, between "
                                        "<!-- table:BENCHMARK --> and <!-- /table:BENCHMARK --> markers")
    sub.add_parser("list", help="list registered methods and datasets")
    args = parser.parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except (ConfigError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


def cmd_list(args) -> int:
    from baselines import METHODS
    from benchmarks.data import DATASETS

    print("methods (name: how DAGR joins it):")
    for name, cls in METHODS.items():
        print(f"  {name}: {cls.dagr_rule}")
    print("datasets:", ", ".join(DATASETS))
    return 0


def cmd_grid(args) -> int:
    from .config import load_grid
    from .runner import run_grid

    grid = load_grid(args.config, args.overrides)
    report = run_grid(grid, Path(args.runs), progress=not args.no_progress)
    print(report.summary())
    return 0


def cmd_tables(args) -> int:
    from .config import expand_grid, load_grid
    from .runner import run_dir_for
    from .tables import render

    grid = load_grid(args.config, args.overrides)
    missing = [cfg.label for cfg in expand_grid(grid)
               if not run_dir_for(cfg, Path(args.runs)).is_done()]
    out = Path(args.results) / grid.benchmark
    title = grid.title or f"{grid.benchmark}: accuracy without and with DAGR"
    markdown = render(Path(args.runs) / grid.benchmark, out, title, missing)
    if args.readme:
        splice_table(Path(args.readme), grid.benchmark, markdown)
    print(f"wrote {out}/table.md, table.csv, table.tex" + (f" ({len(missing)} runs missing)" if missing else ""))
    return 0


def splice_table(readme: Path, benchmark: str, markdown: str) -> None:
    """Replace the text between the table markers with the generated validation-selected and cost sections."""
    from .records import atomic_write_text

    begin, end = f"<!-- table:{benchmark} -->", f"<!-- /table:{benchmark} -->"
    text = readme.read_text()
    if begin not in text or end not in text:
        print(f"note: {readme} has no {begin} ... {end} markers; it was not updated")
        return
    selected, _, rest = markdown.partition("## Test-selected")
    section = selected.strip() + ("\n\n## Cost" + rest.split("## Cost", 1)[1].rstrip() if "## Cost" in rest else "")
    head, rest = text.split(begin, 1)
    atomic_write_text(readme, f"{head}{begin}\n{section}\n{end}{rest.split(end, 1)[1]}")


def cmd_reproduce(args) -> int:
    start = time.perf_counter()
    cmd_grid(args)
    cmd_tables(args)
    print((Path(args.results) / load_grid_benchmark(args) / "table.md").read_text())
    print(f"make reproduce: total wall time {time.perf_counter() - start:.1f} s")
    return 0


def load_grid_benchmark(args) -> str:
    from .config import load_grid

    return load_grid(args.config, args.overrides).benchmark


COMMANDS = {"list": cmd_list, "grid": cmd_grid, "tables": cmd_tables, "reproduce": cmd_reproduce}

if __name__ == "__main__":
    sys.exit(main())
