"""Command line of the suite: ``geomreg-bench COMMAND ...`` or ``python -m benchmarks COMMAND ...``.

Exit codes (benchmarks.core.errors): 0 done; 1 the data cannot reproduce the tables; 2 usage or
configuration error; 3 runs of the grid failed; 4 a folder or file cannot be read or written;
130 interrupted. ``COMMAND --help`` gives each command's options; docs/ explains them.
"""
from __future__ import annotations

import sys


def configure_process(argv: list[str]) -> None:
    """Before anything imports torch: the numerics mode pins its CPU kernels (benchmarks.core.numerics),
    and freed memory stays in the process (benchmarks.core.allocator); worker processes inherit both."""
    from benchmarks.core import allocator, numerics

    numerics.configure(numerics.mode_from_argv(argv))
    allocator.configure()


if __name__ == "__main__":
    configure_process(sys.argv[1:])

import argparse
import time
from pathlib import Path

from .core import errors
from .core.strict import ConfigError, did_you_mean

DISK_DATASETS = ("cremad", "kinetics_sounds")
# Every command with its one-line summary, in the order --help lists them.
SUMMARIES = {
    "reproduce": "train a grid (finished runs are skipped), then draw its figures and render its tables",
    "grid": "train every run of a grid (finished runs are skipped, interrupted ones resume)",
    "tables": "render results/<config>/table.{md,csv,tex} and per_seed.csv from the run records",
    "figures": "draw results/<config>/figures/*.{png,pdf} from the run records",
    "robustness": "test accuracy of a grid's finished runs with one modality missing or corrupted",
    "verify": ("re-train a fixed sample of a grid: identical to, consistent with, or inconsistent with its committed "
               "results"),
    "repeatability": "train a short sample of a grid three ways on this machine and check that the records repeat",
    "bn-check": ("re-train one run to an epoch and validate it with its BatchNorm statistics as trained and "
                 "re-estimated"),
    "seed-plan": "choose a powered grid's seed count from a pilot grid's committed per-seed results",
    "numerics-probe": "digest the kernels a run uses under each numerics setting, or compare two machines' digests",
    "list": "list the registered methods (with how DAGR joins each) and datasets",
    "prepare": "decode CREMA-D or Kinetics-Sounds once into a cache folder",
    "data-check": "check that a CREMA-D or Kinetics-Sounds copy can reproduce the tables",
    "docs": "render the option tables of docs/ from the code's config dataclasses",
}


def console_main() -> int:
    """The ``geomreg-bench`` console script: the same command line as ``python -m benchmarks``."""
    configure_process(sys.argv[1:])
    return main(prog="geomreg-bench")


