"""One run over several processes (``torchrun``): data-parallel training with explicit collectives.

When the process is started by ``torchrun`` (``WORLD_SIZE`` > 1) the trainer trains one run on every
rank at once:

* every rank draws the same seeded batch order and keeps its contiguous slice of each batch;
* after the method's ``process_gradients`` the gradients are averaged across ranks in one flattened
  all-reduce, weighted by shard size, so every rank takes the same optimizer step;
* BatchNorm running statistics are copied from rank 0 at the end of every training epoch, so the
  method's epoch hooks (which run whole on every rank) see one model;
* rank 0 alone evaluates and writes the run's records and checkpoints; the other ranks wait.

This is not ``DistributedDataParallel``: the methods modulate gradients after the backward pass
(OGM-GE, MMPareto, DGL), which DDP's hooks would average too early. What each rank computes from its
batch, it computes from its shard only: batch statistics of BatchNorm, OGM-GE's and MMPareto's
modulation, DAGR's pairwise dispersion. See docs/performance.md, "One run on several GPUs".
"""
from __future__ import annotations

import atexit
import functools
import os
from collections.abc import Iterable
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from ..data import Batch


@dataclass(frozen=True)
class Ranks:
    """This process's place among the processes of one run; a single process is ``Ranks()``."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world_size > 1

    def device(self, chosen: torch.device) -> torch.device:
        """Each rank of a CUDA run uses the GPU of its local rank."""
        return torch.device("cuda", self.local_rank) if self.active and chosen.type == "cuda" else chosen

    def shard(self, batch: Batch) -> Batch:
        """This rank's contiguous slice of a batch (sizes differ by at most one)."""
        if not self.active:
            return batch
        if len(batch) < self.world_size:
            raise ValueError(f"a batch of {len(batch)} cannot be split over {self.world_size} ranks; "
                             f"raise data.batch_size")
        index = torch.tensor_split(torch.arange(len(batch)), self.world_size)[self.rank]
        return Batch({m: x[index] for m, x in batch.inputs.items()}, batch.labels[index])

    def average_gradients(self, parameters: Iterable[nn.Parameter], shard_size: int) -> None:
        """Replace each gradient by the shard-size-weighted mean over ranks, in one all-reduce.

        Weighting makes the result the gradient of the whole batch's mean loss even when the
        shards differ in size. Parameters without a gradient are left alone; which parameters
        have one depends on the method and the epoch, never on the data, so it is the same set
        on every rank."""
        if not self.active:
            return
        self.average_tensors([p.grad for p in parameters if p.grad is not None], shard_size)

    def average_tensors(self, tensors: list[torch.Tensor], shard_size: int) -> None:
        """In place, the shard-size-weighted mean over ranks of same-shaped tensors, in one all-reduce."""
        if not self.active or not tensors:
            return
        weight = torch.tensor([float(shard_size)], device=tensors[0].device, dtype=tensors[0].dtype)
        flat = torch.cat([t.reshape(-1) * weight for t in tensors] + [weight])
        dist.all_reduce(flat)
        flat = flat[:-1] / flat[-1]
        for tensor, reduced in zip(tensors, flat.split([t.numel() for t in tensors])):
            tensor.copy_(reduced.view_as(tensor))

    def mean(self, values: dict[str, float]) -> dict[str, float]:
        """The mean over ranks of per-rank epoch means (every rank logs the same keys)."""
        if not self.active:
            return values
        stacked = torch.tensor(list(values.values()), dtype=torch.float64)
        dist.all_reduce(stacked)
        return dict(zip(values, (stacked / self.world_size).tolist()))

    def earliest_step(self, first_bad: torch.Tensor) -> torch.Tensor:
        """The first step with a non-finite loss on any rank (-1 if none), so that all ranks stop
        together instead of leaving the others waiting in a collective."""
        if not self.active:
            return first_bad
        never = torch.iinfo(torch.long).max
        step = torch.where(first_bad < 0, torch.full_like(first_bad, never), first_bad).cpu()
        dist.all_reduce(step, op=dist.ReduceOp.MIN)
        return torch.where(step == never, torch.full_like(step, -1), step).to(first_bad.device)

    def sync_buffers(self, model: nn.Module) -> None:
        """Copy rank 0's buffers (BatchNorm running statistics) to every rank, one broadcast per dtype."""
        if not self.active:
            return
        by_dtype: dict[torch.dtype, list[torch.Tensor]] = {}
        for buffer in model.buffers():
            by_dtype.setdefault(buffer.dtype, []).append(buffer)
        for buffers in by_dtype.values():
            flat = torch.cat([b.reshape(-1) for b in buffers])
            dist.broadcast(flat, src=0)
            for buffer, synced in zip(buffers, flat.split([b.numel() for b in buffers])):
                buffer.copy_(synced.view_as(buffer))

    def barrier(self) -> None:
        if self.active:
            dist.barrier()


@functools.cache
def current() -> Ranks:
    """This process's ranks, joining the process group on first use when started by torchrun."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return Ranks()
    ranks = Ranks(int(os.environ["RANK"]), world_size, int(os.environ.get("LOCAL_RANK", "0")))
    if torch.cuda.is_available():
        torch.cuda.set_device(ranks.local_rank)
    # Collectives go by the tensor's device: gloo for CPU tensors (epoch means, a CPU run), NCCL for CUDA.
    dist.init_process_group(backend="cpu:gloo,cuda:nccl" if torch.cuda.is_available() else "gloo")
    atexit.register(dist.destroy_process_group)
    return ranks
