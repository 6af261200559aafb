"""The data path on a CREMA-D fixture (``benchmarks.data.fixtures``, OGM-GE layout: 16 kHz wavs of
1–2.5 s and 1-fps JPEG frames of 480×360, the size of CREMA-D's videos): our cached loader against
decoding every clip every epoch, and the share of a training epoch spent waiting for data.

* **cached**: the suite's ``cremad`` dataset (decoded once into a memory-mapped cache; the per-epoch
  work is the float16→float32 audio copy, the frame's random resized crop and flip, normalisation, all
  written straight into the batch), ``split.batches(...)``, in this process (0 loader workers).
* **decode every epoch**, as OGM-GE's ``CramedDataset`` does per item: soundfile read + resample to
  22.05 kHz + tiling + STFT + log, JPEG decode of the sampled frame, RandomResizedCrop(224) +
  horizontal flip + normalisation; batches collated by ``torch.stack``, in this process.

Both paths run on one thread, as each loader worker process runs (PyTorch sets one thread per worker):
the samples per second are those of one worker.
"""
from __future__ import annotations

import time
from pathlib import Path

import torch
from torchvision.transforms import v2

from .timing import interleave


def fixture(root: Path, clips_per_class: int, frame_size: int = 224) -> dict:
    """Write the fixture under ``root``; the ``cremad`` dataset params that read it."""
    from benchmarks.data.fixtures import write_cremad_fixture

    # CREMA-D's own frame size (480×360): what the originals decode every epoch
    split_dir = write_cremad_fixture(root / "cremad", layout="ogm_ge", clips_per_class=clips_per_class, seed=0,
                                     frame_size=(480, 360))
    return {"root": str(root / "cremad"), "split_dir": str(split_dir), "cache_dir": str(root / "cache"),
            "layout": "ogm_ge", "frame_size": frame_size}


class DecodeEveryEpoch:
    """The originals' per-item decoding over the train clips of the fixture."""

    def __init__(self, params: dict) -> None:
        from benchmarks.data.cache import CachePlan, locate_sources
        from benchmarks.data.cremad import CremaD
        from benchmarks.core.strict import from_dict

        self.p = from_dict(CremaD.Params, params, "data.params")
        plan = CachePlan.make(CremaD, Path(params["root"]), self.p)
        found = locate_sources(plan).found
        self.items = [(src, plan.clips.labels[i]) for i, src in found if plan.clips.splits[i] == "train"]
        self.transform = v2.Compose([
            v2.RandomResizedCrop(self.p.frame_size, antialias=True), v2.RandomHorizontalFlip(),
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])

    def __len__(self) -> int:
        return len(self.items)

    def item(self, src, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        from benchmarks.data.cremad import CremaD
        from benchmarks.data.layouts import frame_files
        from benchmarks.data.media import cremad_spectrogram, read_audio, read_image, sample_frame_indices

        p = self.p
        wave = read_audio(src.audio, p.sample_rate, min_rate=min(p.sample_rate, CremaD.source_rate))
        audio = cremad_spectrogram(wave, p.sample_rate, p.clip_seconds, p.n_fft, p.hop_length).unsqueeze(0)
        files = frame_files(src.visual)
        picked = sample_frame_indices(len(files), p.frames_per_clip, True, generator)
        visual = torch.stack([self.transform(read_image(files[i])) for i in picked])
        return audio, visual

    def epoch(self, batch_size: int, generator: torch.Generator) -> int:
        order = torch.randperm(len(self.items), generator=generator).tolist()
        n = 0
        for start in range(0, len(order), batch_size):
            parts = [self.item(self.items[i][0], generator) for i in order[start:start + batch_size]]
            batch = (torch.stack([a for a, _ in parts]), torch.stack([v for _, v in parts]),
                     torch.tensor([self.items[i][1] for i in order[start:start + batch_size]]))
            n += len(batch[2])
        return n


def throughput(root: Path, clips_per_class: int, reps: int, frame_size: int = 224, batch_size: int = 16,
               passes: int = 1) -> dict:
    """Samples per second of both paths over the fixture's train clips, interleaved: each repetition times
    one decode-every-epoch pass and ``passes`` cached ones (a cached pass alone lasts a few scheduler
    ticks), and the times are per pass."""
    from benchmarks.data import get_dataset
    from benchmarks.core.strict import from_dict

    params = fixture(root, clips_per_class, frame_size)
    dataset = get_dataset("cremad")
    t0 = time.perf_counter()
    train, _, _ = dataset.load(from_dict(dataset.Params, params, "data.params"))  # 0 workers: this process
    prepare_s = time.perf_counter() - t0
    decode = DecodeEveryEpoch(params)
    gen = torch.Generator().manual_seed(0)

    def cached() -> None:
        for _ in range(passes):
            for batch in train.batches(batch_size, shuffle=True, generator=gen):
                pass

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        times = interleave({"cached": cached, "decode": lambda: decode.epoch(batch_size, gen)}, reps, warmup=1)
    finally:
        torch.set_num_threads(threads)
    times["cached"] = [t / passes for t in times["cached"]]
    n = len(train)
    if n != len(decode):
        raise RuntimeError(f"the two paths read different clip counts: {n} vs {len(decode)}")
    return {"clips": n, "prepare_s": prepare_s, "times": times,
            "cached_sps": n / min(times["cached"]), "decode_sps": n / min(times["decode"]), "params": params,
            "frame_size": frame_size, "passes": passes}


def wait_share(params: dict, workers: int, batch_size: int = 16, device: str = "cpu",
               encoder: str = "resnet18") -> dict:
    """One training epoch of a joint ResNet-18 ``Trainer`` on the fixture (real CREMA-D input shapes),
    with the time spent inside the split's batch iterator (waiting for data) measured."""
    from benchmarks.grid.config import resolve_run

    from .compute import build_trainer

    cfg = resolve_run({
        "benchmark": "bench", "seed": 0, "device": device,
        "data": {"name": "cremad", "batch_size": batch_size, "eval_batch_size": batch_size,
                 "num_workers": workers, "params": params},
        "model": {"encoder": encoder}, "optim": {"epochs": 10, "scheduler": "none"},
        "method": {"name": "joint"}})
    trainer = build_trainer(cfg)
    split = trainer.data.train
    batches = split.batches
    waited, count = [0.0], [0]

    def timed_batches(*args, **kwargs):
        it = batches(*args, **kwargs)
        while True:
            t0 = time.perf_counter()
            try:
                batch = next(it)
            except StopIteration:
                return
            finally:
                waited[0] += time.perf_counter() - t0
            count[0] += 1
            yield batch

    for batch in batches(batch_size, shuffle=True, generator=torch.Generator().manual_seed(1)):
        trainer.train_step(batch.to(trainer.device))  # warm-up: loader workers started, kernels chosen
        break
    split.batches = timed_batches
    t0 = time.perf_counter()
    trainer.train_epoch(0)
    total = time.perf_counter() - t0
    return {"workers": workers, "steps": count[0], "encoder": encoder, "epoch_s": total, "wait_s": waited[0],
            "share": waited[0] / total}
