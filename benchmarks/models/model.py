"""The multimodal classifier: per-modality encoders, a fusion head, unimodal logits."""
from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import torch.nn.functional as F
from torch import Tensor, nn

from geomreg import LastLayer

from .encoders import build_encoder
from .fusion import FUSIONS, SeparateHeads


@dataclass
class ModelOutput:
    """What a forward pass returns; methods and DAGR read their inputs from here."""

    embeddings: dict[str, Tensor]  # pooled per-modality embeddings (B×D), what DAGR acts on
    logits: Tensor  # fused logits (B×K)
    unimodal_logits: dict[str, Tensor]  # per-modality logits (B×K)


class MultimodalModel(nn.Module):
    """Encoders → fusion head. A single-modality model is the unimodal reference.

    ``unit_sphere`` L2-normalizes every pooled embedding before anything reads it (the "unit-sphere
    only" objective control, ``docs/controls.md``)."""

    def __init__(self, encoders: Mapping[str, nn.Module], fusion: str, num_classes: int,
                 separate_heads: bool, unit_sphere: bool = False) -> None:
        super().__init__()
        self.modalities = tuple(encoders)
        self.unit_sphere = unit_sphere
        self.encoders = nn.ModuleDict(encoders)
        dims = {m: enc.out_dim for m, enc in encoders.items()}
        self.fusion = FUSIONS[fusion](dims, num_classes)
        self.unimodal_heads = SeparateHeads(dims, num_classes) if separate_heads else None

    def encode(self, inputs: Mapping[str, Tensor], modalities: Sequence[str] | None = None) -> dict[str, Tensor]:
        """The pooled embeddings of ``modalities`` (default: all), from their encoders only."""
        embeddings = {m: self.encoders[m](inputs[m]) for m in (modalities or self.modalities)}
        if self.unit_sphere:
            embeddings = {m: F.normalize(z, dim=1) for m, z in embeddings.items()}
        return embeddings

    def heads(self, embeddings: Mapping[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
        """Fused and unimodal logits for given embeddings (methods may pass detached ones)."""
        fused = self.fusion(embeddings)
        if self.unimodal_heads is not None:
            return fused, self.unimodal_heads(embeddings)
        return fused, self.fusion.split(embeddings)

    def forward(self, inputs: Mapping[str, Tensor]) -> ModelOutput:
        embeddings = self.encode(inputs)
        logits, unimodal = self.heads(embeddings)
        return ModelOutput(embeddings, logits, unimodal)

    def encoder_parameters(self, modality: str) -> Iterator[nn.Parameter]:
        return self.encoders[modality].parameters()

    def last_layer(self, modality: str) -> LastLayer:
        """The encoder's last layer (its ``last_layer()`` modules), for DAGR's last-layer α."""
        return LastLayer(*self.encoders[modality].last_layer())

    def head_parameters(self) -> Iterator[nn.Parameter]:
        yield from self.fusion.parameters()
        if self.unimodal_heads is not None:
            yield from self.unimodal_heads.parameters()


def init_like_originals(model: nn.Module) -> None:
    """OGM-GE's, PMR's and DGL's ``model.apply(weight_init)``, over the whole model (encoders and heads):
    Kaiming-normal convolutions (fan_out, ReLU), Xavier-normal linear layers with zero bias, norm layers 1/0."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.Linear):
            nn.init.xavier_normal_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def build_model(model_cfg, modalities: Mapping[str, int], num_classes: int,
                unit_sphere: bool = False) -> MultimodalModel:
    """``modalities`` maps each modality the model uses to its input channel count."""
    encoders = {m: build_encoder(model_cfg.encoder, ch, model_cfg.width, model_cfg.stem_stride)
                for m, ch in modalities.items()}
    model = MultimodalModel(encoders, model_cfg.fusion, num_classes,
                            separate_heads=model_cfg.unimodal_heads == "separate", unit_sphere=unit_sphere)
    init_like_originals(model)
    return model
