"""Fusion heads and the two ways of getting unimodal logits from them.

For concat fusion ``o = W [φ_a; φ_v] + b`` the unimodal logits are the weight blocks with the bias
shared equally, ``o_m = W_m φ_m + b/M`` (OGM-GE's split, generalised to M modalities), so that
``Σ_m o_m = o`` exactly. For sum fusion each modality has its own linear map and ``o_m`` is it.
``SeparateHeads`` are extra trainable unimodal classifiers (MMPareto, G-Blending).
"""
from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn


class ConcatFusion(nn.Module):
    def __init__(self, dims: Mapping[str, int], num_classes: int) -> None:
        super().__init__()
        self.modalities = tuple(dims)
        self.dims = dict(dims)
        self.fc = nn.Linear(sum(dims.values()), num_classes)

    def forward(self, emb: Mapping[str, Tensor]) -> Tensor:
        return self.fc(torch.cat([emb[m] for m in self.modalities], dim=1))

    def split(self, emb: Mapping[str, Tensor]) -> dict[str, Tensor]:
        out, start = {}, 0
        share = self.fc.bias / len(self.modalities)
        for m in self.modalities:
            block = self.fc.weight[:, start:start + self.dims[m]]
            out[m] = emb[m] @ block.t() + share
            start += self.dims[m]
        return out


class SumFusion(nn.Module):
    def __init__(self, dims: Mapping[str, int], num_classes: int) -> None:
        super().__init__()
        self.modalities = tuple(dims)
        self.fc = nn.ModuleDict({m: nn.Linear(d, num_classes) for m, d in dims.items()})

    def forward(self, emb: Mapping[str, Tensor]) -> Tensor:
        return sum(self.fc[m](emb[m]) for m in self.modalities)

    def split(self, emb: Mapping[str, Tensor]) -> dict[str, Tensor]:
        return {m: self.fc[m](emb[m]) for m in self.modalities}


class SeparateHeads(nn.Module):
    def __init__(self, dims: Mapping[str, int], num_classes: int) -> None:
        super().__init__()
        self.fc = nn.ModuleDict({m: nn.Linear(d, num_classes) for m, d in dims.items()})

    def forward(self, emb: Mapping[str, Tensor]) -> dict[str, Tensor]:
        return {m: head(emb[m]) for m, head in self.fc.items()}


FUSIONS = {"concat": ConcatFusion, "sum": SumFusion}
