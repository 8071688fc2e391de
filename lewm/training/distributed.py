"""Data-parallel training across processes and machines with torch.distributed, as started by torchrun.

torchrun gives each process RANK, LOCAL_RANK, WORLD_SIZE and a rendezvous (MASTER_ADDR/PORT); `Ranks.start`
reads them and joins the process group (gloo on the CPU, NCCL on GPUs). A process started without them is a
world of one, and every helper here is then the identity: single-process training runs the same code.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import warnings
from dataclasses import dataclass
from datetime import timedelta

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor

from lewm_errors import UserError

# How long a rank waits in a collective before it gives up on the others (a dead peer is usually noticed at
# once, when its connections close; this bounds a peer that hangs).
COLLECTIVE_TIMEOUT = timedelta(minutes=10)


@dataclass(frozen=True)
class Ranks:
    rank: int = 0
    local_rank: int = 0
    world_size: int = 1

    @property
    def is_main(self) -> bool:
        """Rank 0 alone writes checkpoints, logs and the progress bar."""
        return self.rank == 0

    @classmethod
    def from_environment(cls) -> Ranks:
        return cls(rank=int(os.environ.get("RANK", 0)), local_rank=int(os.environ.get("LOCAL_RANK", 0)),
                   world_size=int(os.environ.get("WORLD_SIZE", 1)))

    def device(self) -> str:
        """This rank's device: its own GPU (by LOCAL_RANK) where there are GPUs, else the CPU."""
        if not torch.cuda.is_available():
            return "cpu"
        torch.cuda.set_device(self.local_rank)
        return f"cuda:{self.local_rank}"

    def start(self, device: str) -> bool:
        """Join the process group of a torchrun launch; True when this call started it (and should end it)."""
        if self.world_size == 1 or dist.is_initialized():
            return False
        backend = "nccl" if device.startswith("cuda") else "gloo"
        dist.init_process_group(backend, rank=self.rank, world_size=self.world_size, timeout=COLLECTIVE_TIMEOUT)
        return True


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def gather_batch(x: Tensor) -> Tensor:
    """Every rank's (B, ...) rows, concatenated in rank order -> (world_size * B, ...), keeping the autograd graph:
    the gradient of each rank's rows comes back to it, summed over the ranks that used them (the plain
    dist.all_gather returns tensors without a graph)."""
    if not is_distributed():
        return x
    from torch.distributed.nn.functional import all_gather

    with _no_deprecation_warning():
        parts = all_gather(x.contiguous())
    return torch.cat([_ContiguousGradient.apply(part) for part in parts], dim=0)


class _ContiguousGradient(torch.autograd.Function):
    """The identity, whose backward hands on a contiguous gradient. all_gather's backward on gloo receives into
    buffers shaped like the incoming gradients (torch.empty_like); a strided one, as a transpose after the gather
    produces, gets the bytes in the wrong order and the gradients come out wrong."""

    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        return grad.contiguous()


def sum_over_ranks(x: Tensor) -> Tensor:
    """The sum of x over all ranks, with gradients (each rank's gradient is the sum of all ranks' gradients)."""
    if not is_distributed():
        return x
    from torch.distributed.nn.functional import all_reduce

    with _no_deprecation_warning():
        return all_reduce(x)


@contextlib.contextmanager
def _no_deprecation_warning():
    """torch 2.13 marks torch.distributed.nn.functional deprecated in favour of a private module; it is still the
    public API of collectives with gradients, and works with every backend."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="torch.distributed.nn.functional", category=FutureWarning)
        yield


def mean_over_ranks(values: list[float], device: str) -> list[float]:
    """Plain floats averaged over the ranks (for logging)."""
    if not is_distributed():
        return values
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return (t / dist.get_world_size()).tolist()


def from_rank_zero(value: float, device: str) -> float:
    """Rank 0's reading of a float on every rank, so that decisions made from it (the learning rate of the time
    schedule, the end of the time budget) are the same everywhere."""
    if not is_distributed():
        return value
    t = torch.tensor([value], dtype=torch.float64, device=device)
    dist.broadcast(t, src=0)
    return float(t.item())


def require_same_on_all_ranks(what: str, value, hint: str) -> None:
    """A UserError on every rank when the ranks disagree about `value` (any picklable value), naming each rank's."""
    if not is_distributed():
        return
    values = [None] * dist.get_world_size()
    dist.all_gather_object(values, value)
    if any(v != values[0] for v in values):
        per_rank = "; ".join(f"rank {r}: {v}" for r, v in enumerate(values))
        raise UserError(f"the ranks see different {what} ({per_rank}): {hint}")


def array_fingerprint(*arrays: np.ndarray) -> str:
    """A short hash of some arrays' shapes and bytes."""
    digest = hashlib.blake2b(digest_size=8)
    for a in arrays:
        digest.update(str(a.shape).encode())
        digest.update(np.ascontiguousarray(a).tobytes())
    return digest.hexdigest()


def is_lost_rank_error(err: BaseException) -> bool:
    """Whether an exception means another rank is gone (died, killed or unreachable): a distributed error, or the
    RuntimeError that gloo raises when a peer's connection closes."""
    if not is_distributed():
        return False
    return isinstance(err, dist.DistError) or (isinstance(err, RuntimeError) and "gloo" in str(err))
