"""OGM-GE: on-the-fly gradient modulation with generalisation enhancement (Peng et al., CVPR 2022).

Only the fused cross-entropy is optimised. After ``backward`` the conv-weight gradients of the
dominant modality's encoder are scaled by ``k < 1`` and (GE) Gaussian noise with the std of the
unmodulated gradient is added to the conv-weight gradients of every encoder. See
``docs/methods.md``.

Two modalities are required. The official code names them audio/visual; here the first modality of
the model plays the audio role and the second the visual role (ratio = s_second / s_first).
"""
from __future__ import annotations

import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from benchmarks.core.strict import require

from .base import Method
from .registry import register


@dataclass(frozen=True)
class OGMGEParams:
    # α: official README, "α = 0.8 for CREMA-D" (0.1 for VGGSound).
    alpha: float = 0.8
    # First modulated epoch (0-based, inclusive): official --modulation_starts 0.
    modulation_start: int = 0
    # Last modulated epoch = floor(fraction · epochs), inclusive: official --modulation_ends 50 of 100 epochs.
    modulation_end_fraction: float = 0.5
    # "tanh": official HEAD (commit a974f3c): dominant modality k = 1 - tanh(α·ρ), the other 1.
    # "smooth": pre-release form (commit 65b81b1): k = 1 - tanh(α·relu(ρ - 1)) for both modalities.
    form: Literal["tanh", "smooth"] = "tanh"
    # GE: add N(0, (std(g)+1e-8)^2) to the conv-weight gradients of both encoders (official OGM_GE mode).
    noise: bool = True
    # Our choice: the noise is drawn in this many chunks, each from a generator of its own seeded from the run's
    # seed, so a CPU draws them on all its threads (a generator draws serially); the numbers depend on this
    # count, never on the thread count. 1: one stream.
    noise_streams: int = 8

    def __post_init__(self) -> None:
        require(self.noise_streams >= 1, "noise_streams", self.noise_streams, ">= 1")


def modality_scores(unimodal_logits: dict[str, Tensor], labels: Tensor) -> dict[str, Tensor]:
    """s_m = Σ_i softmax(o_m)_i[y_i] over the batch (detached)."""
    idx = labels.view(-1, 1)
    return {m: F.softmax(o.detach().float(), dim=1).gather(1, idx).sum() for m, o in unimodal_logits.items()}


def ogm_coefficients(unimodal_logits: dict[str, Tensor], labels: Tensor, alpha: float,
                     form: str = "tanh") -> dict[str, Tensor]:
    """Modulation coefficients ``{first: k, second: k, "ratio": s_second / s_first}`` (0-d tensors).

    ``tanh`` (official HEAD): if ρ_second > 1 then k_second = 1 - tanh(α ρ_second), k_first = 1;
    else (also for ρ == 1, the official else-branch) k_first = 1 - tanh(α ρ_first), k_second = 1.
    ``smooth``: k_m = 1 - tanh(α relu(ρ_m - 1)) for both. ρ_first = 1 / ρ_second.
    Scores are clamped to ≥1e-12 before dividing (never reached with float softmax in practice).
    """
    if len(unimodal_logits) != 2:
        raise ValueError(f"OGM-GE needs exactly two modalities, got {sorted(unimodal_logits)}")
    first, second = unimodal_logits
    s = modality_scores(unimodal_logits, labels)
    ratio_second = s[second] / s[first].clamp_min(1e-12)
    ratio_first = s[first] / s[second].clamp_min(1e-12)
    one = torch.ones_like(ratio_second)
    if form == "tanh":
        second_dominant = ratio_second > 1
        k_second = torch.where(second_dominant, 1 - torch.tanh(alpha * ratio_second), one)
        k_first = torch.where(second_dominant, one, 1 - torch.tanh(alpha * ratio_first))
    elif form == "smooth":
        k_second = 1 - torch.tanh(alpha * F.relu(ratio_second - 1))
        k_first = 1 - torch.tanh(alpha * F.relu(ratio_first - 1))
    else:
        raise ValueError(f"unknown OGM-GE form {form!r}")
    return {first: k_first, second: k_second, "ratio": ratio_second}


def conv_weight_grads(module: torch.nn.Module) -> list[Tensor]:
    """The 4-D gradients (conv weights) of one encoder; BN and linear parameters are left alone."""
    return [p.grad for p in module.parameters() if p.grad is not None and p.grad.dim() == 4]