def main(argv: list[str] | None = None, prog: str = "python -m benchmarks") -> int:
    commands = "\n".join(f"  {name:<11} {text}" for name, text in SUMMARIES.items())
    parser = argparse.ArgumentParser(prog=prog, description=__doc__, epilog=f"commands:\n{commands}",
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--numerics", choices=("portable", "native"),
                        help="CPU numerics: portable (default; AVX2 kernels, one thread per run: the same bits "
                             "on every x86-64 machine of one CPU vendor) or native (fastest kernels of this "
                             "processor); "
                             "also $GEOMREG_NUMERICS")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND",
                                help="one of the commands below")
    for name in ("reproduce", "grid", "tables", "figures", "robustness", "verify"):
        p = sub.add_parser(name, description=SUMMARIES[name])
        p.add_argument("config", help="grid YAML, e.g. benchmarks/configs/avdigits.yaml")
        p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                       help="override a config value, e.g. --set run.optim.epochs=5 (repeatable)")
        p.add_argument("--runs", default="runs", help="root folder of run directories (default: runs)")
        p.add_argument("--results", default="results",
                       help="root folder of tables (default: results); a variant of a committed grid (--set "
                            "overrides) writes build/results/<grid>+<what changed>/ instead (docs/configs.md)")
        add_plugin_argument(p)
    for name in ("reproduce", "tables", "figures", "robustness"):
        sub.choices[name].add_argument(
            "--overwrite-committed", action="store_true",
            help="write a variant's tables into the committed results/<grid>/ and README.md all the same")
    for name in ("reproduce", "grid", "tables"):
        p = sub.choices[name]
        p.add_argument("--no-progress", action="store_true", help="hide progress bars")
        p.add_argument("--readme", help="also copy the validation-selected table, the overview figure and a link "
                                        "to table.md into this file, between <!-- table:NAME --> and "
                                        "<!-- /table:NAME --> markers (NAME: the config file's stem)")
        p.add_argument("--against", metavar="METHOD",
                       help="also compare every method with this one of the grid's methods, paired by seed")
    sub.choices["tables"].add_argument(
        "--partial", action="store_true",
        help="render the tables although some runs of the grid have no record (their cells read –); without "
             "it such a grid is an error, as its seeds or --set overrides differ from the runs trained")
    for name in ("reproduce", "grid"):
        add_execution_arguments(sub.choices[name])
        add_allow_missing(sub.choices[name])
    add_robustness_arguments(sub.choices["robustness"])
    sub.choices["verify"].add_argument("--method", default="joint",
                                       help="the method whose runs (without and with DAGR, first seed) are "
                                            "re-trained with the references (default: joint)")
    sub.choices["verify"].add_argument("--jobs", type=int, default=1, metavar="N", help="runs trained at once")
    sub.choices["verify"].add_argument("--spread", metavar="CONFIG",
                                       help="the grid whose committed seeds give each cell's spread on hardware "
                                            "that is not bit-comparable (default: the grid itself)")
    add_probe_arguments(sub.add_parser("numerics-probe", description=SUMMARIES["numerics-probe"]))
    p = sub.add_parser("bn-check", description=SUMMARIES["bn-check"])
    p.add_argument("config", help="grid YAML, e.g. benchmarks/configs/avdigits_lr.yaml")
    p.add_argument("--method", required=True, help="the method whose run without DAGR is re-trained")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epoch", type=int, action="append", required=True, help="an epoch to check (repeatable)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="a config override, e.g. --set run.optim.lr=0.05 (repeatable)")
    p = sub.add_parser("seed-plan", description=SUMMARIES["seed-plan"])
    p.add_argument("pilot", help="the pilot grid's per_seed.csv, e.g. results/avdigits/per_seed.csv")
    p.add_argument("--target", action="append", default=[], type=key_value, metavar="METHOD=POINTS",
                   help="a method's 95%% half-width target; METHOD 'default' sets every other method's (repeatable)")
    p.add_argument("--max-seeds", type=int, default=30, help="the budget: at most this many seeds (default 30)")
    p.add_argument("--out", help="also write the plan to this markdown file")
    p = sub.add_parser("repeatability", description=SUMMARIES["repeatability"])
    p.add_argument("config", help="grid YAML, e.g. benchmarks/configs/avdigits.yaml")
    p.add_argument("--method", default="dgl", help="the method of the sample (default: dgl)")
    p.add_argument("--epochs", type=int, default=2, help="epochs of each run (default 2)")
    p.add_argument("--runs", default="build/repeatability",
                   help="an empty folder for the records (default: build/repeatability)")
    add_plugin_argument(sub.add_parser("list", description=SUMMARIES["list"]))
    add_data_commands(sub)
    add_plugin_argument(sub.choices["data-check"])
    p = sub.add_parser("docs", description=SUMMARIES["docs"] + ", between <!-- options:NAME --> markers")
    p.add_argument("--check", action="store_true", help="change nothing; exit 1 if a page differs from the code")
    p.add_argument("--root", default=str(Path(__file__).resolve().parents[1]),
                   help="the repository root (default: the checkout this package runs from)")
    args = parser.parse_args(argv)
    return run_command(args)


