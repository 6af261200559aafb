"""The machine description, the targets and the markdown of ``make bench``."""
from __future__ import annotations

import math
import os
import platform
from pathlib import Path
from typing import Any

from .timing import VERDICT_POWER, Spread, Target, ratio, spread

TITLES = {"joint": "Joint training", "joint+dagr": "Joint + DAGR (Pareto weighting, exact α*: the paper's rule)",
          "joint+dagr-fixed": "Joint + DAGR (fixed weights)",
          "joint+dagr-last-layer": "Joint + DAGR, last-layer α (folded into joint's backward)",
          "dgl+dagr-last-layer": "DGL + DAGR, last-layer α (a pull-back of its own)",
          "joint+dagr floor": "floor of the exact rule, F + 3·B_enc + B_head",
          "ogm_ge": "OGM-GE", "gblending": "G-Blending", "pmr": "PMR", "mmpareto": "MMPareto",
          "mmpareto-floor": "MMPareto floor (2 × autograd.grad, no combination)", "dgl": "DGL"}


GRID_BUDGET_S = 900.0  # the default `make reproduce` on a 2-core CPU


def machine() -> dict[str, Any]:
    """What the timings depend on: the processor and its instruction sets (the same model name covers
    servers with and without AVX-512), cores, threads, versions, and the code's commit."""
    import torch

    from benchmarks.core.numerics import cpu_flags, cpu_model
    from benchmarks.core.records import git_commit

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {"cpu": cpu_model(), "isa": cpu_flags(), "cores": os.cpu_count(), "torch": torch.__version__,
            "threads": torch.get_num_threads(), "python": platform.python_version(), "gpu": gpu, **git_commit()}


def machine_text(mc: dict[str, Any]) -> str:
    """The header's machine line; measurements written before the instruction sets and the commit were
    recorded render without them."""
    isa = f" ({' '.join(mc['isa'])})" if mc.get("isa") else ""
    code = ""
    if mc.get("commit"):
        code = f"; code at commit {mc['commit'][:10]}" + (" with uncommitted changes" if mc.get("dirty") else "")
    return (f"{mc['cpu']}{isa}, {mc['cores']} cores, torch {mc['torch']} with {mc['threads']} threads, "
            f"Python {mc['python']}; GPU: {mc['gpu'] or 'none'}{code}")


