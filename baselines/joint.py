"""Joint training: cross-entropy on the fused logits only (the field's baseline)."""
from __future__ import annotations

import torch.nn.functional as F

from .base import Method
from .registry import register


@register
class Joint(Method):
    name = "joint"
    title = "Joint training"

    def losses(self, out, batch):
        return {"ce_fused": F.cross_entropy(out.logits, batch.labels)}