def run_command(args) -> int:
    """The command's exit code; every expected failure is one line on stderr (codes: benchmarks.core.errors)."""
    try:
        load_methods(args)
        return COMMANDS[args.command](args)
    except errors.DataNotSufficient as err:
        print(err, file=sys.stderr)
        return errors.DATA_NOT_SUFFICIENT
    except (ConfigError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return errors.USAGE
    except OSError as err:  # permissions, a read-only or full disk
        where = f": {err.filename}" if err.filename else ""
        print(f"error: {err.strerror or err}{where}", file=sys.stderr)
        return errors.FILESYSTEM
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return errors.INTERRUPTED


def add_plugin_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument("--plugin", dest="plugins", action="append", default=[], metavar="FILE_OR_MODULE",
                   help="also load the methods of this .py file or module (repeatable); installed packages' "
                        "methods in the entry-point group geomreg.methods are loaded always (docs/compare.md)")


def load_methods(args) -> None:
    """The methods from outside the package: installed entry points, then the --plugin sources."""
    from baselines.plugins import load_entry_points, load_plugins, plugin_source

    if not hasattr(args, "plugins"):  # prepare and docs read no method
        return
    load_entry_points()
    load_plugins([plugin_source(text) for text in args.plugins])


def add_robustness_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--seed", type=int, default=0, help="seed of the degradations (default 0); the same draws for "
                                                       "every run, so runs are compared on the same corruptions")
    p.add_argument("--force", action="store_true", help="measure again even where a run has a record of this protocol")
    p.add_argument("--no-progress", action="store_true", help="do not print each run as it is measured")


def add_probe_arguments(p: argparse.ArgumentParser) -> None:
    from .run.numerics_probe import SETTINGS

    p.add_argument("--out", help="write the digests to this JSON file (default: print them)")
    p.add_argument("--settings", nargs="+", choices=list(SETTINGS), default=list(SETTINGS), metavar="NAME",
                   help=f"the settings to probe (default: all of {', '.join(repr(n) for n in SETTINGS)})")
    p.add_argument("--steps", type=int, default=20, help="training steps per run of the default grid (default 20)")
    p.add_argument("--compare", nargs=2, metavar=("A", "B"),
                   help="compare two probe files instead; exit 1 unless the portable setting agrees")


