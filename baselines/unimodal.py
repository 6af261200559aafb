"""Unimodal reference: one encoder and one linear head trained alone on one modality."""
from __future__ import annotations

from dataclasses import dataclass

import torch.nn.functional as F

from benchmarks.core.strict import ConfigError

from .base import Method
from .registry import register


@dataclass(frozen=True)
class UnimodalParams:
    modality: str = "audio"  # the one modality trained (a grid's `references` list sets it)


@register
class Unimodal(Method):
    name = "unimodal"
    title = "Unimodal reference"
    Params = UnimodalParams
    supports_dagr = False  # DAGR needs two modalities
    dagr_rule = "not applicable (one modality)"

    @classmethod
    def modalities(cls, params, available):
        if params.modality not in available:
            raise ConfigError(f"method.params.modality={params.modality!r} is not in this dataset: {available}")
        return (params.modality,)

    def losses(self, out, batch):
        return {"ce": F.cross_entropy(out.logits, batch.labels)}
