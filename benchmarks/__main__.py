"""Command line: ``python -m benchmarks {reproduce,grid,tables,list,prepare,data-check} ...``."""
from __future__ import annotations

import sys

if __name__ == "__main__":  # before anything imports torch: the numerics mode pins its CPU kernels
    from benchmarks import numerics

    numerics.configure(numerics.mode_from_argv(sys.argv[1:]))

import argparse
import re
import time
from pathlib import Path

from .strict import ConfigError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--numerics", choices=("portable", "native"),
                        help="CPU numerics: portable (default; the same bits on every x86-64 machine with "
                             "AVX2, one thread per run) or native (fastest kernels of this processor); "
                             "also $GEOMREG_NUMERICS")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, help_text in (("reproduce", "train the grid, then render its tables"),
                            ("grid", "train every run of a grid (finished runs are skipped)"),
                            ("tables", "render results/<config>/table.{md,csv,tex} from the records"),
                            ("figures", "draw results/<config>/figures/*.{png,pdf} from the records"),
                            ("verify", "re-train a fixed sample of a grid and compare with its committed "
                                       "per_seed.csv, bit for bit")):
        p = sub.add_parser(name, help=help_text)
        p.add_argument("config", help="grid YAML, e.g. benchmarks/configs/avdigits.yaml")
        p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                       help="override a config value, e.g. --set run.optim.epochs=5 (repeatable)")
        p.add_argument("--runs", default="runs", help="root folder of run directories (default: runs)")
        p.add_argument("--results", default="results", help="root folder of tables (default: results)")
    for name in ("reproduce", "grid", "tables"):
        p = sub.choices[name]
        p.add_argument("--no-progress", action="store_true", help="hide progress bars")
        p.add_argument("--readme", help="also copy the validation-selected table into this file, between "
                                        "<!-- table:NAME --> and <!-- /table:NAME --> markers (NAME: the "
                                        "config file's stem)")
        p.add_argument("--against", metavar="METHOD",
                       help="also compare every method with this one of the grid's methods, paired by seed")
    for name in ("reproduce", "grid"):
        add_execution_arguments(sub.choices[name])
    sub.choices["verify"].add_argument("--method", default="joint",
                                       help="the method whose runs (without and with DAGR, first seed) are "
                                            "re-trained with the references (default: joint)")
    sub.choices["verify"].add_argument("--jobs", type=int, default=1, metavar="N", help="runs trained at once")
    sub.add_parser("list", help="list registered methods and datasets")
    for name, help_text, folders in (
            ("prepare", "decode CREMA-D or Kinetics-Sounds once into a cache folder", ("raw", "out")),
            ("data-check", "check that a CREMA-D or Kinetics-Sounds copy can reproduce the tables", ("root",))):
        p = sub.add_parser(name, help=help_text)
        p.add_argument("dataset", choices=["cremad", "kinetics_sounds"])
        for folder in folders:
            p.add_argument(f"--{folder}", required=True, help=FOLDER_HELP[folder])
        p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                       help="a dataset param, e.g. --set layout=ogm_ge (repeatable)")
    args = parser.parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except (ConfigError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


def add_execution_arguments(p: argparse.ArgumentParser) -> None:
    """Where the runs execute (benchmarks.parallel); under torchrun, the ranks share each run instead."""
    from .parallel import EXECUTORS

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
    from .parallel import ClusterOptions

    return ClusterOptions(partition=args.partition, gpus_per_job=args.gpus_per_job, cpus_per_job=args.cpus_per_job,
                          mem_gb=args.mem_gb, time_min=args.time_min, array_parallelism=args.array_parallelism,
                          extra=dict(args.sbatch))


def cmd_list(args) -> int:
    from baselines import METHODS
    from benchmarks.data import DATASETS

    print("methods (name: how DAGR joins it):")
    for name, cls in METHODS.items():
        print(f"  {name}: {cls.dagr_rule}")
    print("datasets:", ", ".join(DATASETS))
    return 0


FOLDER_HELP = {"raw": "the dataset folder, in one of its layouts",
               "out": "folder of the prepared caches (the dataset param cache_dir)",
               "root": "the dataset folder (its cache: <root>/.geomreg-cache unless --set cache_dir=...)"}


def dataset_params(overrides: list[str], **folders: str) -> dict:
    """Dataset params from ``key=value`` strings (values parsed as YAML) and the folder options."""
    import yaml

    params = dict(folders)
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"--set {item!r} must look like key=value")
        params[key.strip()] = yaml.safe_load(value)
    return params


