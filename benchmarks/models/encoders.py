"""Per-modality encoders. Each maps a batch of one modality to a pooled embedding (B×D),
the vector the fusion head and DAGR act on, and names its ``last_layer()`` (the modules before the
pooling, whose gradients DAGR's ``alpha: last_layer`` reads)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.models import resnet18


def as_image_batch(x: Tensor, in_channels: int) -> tuple[Tensor, int]:
    """Fold frames into the batch: (B,H,W) | (B,C,H,W) | (B,T,C,H,W) → (B·T,C,H,W), T."""
    if x.dim() == 3:
        x = x.unsqueeze(1)
    if x.dim() == 4:
        return x, 1
    if x.dim() == 5:
        b, t = x.shape[:2]
        return x.reshape(b * t, *x.shape[2:]), t
    raise ValueError(f"expected a 3-, 4- or 5-D input for a {in_channels}-channel encoder, got {tuple(x.shape)}")


def pool_frames(features: Tensor, frames: int) -> Tensor:
    """Late temporal average pooling: mean over frames and space, (B·T,D,h,w) → (B,D)."""
    bt, d = features.shape[:2]
    return features.reshape(bt // frames, frames, d, -1).mean(dim=(1, 3))


class ResNet18Encoder(nn.Module):
    """torchvision ResNet-18 from scratch without avgpool/fc, as in OGM-GE/PMR/MMPareto/DGL.

    Audio uses a 1-channel conv1 on the spectrogram; visual frames are folded into the batch
    and averaged after the CNN (late temporal pooling). Output: 512-d pooled embedding.
    """

    out_dim = 512

    def __init__(self, in_channels: int) -> None:
        super().__init__()
        net = resnet18(weights=None)
        if in_channels != 3:
            net.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.in_channels = in_channels
        self.body = nn.Sequential(
            net.conv1, net.bn1, net.relu, net.maxpool, net.layer1, net.layer2, net.layer3, net.layer4
        )

    def forward(self, x: Tensor) -> Tensor:
        x, frames = as_image_batch(x, self.in_channels)
        return pool_frames(self.body(x), frames)

    def last_layer(self) -> tuple[nn.Module, ...]:
        """The last convolution and its batch norm (of layer4's last block), right before the pooling."""
        block = self.body[-1][-1]
        return block.conv2, block.bn2


class SmallCNNEncoder(nn.Module):
    """Three conv-BN-ReLU stages with pooling; for the small embedded benchmark.

    ``stem_stride`` 2 halves the resolution in the first convolution, which makes the block 8x
    cheaper on the 40x51 AV-Digits spectrograms.
    """

    def __init__(self, in_channels: int, width: int = 64, stem_stride: int = 1) -> None:
        super().__init__()
        c1, c2 = max(width // 4, 8), max(width // 2, 16)
        self.in_channels = in_channels
        self.out_dim = width
        self.body = nn.Sequential(
            _conv_block(in_channels, c1, stem_stride), MaxPool2x2(),
            _conv_block(c1, c2), MaxPool2x2(),
            _conv_block(c2, width),
        )

    def forward(self, x: Tensor) -> Tensor:
        x, frames = as_image_batch(x, self.in_channels)
        return pool_frames(self.body(x), frames)

    def last_layer(self) -> tuple[nn.Module, ...]:
        """The last convolution and its batch norm (the third block's), right before the pooling."""
        conv, norm, _ = self.body[-1]
        return conv, norm


class MaxPool2x2(nn.Module):
    """``nn.MaxPool2d(2)`` with the same maxima, argmax and gradients, bit for bit, but about 2.5x faster
    on a CPU at the small CNN's shapes: PyTorch's channels-first max-pool kernel is not vectorised over
    channels, so the forward pass runs on a channels-last copy, while the backward pass keeps the
    channels-first kernel, which is the faster one there (``make bench``, "Where a run's time goes").
    Under ``torch.func`` transforms, which cannot change memory formats, it is the plain kernel."""

    def forward(self, x: Tensor) -> Tensor:
        if (torch._C._functorch.is_functorch_wrapped_tensor(x) or x.dim() != 4
                or x.is_contiguous(memory_format=torch.channels_last)):
            return F.max_pool2d(x, 2)
        if not (torch.is_grad_enabled() and x.requires_grad):
            return F.max_pool2d(x.contiguous(memory_format=torch.channels_last), 2).contiguous()
        return _ChannelsLastMaxPool2x2.apply(x)[0]


class _ChannelsLastMaxPool2x2(torch.autograd.Function):
    # forward(ctx, ...) rather than a separate setup_context: with the latter, every call binds its
    # arguments through inspect.signature (torch's _bind_default_args), tens of microseconds per call,
    # and a small CNN's step makes four of these calls.
    @staticmethod
    def forward(ctx, x: Tensor) -> tuple[Tensor, Tensor]:
        pooled, argmax = F.max_pool2d(x.contiguous(memory_format=torch.channels_last), 2, return_indices=True)
        # argmax holds the flat index h·W+w within each plane, as the channels-first kernel numbers it
        argmax = argmax.contiguous()
        ctx.save_for_backward(x, argmax)
        ctx.mark_non_differentiable(argmax)
        return pooled.contiguous(), argmax

    @staticmethod
    def backward(ctx, grad: Tensor, _: Tensor) -> Tensor:
        x, argmax = ctx.saved_tensors
        return torch.ops.aten.max_pool2d_with_indices_backward(grad, x, [2, 2], [2, 2], [0, 0], [1, 1], False, argmax)


def _conv_block(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(cout),
                         nn.ReLU(inplace=True))


def build_encoder(kind: str, in_channels: int, width: int, stem_stride: int = 1) -> nn.Module:
    if kind == "resnet18":
        return ResNet18Encoder(in_channels)
    if kind == "small_cnn":
        return SmallCNNEncoder(in_channels, width, stem_stride)
    raise ValueError(f"unknown encoder {kind!r}; choose resnet18 or small_cnn")
