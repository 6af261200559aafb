"""GPU section: a CREMA-D-shaped training epoch (random tensors of the real shapes, CREMA-D's 6,698
training clips, batch 64 as OGM-GE) of joint training with ResNet-18, fp32 against bf16 autocast with
channels-last (the trainer's ``precision`` and ``channels_last``), and optionally ``torch.compile``d
encoders. Epochs are interleaved after one warm-up epoch each."""
from __future__ import annotations

import torch

from .compute import CREMAD, Shapes, epoch_trainer
from .timing import interleave, spread

CREMAD_TRAIN_CLIPS = 6698

VARIANTS = {
    "fp32": {"precision": "fp32", "channels_last": False},
    "bf16+channels_last": {"precision": "bf16", "channels_last": True},
    "bf16+channels_last+compile": {"precision": "bf16", "channels_last": True},
}


def measure(device: str = "cuda", compile: bool = False, batch_size: int = 64, clips: int = CREMAD_TRAIN_CLIPS,
            reps: int = 2, shapes: Shapes = CREMAD, encoder: str = "resnet18") -> dict:
    names = [n for n in VARIANTS if compile or "compile" not in n]
    batches = clips // batch_size
    calls, trainers = {}, {}
    for name in names:
        trainer = epoch_trainer("joint", shapes, batch_size, batches, device, encoder=encoder,
                                **VARIANTS[name])
        if "compile" in name:
            for encoder in trainer.model.encoders.values():
                encoder.compile()
        trainers[name] = trainer
        counter = iter(range(10**9))
        calls[name] = lambda t=trainer, c=counter: t.train_epoch(next(c))
    sync = torch.cuda.synchronize if device.startswith("cuda") else None
    times = interleave(calls, reps, warmup=1, sync=sync)
    rows = {}
    for name in names:
        epoch_s = spread(times[name]).median
        rows[name] = {"epoch_s": epoch_s, "samples_per_s": batches * batch_size / epoch_s}
    device_name = torch.cuda.get_device_name(device) if device.startswith("cuda") else "cpu (smoke check)"
    return {"device": device_name, "batch_size": batch_size, "batches": batches, "reps": len(times["fp32"]),
            "shapes": shapes.describe(), "rows": rows, "times": times}