def cmd_prepare(args) -> int:
    from .data import get_dataset
    from .data.cache import prepare
    from .strict import from_dict

    dataset = get_dataset(args.dataset)
    raw = dataset_params(args.overrides, root=args.raw, cache_dir=args.out)
    params = from_dict(dataset.Params, raw, "--set")
    cache = prepare(dataset, args.raw, args.out, params)
    for clip, reason in cache.skipped.items():
        print(f"skipped {clip}: {reason}")
    print(f"prepared {len(cache.index['clips'])} clips in {cache.path}"
          + (f"; {len(cache.skipped)} listed clips skipped (see data-check)" if cache.skipped else ""))
    return 0


def cmd_data_check(args) -> int:
    from .data.check import data_check

    report = data_check(args.dataset, dataset_params(args.overrides, root=args.root))
    print(report)
    return 0 if report.ok else 1


def cmd_grid(args) -> int:
    from .config import load_grid
    from .distributed import current as current_ranks
    from .runner import run_grid

    grid = load_grid(args.config, args.overrides)
    report = run_grid(grid, Path(args.runs), progress=not args.no_progress, jobs=args.jobs,
                      executor=args.executor, cluster=cluster_options(args))
    if current_ranks().is_main:  # under torchrun every rank has the same report
        print(report.summary())
    return 0


def cmd_tables(args) -> int:
    from .config import load_grid
    from .paper import load_paper_table
    from .summaries import grid_records, grid_row_titles
    from .tables import render

    grid = load_grid(args.config, args.overrides)
    if args.against is not None and args.against not in grid.methods:
        raise ConfigError(f"--against {args.against!r}: not a method of this grid; choose from {sorted(grid.methods)}")
    records, failed, missing = grid_records(grid, Path(args.runs))
    name = Path(args.config).stem
    out = Path(args.results) / name
    title = grid.title or f"{grid.benchmark}: accuracy without and with DAGR"
    paper = load_paper_table(grid.paper) if grid.paper else None
    markdown = render(records, out, title, failed=failed, missing=missing, arms=grid.dagr_arms, paper=paper,
                      sweep=list(grid.sweep), rows=grid_row_titles(grid), against=args.against, grid=name)
    if args.readme:
        splice_table(Path(args.readme), name, markdown)
    print(f"wrote {out}/table.md, table.csv, table.tex, per_seed.csv" + (f" ({len(missing)} runs missing)" if missing else ""))
    return 0


def splice_table(readme: Path, name: str, markdown: str) -> None:
    """Replace the text between the table markers with the generated table, less its test-selected
    section (the README shows the honest protocol; table.md keeps both)."""
    from .records import atomic_write_text

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


def cmd_reproduce(args) -> int:
    from .distributed import current as current_ranks

    start = time.perf_counter()
    cmd_grid(args)
    if not current_ranks().is_main:  # under torchrun, rank 0 alone renders the tables
        return 0
    cmd_tables(args)
    print((Path(args.results) / Path(args.config).stem / "table.md").read_text())
    print(f"make reproduce: total wall time {time.perf_counter() - start:.1f} s")
    return 0


def cmd_figures(args) -> int:
    from .figures import draw_grid_figures

    return draw_grid_figures(args.config, args.overrides, Path(args.runs), Path(args.results))


def cmd_verify(args) -> int:
    from .config import load_grid
    from .verify import verify

    grid = load_grid(args.config, args.overrides)
    verdict = verify(grid, Path(args.config).stem, Path(args.results), Path(args.runs), args.method, args.jobs)
    print("\n".join(verdict.lines))
    return verdict.exit_code


COMMANDS = {"list": cmd_list, "verify": cmd_verify, "grid": cmd_grid, "tables": cmd_tables, "reproduce": cmd_reproduce,
            "figures": cmd_figures, "prepare": cmd_prepare, "data-check": cmd_data_check}

if __name__ == "__main__":
    sys.exit(main())
