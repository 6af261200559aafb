"""Where and how a run computes: the device, mixed precision, memory format.

The device is chosen once (the runner resolves ``"auto"``); nothing else calls ``.cuda()``.
"""
from __future__ import annotations

import contextlib

import torch
from torch import nn


def choose_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def resolve_precision(requested: str, device: torch.device) -> str:
    """``"auto"`` → bf16 on a CUDA device that supports it, fp32 elsewhere (CPU autocast is slow)."""
    if requested != "auto":
        return requested
    return "bf16" if device.type == "cuda" and torch.cuda.is_bf16_supported() else "fp32"


def autocast(precision: str, device: torch.device) -> contextlib.AbstractContextManager:
    """Forward passes under bf16 autocast (no loss scaling needed, unlike fp16), or a no-op."""
    if precision == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def use_channels_last(requested: bool, device: torch.device) -> bool:
    """NHWC only pays off for cuDNN convolutions; on CPU it would only add copies."""
    return requested and device.type == "cuda"


def prepare_model(model: nn.Module, device: torch.device, channels_last: bool) -> nn.Module:
    model = model.to(device)
    return model.to(memory_format=torch.channels_last) if channels_last else model