def add_data_commands(sub) -> None:
    p = sub.add_parser("prepare", description=SUMMARIES["prepare"])
    p.add_argument("dataset", choices=DISK_DATASETS)
    p.add_argument("--raw", required=True, help="the dataset folder, in one of its layouts")
    p.add_argument("--out", required=True, help="folder of the prepared caches (the dataset param cache_dir)")
    p.add_argument("--force", action="store_true",
                   help="decode again even if the cache is up to date (it is decoded again anyway when the "
                        "dataset's files changed: size or modification time)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="a dataset param, e.g. --set layout=ogm_ge (repeatable)")
    p = sub.add_parser("data-check",
                       description=SUMMARIES["data-check"] + ". TARGET is a dataset (cremad, kinetics_sounds; give "
                                   "--root, and dataset params with --set key=value) or a grid YAML (the data its "
                                   "runs read, with the grid's --set overrides, e.g. --set run.data.params.root=DIR).")
    p.add_argument("target", metavar="TARGET", help="cremad, kinetics_sounds, or a grid YAML")
    p.add_argument("--root", help="the dataset folder (its cache: <root>/.geomreg-cache unless cache_dir is set)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="a dataset param (e.g. --set cache_dir=DIR), or for a grid YAML a config override "
                        "(e.g. --set run.data.params.cache_dir=DIR) (repeatable)")
    add_allow_missing(p)


def add_allow_missing(p: argparse.ArgumentParser) -> None:
    from .data.check import AllowMissing

    p.add_argument("--allow-missing", type=allow_missing_value, default=AllowMissing(), metavar="N",
                   help="accept a copy of CREMA-D or Kinetics-Sounds that lacks up to N listed clips (missing or "
                        "unreadable), or a fraction of them (e.g. 0.05), and train on the rest; the run records "
                        "and tables then say how many clips each split had (default 0)")


def allow_missing_value(text: str):
    from .data.check import AllowMissing

    try:
        return AllowMissing.parse(text)
    except ConfigError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def add_execution_arguments(p: argparse.ArgumentParser) -> None:
    """Where the runs execute (benchmarks.run.parallel); under torchrun, the ranks share each run instead."""
    from .run.parallel import EXECUTORS

    p.add_argument("--jobs", type=int, default=1, metavar="N",
                   help="executor local: train N runs at once, each in a worker process with cores/N threads "
                        "(default 1: one after another in this process)")
    p.add_argument("--executor", choices=EXECUTORS, default="local",
                   help="local: this machine (see --jobs); submitit-local: a submitit job array on this machine, "
                        "every job at once; slurm: a SLURM job array, one job per run (default: local)")
    jobs = p.add_argument_group("job resources (--executor submitit-local or slurm); logs in RUNS/BENCHMARK/_submitit")
    jobs.add_argument("--partition", help="SLURM partition (default: the cluster's)")
    jobs.add_argument("--gpus-per-job", type=int, default=0, metavar="G", help="GPUs per job (default 0)")
    jobs.add_argument("--cpus-per-job", type=int, metavar="C", help="CPUs per job; also its torch threads")
    jobs.add_argument("--mem-gb", type=float, metavar="GB", help="memory per job")
    jobs.add_argument("--time-min", type=int, default=60, metavar="MIN", help="time limit per job (default 60)")
    jobs.add_argument("--array-parallelism", type=int, metavar="K", help="at most K jobs of the array at once")
    jobs.add_argument("--sbatch", dest="sbatch", action="append", default=[], type=key_value, metavar="KEY=VALUE",
                      help="any other sbatch option, e.g. --sbatch account=proj --sbatch qos=high (repeatable)")


def key_value(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key, value


def cluster_options(args):
    from .run.parallel import ClusterOptions

    return ClusterOptions(partition=args.partition, gpus_per_job=args.gpus_per_job, cpus_per_job=args.cpus_per_job,
                          mem_gb=args.mem_gb, time_min=args.time_min, array_parallelism=args.array_parallelism,
                          extra=dict(args.sbatch))


def cmd_list(args) -> int:
    from baselines import METHODS
    from benchmarks.data import DATASETS

    print("methods (name: how DAGR's fixed form joins it; the default Pareto form adds its gradient to every "
          "method's encoder gradients after the method's own processing):")
    for name, cls in METHODS.items():
        print(f"  {name}: {cls.dagr_rule}")
    print("datasets:", ", ".join(DATASETS))
    return errors.OK


def dataset_params(dataset, overrides: list[str], **folders: str | None) -> object:
    """The dataset's Params from ``key=value`` strings and the folder options. Values are parsed as
    YAML, except for the text params (folders, layout): a folder named 2024 stays a folder name."""
    import typing

    import yaml

    from .core.strict import from_dict

    text = {name for name, hint in typing.get_type_hints(dataset.Params).items()
            if hint is str or str in typing.get_args(hint)}
    params = {key: value for key, value in folders.items() if value is not None}
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"--set {item!r} must look like key=value")
        key = key.strip()
        params[key] = value if key in text else yaml.safe_load(value)
    try:
        return from_dict(dataset.Params, params, "")
    except ConfigError as err:
        raise ConfigError(f"--set: {err}") from None


def cmd_prepare(args) -> int:
    from .data import get_dataset
    from .data.cache import prepare
    from .data.check import problem_lines

    dataset = get_dataset(args.dataset)
    given = {item.partition("=")[0].strip() for item in args.overrides} & {"root", "cache_dir"}
    if given:
        raise ConfigError(f"--set {sorted(given)[0]}: give the folders with --raw and --out")
    params = dataset_params(dataset, args.overrides, root=args.raw, cache_dir=args.out)
    cache = prepare(dataset, args.raw, args.out, params, force=args.force)
    left_out, warned = len(cache.skipped), len(cache.warnings)
    print(f"prepared {len(cache.index['clips'])} clips in {cache.path}"
          + (f"; {left_out} listed clips left out ({len(cache.unreadable)} unreadable, {len(cache.missing)} missing)"
             if left_out else "")
          + (f"; {warned} clips used with a warning" if warned else "")
          + (f"; all of them in {cache.problems_log}" if left_out or warned else ""))
    for line in problem_lines(cache.unreadable, cache.missing, cache.warnings, cache.problems_log):
        print(line)
    return errors.OK


def cmd_data_check(args) -> int:
    reports = data_check_reports(args)
    for report in reports:
        print(report.render(args.allow_missing))
    return errors.OK if all(r.sufficient(args.allow_missing) for r in reports) else errors.DATA_NOT_SUFFICIENT


def data_check_reports(args) -> list:
    """The reports for ``data-check TARGET``: one dataset, or every dataset a grid's runs read."""
    from .data import get_dataset
    from .data.check import data_check, disk_data
    from .grid.config import expand_grid, load_grid

    if args.target in DISK_DATASETS:
        if args.root is None:
            raise ConfigError(f"data-check {args.target}: give the dataset folder with --root")
        params = dataset_params(get_dataset(args.target), args.overrides, root=args.root)
        return [data_check(args.target, params)]
    if not args.target.endswith((".yaml", ".yml")):
        raise ConfigError(f"data-check: TARGET is one of {list(DISK_DATASETS)} or a grid YAML, got {args.target!r}")
    root = [f"run.data.params.root={args.root}"] if args.root else []
    runs = expand_grid(load_grid(args.target, [*root, *args.overrides]))
    data = disk_data(cfg.data for cfg in runs)
    if not data:
        raise ConfigError(f"{args.target}: its runs read no dataset from disk; there is nothing to check")
    return [data_check(d.name, d.params) for d in data]


def cmd_grid(args) -> int:
    return grid_outcome(train_grid(args))


def train_grid(args):
    from .grid.config import load_grid
    from .run.runner import run_grid

    grid = load_grid(args.config, args.overrides)
    return run_grid(grid, Path(args.runs), progress=not args.no_progress, jobs=args.jobs, executor=args.executor,
                    cluster=cluster_options(args), allow_missing=args.allow_missing)


def grid_outcome(report) -> int:
    """Print the grid's summary (each failed run with its reason); non-zero if any run failed."""
    from .train.distributed import current as current_ranks

    if current_ranks().is_main:  # under torchrun every rank has the same report
        print(report.summary(), file=sys.stdout if report.ok else sys.stderr)
    return errors.OK if report.ok else errors.RUNS_FAILED


def cmd_tables(args) -> int:
    render_tables(args, grid_targets(args), partial=args.partial)
    return errors.OK


def grid_targets(args):
    """Where this command writes (benchmarks.report.targets); says which committed targets it leaves alone."""
    from .report.targets import result_targets

    readme = Path(args.readme) if getattr(args, "readme", None) else None
    targets = result_targets(args.config, args.overrides, Path(args.results), readme, args.overwrite_committed)
    for note in targets.notes:
        print(f"note: {note}")
    return targets


def render_tables(args, targets, partial: bool) -> None:
    """Write the grid's tables into ``targets`` and print the table; a grid some of whose runs have no
    record is an error unless ``partial`` (its seeds or overrides differ from the runs trained)."""
    from .report.paper import load_paper_table
    from .report.summaries import grid_records, grid_row_titles
    from .report.readme import front_page, splice_table
    from .report.tables import render
    from .report.targets import shown
    from .grid.config import load_grid

    grid = load_grid(args.config, args.overrides)
    if args.against is not None and args.against not in grid.methods:
        raise ConfigError(f"--against {args.against!r}: not a method of this grid; choose from "
                          f"{sorted(grid.methods)}" + did_you_mean(args.against, grid.methods))
    records, failed, missing = grid_records(grid, Path(args.runs))
    if missing and not partial:
        total = len(records) + len(failed) + len(missing)
        raise ConfigError(f"{len(missing)} of the {total} runs of this grid have no record under "
                          f"{Path(args.runs) / grid.benchmark} (e.g. {', '.join(missing[:3])})"
                          + ("; with these seeds and --set overrides it is not the grid trained" if args.overrides
                             else "") + ": train them (`reproduce` with the same --set, or SEEDS and ARGS through "
                          "make), or render what there is with --partial")
    name = Path(args.config).stem
    title = grid.title or f"{grid.benchmark}: accuracy without and with DAGR"
    paper = load_paper_table(grid.paper) if grid.paper else None
    markdown = render(records, targets.folder, title, failed=failed, missing=missing, arms=grid.dagr_arms,
                      paper=paper, sweep=list(grid.sweep), rows=grid_row_titles(grid), against=args.against,
                      grid=name, powered=grid.powered or None,
                      arm_comparisons=[tuple(pair) for pair in grid.arm_comparisons])
    print(markdown)
    if targets.readme is not None:
        splice_table(targets.readme, name, front_page(markdown, targets.folder, targets.readme))
    print(f"wrote {shown(targets.folder)}/table.md, table.csv, table.tex, per_seed.csv"
          + (f" ({len(missing)} runs missing)" if missing else ""))


def cmd_reproduce(args) -> int:
    from .train.distributed import current as current_ranks

    from .report.figures import draw_grid_figures
    from .report.tables import minutes
    from .core.records import GRID_TIME, atomic_write_json
    from .run.runner import grid_time_record

    start = time.perf_counter()
    is_main = current_ranks().is_main
    targets = grid_targets(args) if is_main else None  # before training: a bad target fails at once
    report = train_grid(args)
    if is_main:  # under torchrun, rank 0 alone renders the tables
        record = grid_time_record(report, args.jobs, args.executor)
        if record is not None:  # before the tables, which quote it
            atomic_write_json(targets.folder / GRID_TIME, record)
        # The figures first: the README embeds the overview.
        draw_grid_figures(args.config, args.overrides, Path(args.runs), targets.folder / "figures")
        render_tables(args, targets, partial=True)  # the tables list the failed and missing runs too
        print(f"make reproduce: trained {len(report.done)} runs ({len(report.skipped)} were already done) in "
              f"{minutes(report.wall_time_s)} with {args.jobs} job{'s' if args.jobs != 1 else ''}; total wall time "
              f"{minutes(time.perf_counter() - start)}")
    return grid_outcome(report)  # last, where the failures are seen


def cmd_figures(args) -> int:
    from .report.figures import draw_grid_figures

    return draw_grid_figures(args.config, args.overrides, Path(args.runs), grid_targets(args).folder / "figures")


def cmd_robustness(args) -> int:
    from .report.robustness_report import render
    from .grid.config import load_grid
    from .train.robustness import grid_robustness

    grid = load_grid(args.config, args.overrides)
    measured = grid_robustness(grid, Path(args.runs), args.seed, args.force,
                               announce=(lambda _: None) if args.no_progress else print)
    if not measured.results:
        raise ConfigError(f"{args.config}: no finished runs to evaluate under {args.runs} "
                          f"({len(measured.missing)} not finished; train the grid first)")
    out = grid_targets(args).folder / "robustness"
    title = f"Robustness to a missing or corrupted modality: grid {Path(args.config).stem} ({grid.benchmark})"
    render(measured, grid.dagr_arms, out, title, args.seed)
    print(f"wrote {out}/table.md, table.csv, per_run.csv and the figures ({measured.evaluated} runs measured, "
          f"{len(measured.results) - measured.evaluated} read back)")
    return errors.OK if not measured.failed else errors.RUNS_FAILED


def cmd_verify(args) -> int:
    from .grid.config import load_grid
    from .run.verify import verify

    grid = load_grid(args.config, args.overrides)
    spread = (load_grid(args.spread, args.overrides), Path(args.spread).stem) if args.spread else None
    verdict = verify(grid, Path(args.config).stem, Path(args.results), Path(args.runs), args.method, args.jobs, spread)
    print("\n".join(verdict.lines))
    return verdict.exit_code


def cmd_repeatability(args) -> int:
    from .grid.config import load_grid
    from .run.repeatability import check

    lines, ok = check(load_grid(args.config), args.method, args.epochs, Path(args.runs))
    print("\n".join(lines))
    return errors.OK if ok else 1


def cmd_bn_check(args) -> int:
    from dataclasses import replace

    from .grid.config import expand_grid, load_grid
    from .run.bn_check import check

    grid = load_grid(args.config, args.overrides)
    if args.method not in grid.methods:
        raise ConfigError(f"--method {args.method!r}: not a method of this grid; choose from {sorted(grid.methods)}"
                          + did_you_mean(args.method, grid.methods))
    grid = replace(grid, methods={args.method: grid.methods[args.method]}, dagr_arms=["none"], references=[],
                   seeds=[args.seed])
    for cfg in expand_grid(grid):  # one run per sweep point
        for epoch in args.epoch:
            result = check(cfg, epoch)
            print(f"{cfg.label} (lr {cfg.optim.lr}) epoch {epoch}: validation accuracy {result.val_acc:.4f} as "
                  f"trained, {result.val_acc_recalibrated:.4f} with BatchNorm statistics re-estimated on train")
    return errors.OK


def cmd_seed_plan(args) -> int:
    import pandas as pd

    from baselines import METHODS
    from .core.records import atomic_write_text
    from .report.seed_plan import pilot_differences, plan, render

    differences = pilot_differences(pd.read_csv(args.pilot))
    given = dict(args.target)
    default = float(given.pop("default", "1.0"))
    unknown = set(given) - set(differences)
    if unknown:
        raise ConfigError(f"--target {sorted(unknown)[0]}: not a method of the pilot; "
                          f"choose from {sorted(differences)}")
    targets = {m: float(given.get(m, default)) for m in differences}
    text = render(plan(differences, targets, args.max_seeds), args.pilot, args.max_seeds,
                  {name: cls.title for name, cls in METHODS.items()})
    print(text)
    if args.out:
        atomic_write_text(Path(args.out), text)
    return errors.OK


def cmd_numerics_probe(args) -> int:

    from .core.records import atomic_write_json
    from .run.numerics_probe import compare, probe, read_probe

    if args.compare:
        lines, portable_same = compare(*(read_probe(Path(f)) for f in args.compare))
        print("\n".join(lines))
        return errors.OK if portable_same else 1
    result = probe(args.settings, args.steps, announce=lambda line: print(line, file=sys.stderr))
    if args.out:
        atomic_write_json(Path(args.out), result)
        print(f"wrote {args.out}")
    else:
        print(json.dumps(result, indent=1))
    return errors.OK


def cmd_docs(args) -> int:
    from .report.options import METHODS_PAGE, STUB, stale_pages, stubbed_methods

    stale = stale_pages(Path(args.root), write=not args.check)
    verb = "differ from the code (run `python -m benchmarks docs`)" if args.check else "brought up to date"
    print(f"{', '.join(stale)}: {verb}" if stale else "docs: option tables up to date")
    stubs = stubbed_methods(Path(args.root))
    if stubs:
        print(f"{METHODS_PAGE}: write what one step of {', '.join(stubs)} does, where it says {STUB}")
    return 1 if stale and args.check else errors.OK


COMMANDS = {"docs": cmd_docs, "list": cmd_list, "verify": cmd_verify, "numerics-probe": cmd_numerics_probe,
            "seed-plan": cmd_seed_plan, "bn-check": cmd_bn_check,
            "repeatability": cmd_repeatability,
            "grid": cmd_grid, "tables": cmd_tables, "reproduce": cmd_reproduce, "figures": cmd_figures,
            "robustness": cmd_robustness, "prepare": cmd_prepare, "data-check": cmd_data_check}

if __name__ == "__main__":
    sys.exit(main())
