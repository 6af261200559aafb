"""An encoder's last layer for DAGR's ``alpha="last_layer"`` (not the paper's rule), and the Gram matrix of
a 2-d convolution's weight gradients computed from its input.

α needs only the three inner products of the two terms' gradients on the last layer. For a convolution
whose output has ``N = B·H_out·W_out`` positions, the weight gradient of an output cotangent ``δ`` is
``Σ_n δ(n) x(n)ᵀ`` (``x(n)`` the input patch under position ``n``), so for two cotangents

    <g_a, g_b> = Σ_{n,m} <δ_a(n), δ_b(m)> · <x(n), x(m)>,

and ``<x(n), x(m)>`` is a sum over the kernel's taps of the inner products of the (zero-padded) input's
pixels. With ``P`` padded input positions this costs ``P²·C_in + 2·N²·C_out`` multiply-adds against
``2·N·C_in·k_h·k_w·C_out`` for the two weight gradients: 2.5x fewer at ResNet-18's last convolution
(7×7 positions, 512 channels, batch 16), many more at the small CNN's (30 positions, 32 input channels,
batch 64). :class:`LastLayer` takes the cheaper of the two; both are exact up to float32 rounding.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from contextlib import ExitStack, contextmanager
from typing import Iterator

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .pareto import alpha_from_products, geometry_alpha, gradient_products

__all__ = ["LastLayer", "LastLayerParameters", "conv2d_weight_gram", "recording"]


class LastLayer:
    """The module holding an encoder's last weight (a convolution, or any module) and the modules right
    after it whose parameters α also reads (e.g. its batch norm), for ``DAGR(alpha="last_layer")``.

    Run the training forward pass inside :meth:`recording` to let a 2-d convolution's α come from its
    input (see the module's docstring); without it, or when that is not cheaper, α comes from the
    layers' parameter gradients. A recorded pass is used once.
    """

    def __init__(self, layer: nn.Module, *after: nn.Module) -> None:
        self.layer, self.after = layer, tuple(after)
        self._captured: tuple[Tensor, Tensor] | None = None

    def parameters(self) -> list[Tensor]:
        """The parameters α reads, in module order, those that require a gradient."""
        return _trainable(self.layer, *self.after)

    @contextmanager
    def recording(self) -> Iterator["LastLayer"]:
        """Keep the layer's input and output of the one forward pass run inside (with autograd on)."""
        self._captured = None
        handle = self.layer.register_forward_hook(self._capture)
        try:
            yield self
        finally:
            handle.remove()

    def _capture(self, module: nn.Module, inputs: tuple[Tensor, ...], output: Tensor) -> None:
        if not torch.is_grad_enabled():
            return
        if self._captured is not None:
            raise RuntimeError(f"{type(module).__name__} ran twice while recording: α's Gram matrix needs the one "
                               "forward pass that produced the embeddings")
        self._captured = (inputs[0].detach(), output)

    def pull_back_targets(self) -> list[Tensor]:
        """What each term's embedding cotangent is pulled back to: the convolution's recorded output and the
        following layers' parameters when the Gram matrix comes from the input, else :meth:`parameters`."""
        if not self._input_gram():
            self._captured = None
            return self.parameters()
        return [self._captured[1], *_trainable(*self.after)]

    def alpha(self, disp: Sequence[Tensor | None], inter: Sequence[Tensor | None]) -> Tensor:
        """α (0-d float64) from what the two terms' cotangents gave at :meth:`pull_back_targets`, called
        right after it (the two must take the same route)."""
        if self._captured is None:
            return geometry_alpha(disp, inter)
        x, _ = self._captured
        self._captured = None
        if disp[0] is None or inter[0] is None:
            raise RuntimeError("the recorded output of the last layer is not in the embeddings' graph: record the "
                               "forward pass that produced them")
        gram = conv2d_weight_gram(x, [disp[0], inter[0]], self.layer)
        dd, ii, di = gram[0, 0], gram[1, 1], gram[0, 1]
        rest = list(zip(disp[1:], inter[1:]))
        if self.layer.bias is not None and self.layer.bias.requires_grad:  # ∂bias = δ summed over positions
            rest.append((disp[0].sum((0, 2, 3)), inter[0].sum((0, 2, 3))))
        if rest:
            more = gradient_products([d for d, _ in rest], [i for _, i in rest])
            dd, ii, di = dd + more[0], ii + more[1], di + more[2]
        return alpha_from_products(dd, ii, di)

    def _input_gram(self) -> bool:
        """Whether a recorded 2-d convolution's Gram matrix takes fewer multiply-adds from its input."""
        conv = self.layer
        if (self._captured is None or not isinstance(conv, nn.Conv2d) or conv.groups != 1
                or conv.padding_mode != "zeros" or isinstance(conv.padding, str) or not conv.weight.requires_grad):
            return False
        x, out = self._captured
        return gram_macs(x.shape, out.shape, conv) < weight_gradient_macs(out.shape, conv)


def _trainable(*modules: nn.Module) -> list[Tensor]:
    return [p for m in modules for p in m.parameters() if p.requires_grad]


@contextmanager
def recording(*layers: LastLayer) -> Iterator[None]:
    """:meth:`LastLayer.recording` of every layer at once."""
    with ExitStack() as stack:
        for layer in layers:
            stack.enter_context(layer.recording())
        yield


class LastLayerParameters:
    """α from the gradients of the given parameters (what :class:`LastLayer` does without a recorded
    convolution)."""

    def __init__(self, params: Iterable[Tensor]) -> None:
        self.params = [p for p in params if p.requires_grad]

    def pull_back_targets(self) -> list[Tensor]:
        return self.params

    def alpha(self, disp: Sequence[Tensor | None], inter: Sequence[Tensor | None]) -> Tensor:
        return geometry_alpha(disp, inter)


def weight_gradient_macs(out_shape: Sequence[int], conv: nn.Conv2d, terms: int = 2) -> int:
    b, c_out, h, w = out_shape
    return terms * b * h * w * conv.weight[0].numel() * c_out


def gram_macs(in_shape: Sequence[int], out_shape: Sequence[int], conv: nn.Conv2d, terms: int = 2) -> int:
    b, c_in, h, w = in_shape
    padded = b * (h + 2 * conv.padding[0]) * (w + 2 * conv.padding[1])
    n = b * out_shape[2] * out_shape[3]
    taps = conv.kernel_size[0] * conv.kernel_size[1]
    return padded * padded * c_in + n * n * (terms * out_shape[1] + taps)


def conv2d_weight_gram(x: Tensor, deltas: Sequence[Tensor], conv: nn.Conv2d) -> Tensor:
    """``<∂W_a, ∂W_b>`` (float64, k×k) of the weight gradients of ``conv`` (2-d, zero padding, one group)
    at input ``x`` (B, C_in, H, W) for the output cotangents ``deltas`` (each B, C_out, H_out, W_out),
    without forming the gradients: the input patches' inner products ``K`` (N×N) weigh the cotangents'."""
    (pad_h, pad_w), (s_h, s_w), (d_h, d_w) = conv.padding, conv.stride, conv.dilation
    x = F.pad(x.float(), (pad_w, pad_w, pad_h, pad_h))
    b, c_in, h, w = x.shape
    pixels = x.permute(0, 2, 3, 1).reshape(-1, c_in)
    pixel_gram = pixels @ pixels.T  # every padded pixel against every other, over the input channels
    h_out, w_out = deltas[0].shape[-2:]
    origin = (torch.arange(b, device=x.device).view(b, 1, 1) * (h * w)
              + torch.arange(h_out, device=x.device).view(1, h_out, 1) * (s_h * w)
              + torch.arange(w_out, device=x.device).view(1, 1, w_out) * s_w).reshape(-1)
    patch_gram = None
    for i in range(conv.kernel_size[0]):
        for j in range(conv.kernel_size[1]):
            at = origin + (i * d_h * w + j * d_w)  # the pixel under tap (i, j) of every output position
            part = pixel_gram.index_select(0, at).index_select(1, at)
            patch_gram = part if patch_gram is None else patch_gram.add_(part)
    flats = [d.float().permute(0, 2, 3, 1).reshape(-1, d.shape[1]) for d in deltas]  # N × C_out each
    weighed = [patch_gram @ f for f in flats]
    rows = [torch.stack([torch.vdot(fa.reshape(-1), wb.reshape(-1)) for wb in weighed]) for fa in flats]
    return torch.stack(rows).double()
