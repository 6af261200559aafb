"""``python -m benchmarks.bench [--out results/bench.md] [--quick] [--render results/bench.json]``: cost ratios
measured side by side. The measurements go beside the markdown as JSON; ``--render`` renders them again.

Sections: each method's step cost (full CREMA-D shapes), DAGR's Pareto step against its floor and the
last-layer α at the suite's two substrates and 1 and 2 threads with that α's agreement over a training run,
each method's epoch cost (reduced shapes), peak memory per method (fresh subprocesses), the page faults
and steps with freed memory kept and with glibc's default (fresh subprocesses), where the time of each run
of the default grid goes and the grid's projected and measured wall time, the data path on a fixture, the
portable numerics' cost, and the GPU epoch (CUDA only). The full run takes 45–70 minutes on a 2-core CPU;
each timed section also has a time budget that lowers its repetitions (never below 2) when the machine is
slower than planned.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass, replace
from pathlib import Path

from .compute import CREMAD, METHODS, Shapes
from .dagr import QUICK_SUBSTRATES, SUBSTRATES, Substrate


@dataclass(frozen=True)
class Settings:
    step_shapes: Shapes = CREMAD
    step_batch: int = 16
    step_reps: int = 11  # a 93% interval for the median, from the 3rd to the 9th of 11
    step_warmup: int = 0  # rounds; at least one where freed memory is kept (``compute.warm_start``)
    steps_per_call: int = 1
    step_budget_s: float = 600.0  # 12 rounds of 6 pairs, joint's steps once per pair
    # Pairs timed again after the rotation, (method, more repetitions): OGM-GE's ratio sits near its limit
    # (1.04 against 1.05) with a standard deviation of 3-4.5% per pair of 2-second steps, so 11
    # repetitions leave it undecided; 81 in all give a 93% interval of about ±0.8%.
    step_more_reps: tuple[tuple[str, int], ...] = (("ogm_ge", 70),)
    step_more_budget_s: float = 400.0  # about 4.2 s per repetition of OGM-GE's pair, 2 threads
    epoch_shapes: Shapes = Shapes(64, 47, 56, 1, "reduced: ¼ of each side")
    epoch_batch: int = 16
    epoch_batches: int = 10
    epoch_reps: int = 3
    epoch_budget_s: float = 55.0
    dagr_substrates: tuple[Substrate, ...] = SUBSTRATES
    dagr_budget_s: float = 760.0  # per substrate and thread count: about 10 rounds of ResNet-18's steps, 1 thread
    dagr_more_budget_s: float = 800.0  # per thread count: the 39 more of the exact pair, about 19 s each (1 thread)
    agreement_epochs: int | None = None  # the default grid's 15
    memory_methods: tuple[str, ...] = (*METHODS, "joint+dagr", "joint+dagr-last-layer")
    memory_shapes: Shapes = CREMAD
    memory_batch: int = 16
    memory_steps: int = 1
    allocator_methods: tuple[str, ...] = ("joint", "joint+dagr")
    allocator_steps: int = 3  # the first faults its memory in whatever the mode; the others show the mode
    allocator_reps: int = 2
    data_clips_per_class: int = 8
    data_frame_size: int = 224
    data_reps: int = 7
    data_passes: int = 10  # cached passes per repetition, against one decode-every-epoch pass
    wait_workers: int = 1
    encoder: str = "resnet18"  # the quick smoke check uses small_cnn: the code paths, in seconds
    profile_grid: str = "benchmarks/configs/avdigits.yaml"  # the grid `make reproduce` trains by default
    profile_overrides: tuple[str, ...] = ()


QUICK = Settings(step_shapes=Shapes(32, 24, 32, 1, "quick smoke shapes"), step_batch=4, step_reps=2,
                 step_budget_s=60, step_more_reps=(("ogm_ge", 2),), step_more_budget_s=30,
                 epoch_shapes=Shapes(32, 24, 32, 1, "quick smoke shapes"), epoch_batch=4,
                 epoch_batches=3, epoch_reps=2, epoch_budget_s=60, dagr_substrates=QUICK_SUBSTRATES,
                 dagr_budget_s=20, dagr_more_budget_s=10, agreement_epochs=2, memory_methods=("joint", "joint+dagr"),
                 memory_shapes=Shapes(32, 24, 32, 1, "quick smoke shapes"), memory_batch=4, allocator_reps=1,
                 data_clips_per_class=2, data_frame_size=32, data_reps=2, data_passes=2, encoder="small_cnn",
                 profile_overrides=("run.optim.epochs=2", "methods={joint: {}, gblending: {}}", "references=[audio]"))


_T0 = time.perf_counter()


# On a GPU a step takes milliseconds: OGM-GE's batch 64, 10 steps per timed call, more repetitions.
CUDA = Settings(step_batch=64, steps_per_call=10, step_reps=5, step_warmup=2, step_budget_s=300, epoch_batch=64,
                epoch_budget_s=300, memory_batch=64)


def log(msg: str) -> None:
    print(f"[bench {time.perf_counter() - _T0:5.0f} s] {msg}", file=sys.stderr, flush=True)


SECTIONS = ("steps", "dagr", "epochs", "memory", "allocator", "profile", "data", "numerics", "gpu")


def run(settings: Settings, device: str, gpu_smoke: bool = False, compile: bool = False,
        sections: tuple[str, ...] = SECTIONS, jobs: int = 2, results: Path = Path("results")) -> dict:
    from . import compute, dagr, datapath, gpu, memory, numerics, profile
    from .report import machine

    s = settings
    start = compute.warm_start(s.step_warmup)
    res: dict = {"machine": machine(), "device": device, "encoder": s.encoder, "start": start}
    if "steps" in sections:
        pairs = compute.step_pairs(["joint+dagr-fixed", *[m for m in METHODS if m != "joint"]])
        log(f"steps: {len(pairs)} pairs, {s.step_shapes.describe()}, batch {s.step_batch}")
        processing: dict[str, list[float]] = {}

        def time_pairs(pairs, reps, budget_s):
            return compute.time_steps(pairs, s.step_shapes, s.step_batch, reps, start["warmup"], device,
                                      s.steps_per_call, budget_s=budget_s, settle=start["settle"],
                                      processing=processing, encoder=s.encoder)

        times = time_pairs(pairs, s.step_reps, s.step_budget_s)
        more_reps = more_step_reps(pairs, times, s.step_more_reps,
                                   lambda pair, reps: time_pairs([pair], reps, s.step_more_budget_s))
        res["steps"] = {"shapes": s.step_shapes.describe(), "batch": s.step_batch, **start, "pairs": pairs,
                        "reps": len(times["joint"]), "more_reps": more_reps, "steps_per_call": s.steps_per_call,
                        "times": times, "processing": processing}
    if "dagr" in sections:
        import torch

        threads = dagr.THREADS if device == "cpu" else (torch.get_num_threads(),)
        timed = []
        for sub in s.dagr_substrates:
            log(f"dagr: {len(dagr.VARIANTS)} variants, {sub.title}, threads {threads}")
            timed.append(dagr.time_substrate(sub, device, start["warmup"], s.dagr_budget_s, threads,
                                             start["settle"], s.dagr_more_budget_s))
        log("dagr: the last-layer alpha's agreement over a training run")
        res["dagr"] = {"substrates": timed, "agreement": dagr.alpha_agreement(device, s.agreement_epochs)}
    if "epochs" in sections:
        log(f"epochs: {len(METHODS)} methods, {s.epoch_shapes.describe()}")
        times, hooks = compute.time_epochs(list(METHODS), s.epoch_shapes, s.epoch_batch, s.epoch_batches,
                                           s.epoch_reps, device, budget_s=s.epoch_budget_s,
                                           encoder=s.encoder)
        res["epochs"] = {"shapes": s.epoch_shapes.describe(), "batch": s.epoch_batch, "batches": s.epoch_batches,
                         "reps": len(times["joint"]), "times": times, "hooks": hooks}
    if "memory" in sections:
        log(f"memory: {len(s.memory_methods)} subprocesses")
        cuda = device.startswith("cuda")
        what = (f"{'torch.cuda.max_memory_allocated' if cuda else 'peak resident set (VmHWM)'} of a fresh "
                f"process after {s.memory_steps} training step(s) at {s.memory_shapes.describe()}, batch "
                f"{s.memory_batch}; in brackets what the step added over the set-up (model, data, optimizer, "
                f"the method's hook, one batch){'' if cuda else '; the total includes the interpreter and torch'}")
        res["memory"] = {"what": what, "rows": {m: memory.measure(m, s.memory_shapes, s.memory_batch, s.memory_steps,
                                                                  device, s.encoder) for m in s.memory_methods}}
    if "allocator" in sections and not device.startswith("cuda"):
        log(f"allocator: {len(s.allocator_methods)} variants kept/system, {2 * s.allocator_reps} subprocesses each")
        res["allocator"] = memory.allocator_effect(s.allocator_methods, s.memory_shapes, s.memory_batch,
                                                   s.allocator_steps, s.allocator_reps, s.encoder)
    if "profile" in sections and not device.startswith("cuda"):
        log(f"profile: one seed of {s.profile_grid}, {jobs} runs at a time")
        res["profile"] = profile.measure(s.profile_grid, list(s.profile_overrides), jobs)
        res["profile"]["measured"] = profile.measured(results, s.profile_grid)
    if "data" in sections:
        log("data path")
        try:
            with tempfile.TemporaryDirectory(prefix="bench-data-") as tmp:
                data = datapath.throughput(Path(tmp), s.data_clips_per_class, s.data_reps, s.data_frame_size,
                                           passes=s.data_passes)
                data["wait"] = datapath.wait_share(data.pop("params"), s.wait_workers, device=device,
                                                   encoder=s.encoder)
                res["data"] = data
        except Exception as err:  # noqa: BLE001 - the section says why it has no numbers
            traceback.print_exc()
            res["data"] = {"error": f"{type(err).__name__}: {err}"}
    if "numerics" in sections and not device.startswith("cuda"):
        log("numerics: portable vs native in fresh processes")
        res["numerics"] = numerics.measure(reps=2 if s is QUICK else 3, steps=5 if s is QUICK else 40)
    if "gpu" in sections:
        if device.startswith("cuda"):
            log("gpu")
            res["gpu"] = gpu.measure(device, compile=compile)
        elif gpu_smoke:
            res["gpu"] = gpu.measure("cpu", compile=False, batch_size=4, clips=16, reps=2,
                                     shapes=settings.step_shapes, encoder=s.encoder)
        else:
            res["gpu"] = None
    return res


def more_step_reps(pairs: list[tuple[str, str]], times: dict[str, list[float]],
                   more_reps: tuple[tuple[str, int], ...], time_pair) -> dict[str, int]:
    """Time the pairs of ``more_reps`` (method, repetitions) again, each on its own after the rotation
    (``time_pair(pair, reps)``), and append their repetitions to ``times``: a pair's entries stay aligned
    repetition by repetition, so its ratio takes them all. Returns how many each pair got."""
    more = {}
    for method, reps in more_reps:
        pair = next((p for p in pairs if p[0] == method), None)
        if pair is None:
            raise ValueError(f"bench: more repetitions of {method!r} asked for, but the steps section has no pair "
                             f"of it (pairs: {', '.join(p[0] for p in pairs)})")
        log(f"steps: {reps} more repetitions of {pair[0]} beside {pair[1]}")
        extra = time_pair(pair, reps)
        for key in pair:
            times[key] += extra[key]
        more[method] = len(extra[method])
    return more


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="results/bench.md", help="markdown output (default: results/bench.md)")
    parser.add_argument("--quick", action="store_true", help="tiny shapes and steps: a smoke check in seconds")
    parser.add_argument("--device", default="auto", help="auto (CUDA when present), cpu or cuda[:i]")
    parser.add_argument("--compile", action="store_true", help="GPU section: also time torch.compile'd encoders")
    parser.add_argument("--only", default="", help=f"comma-separated sections ({','.join(SECTIONS)})")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1,
                        help="runs trained at once by the profile section, as `make reproduce JOBS=` "
                             "(default: the cores)")
    parser.add_argument("--readme", help="also copy the header and the targets table into this file, between "
                                        "<!-- table:bench --> and <!-- /table:bench --> markers")
    parser.add_argument("--render", metavar="JSON", help="measure nothing: render the measurements a run wrote "
                                                        "beside its markdown (e.g. results/bench.json) again")
    parser.add_argument("--gpu-smoke-on-cpu", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    from benchmarks.core.records import atomic_write_json, atomic_write_text

    from .report import render

    out = Path(args.out)
    if args.render:
        res = read_results(Path(args.render))
    else:
        res = measure(args)
        atomic_write_json(out.with_suffix(".json"), res)  # the measurements, to render again after a change
    text = render(res)
    print(text)
    atomic_write_text(out, text)
    if args.readme:
        splice_targets(Path(args.readme), text)
    log(f"wrote {out}" + ("" if args.render else f" and {out.with_suffix('.json')} in {res['wall_s']:.0f} s"))
    return 0


def measure(args: argparse.Namespace) -> dict:
    """Every section the arguments ask for, measured on this machine."""
    os.environ.setdefault("TQDM_DISABLE", "1")
    from benchmarks.core import allocator

    allocator.configure()  # steps are timed with the memory setting training runs with
    import torch

    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    settings = QUICK if args.quick else (CUDA if device.startswith("cuda") else Settings())
    sections = tuple(x for x in args.only.split(",") if x) or SECTIONS
    t0 = time.perf_counter()
    res = run(settings, device, args.gpu_smoke_on_cpu, args.compile, sections, args.jobs, Path(args.out).parent)
    res["wall_s"] = time.perf_counter() - t0
    res["quick"] = args.quick
    return res


def read_results(path: Path) -> dict:
    """The measurements of an earlier run, as ``measure`` returned them."""
    import json

    try:
        res = json.loads(path.read_text())
    except FileNotFoundError:
        raise SystemExit(f"{path}: no such file (`make bench` writes it beside results/bench.md)") from None
    except json.JSONDecodeError as err:
        raise SystemExit(f"{path}: not JSON ({err})") from None
    if not isinstance(res, dict) or "machine" not in res:
        raise SystemExit(f"{path}: not the measurements of `python -m benchmarks.bench` (no 'machine')")
    return res


def splice_targets(readme: Path, text: str) -> None:
    """docs/performance.md carries the header and the targets table; results/bench.md has every section."""
    from benchmarks.report.readme import splice_table

    head, targets = text.split("\n## ")[:2]
    splice_table(readme, "bench", f"{head}\n## {targets}")


if __name__ == "__main__":
    sys.exit(main())