def md_table(headers: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def targets(res: dict[str, Any]) -> list[Target]:
    """The cost targets of `make bench`, on median ratios with their intervals."""
    out: list[Target] = []
    st = res.get("steps", {}).get("times")

    def measured(times, num, den):
        return ratio(times, num, den) if times and num in times and den in times else None

    out.append(Target.of("DAGR (fixed weights) step ÷ joint step", measured(st, "joint+dagr-fixed", "joint"), 1.03))
    out += dagr_targets(res.get("dagr"))
    for m, limit in (("ogm_ge", 1.05), ("dgl", 1.05), ("pmr", 1.15)):
        out.append(Target.of(f"{TITLES[m]} step ÷ joint step", measured(st, m, joint_beside(st, m)), limit))
        out.append(Target.of(f"{TITLES[m]} epoch ÷ joint epoch (full shapes, estimated†)", epoch_estimate(res, m),
                             limit))
    out.append(Target.of("MMPareto step ÷ its floor (tolerance 5% for noise)",
                         measured(st, "mmpareto", "mmpareto-floor"), 1.05))
    profile = res.get("profile") or {}
    out.append(Target(f"default grid, projected wall time (s) with {profile.get('jobs', '?')} jobs",
                      profile.get("projected_s"), GRID_BUDGET_S))
    measured_grid = profile.get("measured")
    out.append(Target("default grid, measured wall time (s) of the last complete `make reproduce`",
                      measured_grid["wall_s"] if measured_grid else None, GRID_BUDGET_S))
    data = res.get("data", {})
    out.append(Target.of("cached loader ÷ decode-every-epoch, samples/s", data_speedup(data), 10.0, at_least=True))
    wait = data.get("wait")
    out.append(Target(f"share of epoch time waiting for data ({wait['workers'] if wait else '?'} loader worker)",
                      wait["share"] if wait else None, 0.05))
    return out


def dagr_targets(dagr: dict[str, Any] | None) -> list[Target]:
    """The exact rule within 5% of its floor at every substrate and thread count; the last-layer α
    folded into joint training's backward within 10% of joint at ResNet-18's shapes."""
    from .dagr import FLOOR_TIMES

    out = []
    for sub in (dagr or {}).get("substrates", []):
        for n, timed in sub["threads"].items():
            t = timed["times"]
            where = f"{sub['substrate'].split(',')[0]}, {n} thread{'s' if int(n) > 1 else ''}"
            out.append(Target.of(f"DAGR exact (the paper's rule) step ÷ its floor, {where}",
                                 ratio(t, "joint+dagr", FLOOR_TIMES), 1.05))
            if sub["substrate"].startswith("ResNet-18"):
                out.append(Target.of(f"DAGR last-layer α (joint, folded) step ÷ joint step, {where}",
                                     ratio(t, "joint+dagr-last-layer", "joint"), 1.1))
    return out


def joint_beside(times: dict[str, list[float]] | None, name: str) -> str:
    """The key of the joint steps timed right next to ``name``'s (``compute.step_pairs``); joint's own
    where there are none (its own pair, a floor's pair, or results from before the steps were paired)."""
    from .compute import STEP_REFERENCE, beside

    key = beside(STEP_REFERENCE, name)
    return key if times and key in times else STEP_REFERENCE


def _interval_cell(target: Target) -> str:
    if target.interval is None:
        return "–"
    lo, hi, coverage = target.interval
    return f"{lo:.3f}–{hi:.3f} ({100 * coverage:.0f}%)"


def _reps_cell(target: Target) -> str:
    """The target's repetitions, and for an undecided one about how many a verdict would take."""
    if not target.values:
        return "–"
    needed = target.reps_for_verdict
    if needed is None:
        return str(len(target.values))
    return f"{len(target.values)}; {'half on each side of the limit' if math.isinf(needed) else f'≈{needed:,}'}"


def epoch_estimate(res: dict[str, Any], method: str) -> Spread | None:
    """Full-shape epoch ratio: the measured full-shape step ratio (median, range and interval) × the hooks'
    factor measured at reduced shapes."""
    from .compute import hooks_factor

    st, ep = res.get("steps", {}).get("times"), res.get("epochs", {})
    times, hooks = ep.get("times"), ep.get("hooks")
    if not st or not times or not hooks or method not in st or method not in times:
        return None
    factor = hooks_factor(times[method], hooks[method], times["joint"], hooks["joint"])
    return ratio(st, method, joint_beside(st, method)).scaled(factor)


def _ratio_cell(times, num, den) -> str:
    """The ratio over the rounds both variants ran: a pair timed again on its own after the rotation has
    its extra repetitions appended, so the leading ones are those of the rounds in common."""
    if not times or num not in times or den not in times:
        return "–"
    common = min(len(times[num]), len(times[den]))
    return f"{ratio({k: times[k][:common] for k in (num, den)}, num, den).fmt(2)}×"


def _more_reps_text(steps: dict[str, Any]) -> str:
    """What the pairs timed again after the rotation got (``step_more_reps``), appended to their own."""
    more = {m: n for m, n in (steps.get("more_reps") or {}).items() if n}
    return "".join(f"; {TITLES[m]}'s pair then ran {n} more repetitions on its own, {n + steps.get('reps', 0)} in "
                   "all, as its ratio sits near its limit" for m, n in more.items())


def _processing_lines(steps: dict[str, Any]) -> list[str]:
    """A line on what the methods' ``process_gradients`` hook took inside their steps, where it took 1 ms
    or more (OGM-GE's modulation: the others do their work in the backward pass)."""
    times, shares = steps.get("times") or {}, []
    for name, spent in sorted((steps.get("processing") or {}).items()):
        if spent and name in times and spread(spent).median >= 1e-3:
            took, step = spread(spent).median, spread(times[name]).median
            shares.append(f"{TITLES[name]} {took:.3f} s, {100 * took / step:.1f}% of its step")
    if not shares:
        return []
    return ["- gradient processing, timed inside each step (the method's `process_gradients` hook, median over "
            "every step it ran, warm-up included): " + "; ".join(shares) + ". Unlike a ratio to the joint step "
            "beside it, this share does not carry two steps' jitter."]


def _memory_cell(m: dict[str, float] | str | None) -> str:
    return "–" if m is None else (m if isinstance(m, str) else f"{m['peak_mb']:.0f} (+{m['step_mb']:.0f})")


def _secs(times, name) -> str:
    if not times or name not in times:
        return "–"
    return spread(times[name]).fmt(3, " s")


def start_text(start: dict[str, Any] | None) -> str:
    """How the timed steps started (``compute.warm_start``): settled, or after warm-up with memory kept."""
    if start is None or start.get("settle", True):
        return ("a training step is timed right after an untimed one of the same variant, as in training (a step "
                "pays for the memory a heavier predecessor handed back)")
    return ("freed memory stays in the process (`GEOMREG_MALLOC=keep`), so a step pays nothing for the memory a "
            f"heavier predecessor freed, and {start['warmup']} untimed round(s) let the heap reach its peak")


def render(res: dict[str, Any]) -> str:
    mc, st, ep = res["machine"], res.get("steps", {}), res.get("epochs", {})
    lines = [
        "# `make bench`: costs measured side by side",
        "",
        "Generated by `python -m benchmarks.bench`; do not edit. " + ("**Quick smoke run: tiny shapes, the numbers "
                                                                       "mean nothing.** " if res.get("quick") else ""),
        "",
        f"- machine: {machine_text(mc)}; compute sections ran on `{res['device']}`",
        "- method: every variant is a real `Trainer` (resolved run config, `debug` random-tensor dataset with "
        "the shapes below, " + ("ResNet-18" if res.get("encoder", "resnet18") == "resnet18" else
                                      f"`{res['encoder']}`") + " encoders, concat fusion, SGD). Variants run "
        "interleaved (A B C, B C A, ...: "
        "the order rotates each repetition; where a section pairs them, each pair runs back to back) after "
        "warm-up; " + start_text(res.get("start")) + "; a "
        "ratio is taken per repetition from the variants timed in the same round",
        "- cells: median (min–max) over repetitions; ratios are medians of per-repetition ratios",
        f"- total wall time: {res.get('wall_s', 0):.0f} s",
        "",
        "## Targets",
        "",
        "A target on repeated measurements is met when the whole interval for its median is, missed when none "
        "of it is, and otherwise undecided: the repetitions cannot tell on which side of the limit it lies. The "
        "interval is distribution-free (order statistics of the repetitions around the median, with the coverage "
        "in brackets; fewer than 5 repetitions cannot reach 90%, and then the interval is their range). For an "
        "undecided target, the repetitions column also says about how many a run would need for an "
        f"{100 * VERDICT_POWER:.0f}% chance of a verdict if its repetitions spread as this run's: the sign test's "
        "n = ((z₀.₉₅ + z₀.₈) / (2|p − ½|))², p the share of this run's repetitions below the limit. It plans the "
        "next run; it is as uncertain as p, and no verdict.",
        "",
        md_table(["target", "measured (median)", "interval for the median", "rule", "status", "repetitions"],
                 [[t.what, "–" if t.value is None else f"{t.value:.3f}", _interval_cell(t), t.rule, t.status,
                   _reps_cell(t)] for t in targets(res)]),
        "",
    ]
    lines += render_dagr(res.get("dagr"), st, res.get("memory", {}))
    if st or ep:
        t, e = st.get("times"), ep.get("times")
        mem = res.get("memory", {}).get("rows", {})
        rows = []
        for n in ("joint", "ogm_ge", "gblending", "pmr", "mmpareto", "mmpareto-floor", "dgl"):
            mcell = _memory_cell(mem.get(n))
            est = epoch_estimate(res, n)
            rows.append([TITLES[n], _secs(t, n), _ratio_cell(t, n, joint_beside(t, n)), _secs(e, n),
                         _ratio_cell(e, n, "joint"),
                         "–" if est is None else f"{est.median:.2f}×", mcell])
        lines += [
            "## Each method against joint training",
            "",
            f"- step: {st.get('shapes', '–')}; batch {st.get('batch', '–')}; the method's `train_step` "
            "(G-Blending without its weight estimation, PMR with its prototypes set)"
            + (f"; {st.get('reps', '–')} repetitions, each method's step right next to a joint step of its own "
               "(MMPareto's next to its floor's), the pairs rotating and swapping places every repetition, so each "
               "ratio to joint comes from adjacent steps" if st.get("pairs") else "") + _more_reps_text(st) + ".",
            f"- epoch: **reduced shapes** ({ep.get('shapes', '–')}), batch {ep.get('batch', '–')}, "
            f"{ep.get('batches', '–')} steps per epoch, {ep.get('reps', '–')} interleaved repetitions after one "
            "warm-up step per trainer: `on_epoch_start` + `train_epoch` + `on_epoch_end`, evaluation left out. "
            "G-Blending's super-epoch is 1 epoch here, so it re-estimates its weights every epoch (the same "
            "amortized share as the online default); PMR's prototype pass covers 10% of the batches. At reduced "
            "shapes the per-step costs that do not scale with the input (the optimizer, OGM-GE's noise over "
            "every conv weight, MMPareto's gradient processing) weigh more than at full shapes.",
            "- † epoch × joint at full shapes, **estimated** (not timed): the full-shape step ratio × "
            "(epoch ÷ its steps) of the method over that of joint, the latter factors from the reduced-shape "
            "epochs (the hooks are forward/backward work, so their share of an epoch hardly depends on the "
            "input size). The targets on epochs use it.",
            *_processing_lines(st),
            f"- memory: {res.get('memory', {}).get('what', '–')}",
            f"- MMPareto ÷ floor, per step: {_ratio_cell(t, 'mmpareto', 'mmpareto-floor')}. The floor does what "
            "MMPareto cannot avoid: one forward, one `autograd.grad` for the fused loss and one for the unimodal "
            "losses (two backward passes through the encoders), and the plain sum into `.grad`.",
            "",
            md_table(["method", "s/step", "step × joint", "s/epoch (reduced)", "epoch × joint (reduced)",
                      "epoch × joint (full, est.†)", "peak MB (+ by the step)"], rows),
            "",
        ]
    lines += render_profile(res.get("profile"))
    lines += render_allocator(res.get("allocator"))
    lines += render_data(res.get("data", {})) + render_numerics(res.get("numerics")) + render_gpu(res.get("gpu"))
    return "\n".join(lines).rstrip() + "\n"


DAGR_ROWS = (("joint", "joint"), ("joint+dagr", "joint"), ("joint+dagr floor", "joint"),
             ("joint+dagr", "joint+dagr floor"), ("joint+dagr-last-layer", "joint"), ("dgl", "joint"),
             ("dgl+dagr-last-layer", "dgl"))


def render_dagr(dagr: dict[str, Any] | None, steps: dict[str, Any], memory: dict[str, Any]) -> list[str]:
    """DAGR's Pareto step per substrate and thread count, the fixed form, the peak memory, and the
    last-layer α's agreement with the exact α* over a training run."""
    out = ["## DAGR's cost per training step", ""]
    fixed = steps.get("times")
    if fixed and "joint+dagr-fixed" in fixed:
        out += [f"- Fixed weights (Eq. 6: its loss joins the objective, one backward): "
                f"{_ratio_cell(fixed, 'joint+dagr-fixed', 'joint')} joint's step ({steps['shapes']}, batch "
                f"{steps['batch']}, the steps of the next section).", ""]
    if not dagr:
        return out + ["The Pareto weighting: not measured (section `dagr` skipped).", ""]
    out += [
        "The Pareto weighting (Algorithm 1) needs the Jacobian-vector products of three cotangents per encoder: "
        "the task's, and one per geometric term for the 2×2 Gram that α* depends on. Its floor is therefore "
        "`F + 3·B_enc + B_head`: the step of `joint+dagr-floor` (joint training with DAGR's fixed form, so the "
        "same forward with DAGR's terms, and its backward split into the head's part `B_head`, DAGR's terms "
        "included, and the encoders' part `B_enc`, each timed) plus `2·B_enc` of that same step. "
        "The exact rule pulls each term's cotangent back through every encoder in one `autograd.grad` call. "
        "The last-layer α (**not the paper's rule**, `dagr.alpha: last_layer`) takes α from each encoder's "
        "last convolution and batch norm. Its `g_geom` then joins the backward of a method whose gradient is "
        "plain (joint training here), or takes a pull-back of its own, added after the method's processing "
        "(DGL here). Each variant is a real `Trainer`, and all were interleaved at each thread count, a round "
        "running three pairs back to back: the exact rule and its floor's step, the last-layer α and joint, DGL "
        "with the last-layer α and DGL (the pairs rotate and their two steps swap places every repetition), so the "
        "ratio of each pair comes from adjacent steps.",
        "",
    ]
    for sub in dagr["substrates"]:
        threads = sorted(sub["threads"], key=int)
        header = ["variant"] + [f"{n} thread{'s' if int(n) > 1 else ''}: {col}" for n in threads
                                for col in ("s/step", "ratio", "ratio in CPU time")]
        rows = []
        for num, den in DAGR_ROWS:
            label = ("**exact ÷ its floor**" if (num, den) == ("joint+dagr", "joint+dagr floor")
                     else TITLES[num] + ("" if den == "joint" else f" (ratio: ÷ {TITLES[den]})"))
            cells = []
            for n in threads:
                timed = sub["threads"][n]
                cells += ["" if num == "joint+dagr" and den != "joint" else _secs(timed["times"], num),
                          _ratio_cell(timed["times"], num, den), _ratio_cell(timed["cpu"], num, den)]
            rows.append([label, *cells])
        rows.append(["B_enc: the encoders' part of joint's backward", *[
            c for n in threads for c in (spread(sub["threads"][n]["encoder_times"]).fmt(3, " s"), "", "")]])
        out += [f"### {sub['substrate']}", "",
                f"{sub['warmup']} warm-up round(s), {len(sub['threads'][threads[0]]['times']['joint'])} interleaved "
                f"repetitions of {sub['steps_per_call']} step(s) per variant (fewer when over the time budget)"
                + (", each after an untimed call of the same variant" if sub.get("settle", True) else "")
                + _exact_more_reps_text(sub) + ". The "
                "ratios in CPU time (this process's, all its threads) count the work each step did; on a machine "
                "that other programs load, the wall time also counts the waits for a core.", "",
                md_table(header, rows), ""]
    rows = (memory or {}).get("rows", {})
    shown = [n for n in ("joint", "joint+dagr", "joint+dagr-last-layer") if n in rows]
    if shown:
        out += ["Peak memory in MB (+ by the step), the memory section's measure at its shapes: "
                + "; ".join(f"{TITLES[n]} {_memory_cell(rows[n])}" for n in shown) + ".", ""]
    out += render_agreement(dagr.get("agreement"))
    return out


def _exact_more_reps_text(sub: dict[str, Any]) -> str:
    """What the exact rule's pair got on its own after the rotation (``Substrate.more_reps``), per thread count."""
    more = {n: timed.get("more_reps", 0) for n, timed in sub["threads"].items()}
    if not any(more.values()):
        return ""
    counts = ", ".join(f"{m} at {n} thread{'s' if int(n) > 1 else ''} "
                       f"({len(sub['threads'][n]['times']['joint+dagr'])} in all)" for n, m in more.items())
    return f"; the exact rule's pair then ran more repetitions on its own: {counts}"


def render_agreement(agreement: dict[str, Any] | None) -> list[str]:
    """Per modality: the per-epoch correlation of the last-layer α with the exact α* and their mean gap."""
    if not agreement:
        return []
    epochs = agreement["train"]
    modalities = sorted({k.split("/")[2] for k in epochs[0] if k.startswith("dagr/alpha_agreement/")})
    rows = []
    for m in modalities:
        corr = [e[f"dagr/alpha_agreement/{m}/correlation"] for e in epochs]
        gap = [e[f"dagr/alpha_agreement/{m}/mean_abs_diff"] for e in epochs]
        used, exact = (sum(e[f"dagr/{k}/{m}"] for e in epochs) / len(epochs) for k in ("alpha", "alpha_exact"))
        rows.append([m, _spread_or_dash(corr, 2), _spread_or_dash(gap, 4), f"{used:.3f}", f"{exact:.3f}"])
    return [
        "### The last-layer α against the exact α*", "",
        f"`{agreement['label']}` trained on the default grid's settings for {agreement['epochs']} epochs with the "
        "last-layer α, the exact α* computed beside it at every step (`dagr.record_exact_alpha`); per epoch, the "
        "correlation of the two over the epoch's steps and their mean absolute difference (median over epochs, "
        f"min–max). Its test accuracy at the last epoch: {100 * agreement['test_acc'][-1]:.2f}%.", "",
        md_table(["modality", "correlation per epoch", "mean absolute difference per epoch", "mean α", "mean α*"],
                 rows), ""]


def _spread_or_dash(values: list[float], digits: int) -> str:
    finite = [v for v in values if v == v]  # NaN: a constant α over the epoch
    return "–" if not finite else spread(finite).fmt(digits)


def render_allocator(effect: dict[str, Any] | None) -> list[str]:
    """Page faults and seconds per step with freed memory kept in the process and with glibc's default."""
    out = ["## Freed memory kept in the process", ""]
    if not effect:
        return out + ["not measured (section `allocator` skipped, or not a CPU)", ""]
    rows = []
    for name, modes in effect["rows"].items():
        for mode, runs in modes.items():
            done = [r for r in runs if not isinstance(r, str)]
            if not done:
                rows.append([TITLES[name], mode, "–", "–", "–", runs[0] if runs else "–"])
                continue
            later = [(s, f) for r in done for s, f in zip(r["step_s"][1:], r["step_faults"][1:])]
            rows.append([TITLES[name], mode, f"{spread([f for _, f in later]).median:,.0f}",
                         f"{done[0]['step_faults'][0]:,}", spread([s for s, _ in later]).fmt(3, " s"),
                         _memory_cell(done[0])])
    return out + [
        f"{effect['steps']} training steps of each variant at {effect['shapes']}, batch {effect['batch']}, in "
        f"{effect['reps']} fresh process(es) per mode, the modes alternated: `keep` (the suite's default, "
        "`benchmarks/core/allocator.py`: glibc serves every block from its heap and keeps what is freed) and "
        "`system` (glibc's default: a freed block over 32 MB goes back to the system at once). The steps after "
        "the first show the mode (the first faults its memory in either way). Seconds come from separate "
        "processes, so they carry the machine's drift; the page faults do not.",
        "",
        md_table(["variant", "mode", "page faults per step (after the first)", "page faults, first step",
                  "s/step (after the first)", "peak MB (+ by the steps)"], rows),
        "",
    ]


def render_numerics(numerics: dict[str, Any] | None) -> list[str]:
    """The portable numerics' cost: the same steps in fresh processes, portable ÷ native."""
    out = ["## Portable numerics", ""]
    if not numerics or "error" in numerics:
        return out + [f"not measured ({(numerics or {}).get('error', 'skipped')})", ""]
    t = numerics["times"]
    return out + [
        f"{numerics['steps']} training steps of {numerics['what']}, each mode in {len(t['portable'])} fresh "
        "processes, interleaved (the mode is fixed before torch is imported).",
        "",
        md_table(["mode", "s per step", "× native"],
                 [[mode, f"{spread(t[mode]).median / numerics['steps']:.4f}", _ratio_cell(t, mode, "native")]
                  for mode in ("native", "portable")]),
        "",
    ]


def data_speedup(data: dict[str, Any]) -> Spread | None:
    """The cached loader's samples/s over the decode-every-epoch path's, per repetition."""
    times = data.get("times")
    return ratio(times, "decode", "cached") if times else None


def render_data(data: dict[str, Any]) -> list[str]:
    out = ["## Data path", ""]
    if "error" in data or not data:
        return out + [f"not measured ({data.get('error', 'skipped')})", ""]
    sp = data_speedup(data)
    out += [
        f"CREMA-D fixture (`benchmarks.data.fixtures`, OGM-GE layout: 16 kHz wavs of 1–2.5 s, "
        f"{data['frame_size']}-px output frames from 480×360 JPEGs, CREMA-D's size), {data['clips']} training "
        f"clips, batch 16, "
        f"in this process (0 loader workers) on one thread, as a loader worker runs, {sp.n} interleaved repetitions "
        f"after one warm-up round, each of one decode-every-epoch pass and {data['passes']} passes of the cached "
        f"loader (its times per pass). The cache "
        f"was prepared once in {data['prepare_s']:.1f} s (not counted).",
        "",
        md_table(["path", "samples/s (best repetition)"],
                 [["cached loader (`cremad` dataset, memory-mapped)", f"{data['cached_sps']:.0f}"],
                  ["decode every epoch (soundfile + resample + STFT + JPEG decode + transforms per item)",
                   f"{data['decode_sps']:.0f}"]]),
        "",
        f"Speed-up of the cached loader: **{sp.fmt(1)}×**.",
        "",
    ]
    w = data.get("wait")
    if w:
        out += [f"Waiting for data: one `train_epoch` of joint training ({w.get('encoder', 'resnet18')}, real CREMA-D "
                "input shapes from "
                f"the fixture) with {w['workers']} loader worker(s), {w['steps']} steps: {w['wait_s']:.3f} s of "
                f"{w['epoch_s']:.2f} s inside the batch iterator = **{100 * w['share']:.1f}%** (the first batch of an "
                "epoch is never prefetched, so short epochs overstate the share).", ""]
    return out


def render_gpu(gpu: dict[str, Any] | None) -> list[str]:
    out = ["## GPU", ""]
    if not gpu:
        return out + ["not measured (no CUDA device)", ""]
    rows = []
    for name, r in gpu["rows"].items():
        rows.append([name, f"{r['epoch_s']:.2f}", f"{r['samples_per_s']:.0f}",
                     "1.00×" if name == "fp32" else f"{ratio(gpu['times'], 'fp32', name).fmt(2)}×"])
    return out + [
        f"{gpu['device']}: joint training, {gpu['shapes']}, batch {gpu['batch_size']}, {gpu['batches']} steps per "
        f"epoch (a CREMA-D epoch), {gpu['reps']} interleaved repetitions after one warm-up epoch each.",
        "",
        md_table(["variant", "s/epoch", "samples/s", "speed-up over fp32"], rows),
        "",
    ]


def render_profile(profile: dict[str, Any] | None) -> list[str]:
    """Per-run stage seconds of one seed of the default grid, and the grid's projected and measured time."""
    from benchmarks.report.tables import minutes

    from .profile import STAGES

    out = ["## Where a run's time goes (the default grid)", ""]
    if not profile or "error" in profile:
        return out + [f"not measured ({(profile or {}).get('error', 'skipped')})", ""]
    rows = profile["rows"]
    shown = [s for s in STAGES if any(r["stages"][s] >= 0.05 for r in rows)]
    table = [[r["title"], f"{r['wall_s']:.1f}", str(r["steps"]), *(f"{r['stages'][s]:.1f}" for s in shown)]
             for r in rows]
    totals = {s: sum(r["stages"][s] for r in rows) for s in STAGES}
    run_time = sum(r["wall_s"] for r in rows)
    table.append(["**all runs**", f"{run_time:.1f}", str(sum(r["steps"] for r in rows)),
                  *(f"{totals[s]:.1f} ({100 * totals[s] / run_time:.0f}%)" for s in shown)])
    measured = profile.get("measured")
    with_overrides = f" with {', '.join(profile['overrides'])}" if profile["overrides"] else ""
    out += [
        f"The first seed of `{profile['grid']}`{with_overrides}: "
        f"{len(rows)} runs, trained in full the way `make reproduce` trains them ({profile['numerics']} numerics, one "
        f"thread per run, {profile['jobs']} runs at a time in fresh worker processes). Seconds per stage of each run "
        "(exclusive: a stage's time leaves out the stages inside it; `benchmarks/bench/profile.py` defines each); "
        "stages under 0.05 s in every run are left out.",
        "",
        md_table(["run", "wall s", "steps", *shown], table),
        "",
        f"- this seed's slice: **{profile['slice_wall_s']:.0f} s** wall time; the grid has {profile['seeds']} seeds, "
        f"so its projected wall time is **{minutes(profile['projected_s'])}** (slice × seeds; budget "
        f"{minutes(GRID_BUDGET_S)}).",
        "- measured: " + (f"the last complete `make reproduce` of this grid trained {measured['runs']} runs in "
                          f"**{minutes(measured['wall_s'])}** with {measured['jobs']} jobs on {measured['cpu']} "
                          f"({measured['numerics']} numerics, commit {measured['git']}; "
                          f"`results/{Path(profile['grid']).stem}/grid_time.json`)."
                          if measured else "no complete `make reproduce` of this grid is recorded yet."),
        "",
    ]
    return out