@register
class OGMGE(Method):
    name = "ogm_ge"
    title = "OGM-GE"
    Params = OGMGEParams
    unimodal_heads = "split"
    dagr_rule = ("added to the total loss before backward, so its encoder gradient is modulated (k·g + noise) "
                 "together with the task gradient; the coefficients come from the same unimodal logits")

    needs_two_modalities = True

    def __init__(self, params, model, setup):
        super().__init__(params, model, setup)
        # GE noise is drawn where the gradients are, from generators seeded by the run's seed.
        self.noise_generators = noise_generators(setup.generator.initial_seed(), self.params.noise_streams,
                                                 setup.device)
        self._noise: Tensor | None = None  # reused every step (see modulate)

    def active(self) -> bool:
        return self.in_window(self.params.modulation_start, self.params.modulation_end_fraction)

    def losses(self, out, batch):
        return {"ce_fused": F.cross_entropy(out.logits, batch.labels)}

    def process_gradients(self, out, batch):
        first, second = self.model.modalities
        coef = ogm_coefficients(out.unimodal_logits, batch.labels, self.params.alpha, self.params.form)
        if not self.active():
            one = torch.ones_like(coef["ratio"])
            return {"ogm/k_audio": one, "ogm/k_visual": one, "ogm/ratio": coef["ratio"]}
        self.modulate({m: coef[m] for m in (first, second)})
        return {"ogm/k_audio": coef[first], "ogm/k_visual": coef[second], "ogm/ratio": coef["ratio"]}

    @torch.no_grad()
    def modulate(self, k: dict[str, Tensor]) -> None:
        """g ← k_m g (+ N(0, (std(g)+1e-8)²) when ``noise``) for every conv-weight gradient of each encoder.

        The noise is one draw on the gradients' device (:meth:`draw_noise`), split over the tensors in
        order; nothing is copied between host and device."""
        grads = {m: conv_weight_grads(self.model.encoders[m]) for m in k}
        flat = [g for m in k for g in grads[m]]
        if not flat:
            return
        stds = [g.std() + 1e-8 for g in flat] if self.params.noise else None  # of the unmodulated gradient
        for m, gs in grads.items():
            if gs:
                torch._foreach_mul_(gs, k[m].to(gs[0].dtype))
        if stds is None:
            return
        noise = self.draw_noise(sum(g.numel() for g in flat), flat[0])
        for g, z, std in zip(flat, noise.split([g.numel() for g in flat]), stds):
            g.addcmul_(z.view_as(g), std)

    def draw_noise(self, numel: int, like: Tensor) -> Tensor:
        """``numel`` standard normals in ``like``'s dtype and device: chunk i of ``tensor_split`` from
        generator i, the chunks drawn at once on torch's threads: a CPU generator draws serially (ResNet-18's
        22 M conv weights took 75 ms per step from one, about 4% of a joint step on 2 threads). The buffer
        is kept across steps: a fresh one costs its page faults every step on a CPU."""
        buffer = self._noise
        if buffer is None or buffer.numel() != numel or buffer.dtype != like.dtype or buffer.device != like.device:
            buffer = self._noise = torch.empty(numel, dtype=like.dtype, device=like.device)
        chunks = buffer.tensor_split(len(self.noise_generators))
        threads = torch.get_num_threads() if buffer.device.type == "cpu" else 1  # a GPU draws in parallel itself
        run_all([lambda c=c, g=g: c.normal_(generator=g) for c, g in zip(chunks, self.noise_generators)], threads)
        return buffer

    def state_dict(self):
        return {"noise_generators": [g.get_state() for g in self.noise_generators]}

    def load_state_dict(self, state):
        if set(state) != {"noise_generators"} or len(state["noise_generators"]) != len(self.noise_generators):
            raise ValueError(f"method 'ogm_ge' expects state {{'noise_generators'}} with {len(self.noise_generators)} "
                             f"generator states (noise_streams), got keys {sorted(state)}")
        for generator, saved in zip(self.noise_generators, state["noise_generators"]):
            generator.set_state(saved.cpu())  # a generator state is a CPU tensor


def noise_generators(seed: int, streams: int, device) -> list[torch.Generator]:
    """``streams`` generators on ``device``: one stream is the run's ``seed`` itself; more take their seeds
    from a generator seeded with it (``torch.randint`` below 2**62, in order)."""
    if streams == 1:
        seeds = [seed]
    else:
        seeds = torch.randint(2**62, (streams,), generator=torch.Generator().manual_seed(seed)).tolist()
    return [torch.Generator(device=device).manual_seed(s) for s in seeds]


def run_all(calls: list[Callable[[], object]], threads: int) -> None:
    """Every call, on up to ``threads`` threads (in order on this one where that is 1). Torch releases the
    interpreter lock inside its kernels, so draws on distinct generators run at once."""
    if threads <= 1 or len(calls) <= 1:
        for call in calls:
            call()
        return
    for future in [thread_pool(min(threads, len(calls))).submit(call) for call in calls]:
        future.result()  # re-raises a call's error here


@functools.cache
def thread_pool(threads: int) -> ThreadPoolExecutor:
    return ThreadPoolExecutor(threads, thread_name_prefix="ogm-ge-noise")
