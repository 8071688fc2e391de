"""BatchNorm over the batch of all ranks, on any device.

In data-parallel training each rank holds a slice of the batch; a plain BatchNorm would normalise by the slice's
statistics, so N ranks of B clips would not compute what one process of N x B clips computes. torch's
SyncBatchNorm fixes that on GPUs only (it refuses CPU tensors), so the projector's BatchNorms are swapped for this
one, which sums the per-feature moments over the ranks with an autograd all-reduce and so works with gloo too.
"""
from __future__ import annotations

import torch
import torch.distributed as dist
from torch import Tensor, nn

from lewm.training.distributed import is_distributed, sum_over_ranks


class GlobalBatchNorm1d(nn.BatchNorm1d):
    """nn.BatchNorm1d on (N, C) rows whose training-mode statistics cover every rank's rows (same parameters,
    buffers and state-dict keys; eval mode and single-process training are plain BatchNorm1d)."""

    def forward(self, x: Tensor) -> Tensor:
        if not (self.training and is_distributed()):
            return super().forward(x)
        if x.dim() != 2:
            raise ValueError(f"GlobalBatchNorm1d takes (N, C) rows, got shape {tuple(x.shape)}")
        # statistics in the buffers' dtype under bf16 autocast, as BatchNorm keeps them; the output in the input's dtype
        dtype, x = x.dtype, x.to(self.running_mean.dtype)
        # two passes (mean, then the spread around it) as BatchNorm does, rather than E[x^2] - E[x]^2
        count = x.shape[0] * dist.get_world_size()  # every rank holds the same number of rows
        mean = sum_over_ranks(x.sum(0)) / count
        var = sum_over_ranks((x - mean).square().sum(0)) / count
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked += 1
                factor = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
                self.running_mean.lerp_(mean.detach(), factor)
                self.running_var.lerp_(var.detach() * count / (count - 1), factor)
        out = (x - mean) * torch.rsqrt(var + self.eps)
        return (out * self.weight + self.bias if self.affine else out).to(dtype)


def use_global_batchnorm(model: nn.Module) -> nn.Module:
    """Replace every nn.BatchNorm1d in `model` (in place) by a GlobalBatchNorm1d holding the same weights and
    running statistics; returns the model."""
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if type(child) is nn.BatchNorm1d:
                bn = GlobalBatchNorm1d(child.num_features, child.eps, child.momentum, child.affine,
                                       child.track_running_stats, device=child.running_mean.device,
                                       dtype=child.running_mean.dtype)
                bn.load_state_dict(child.state_dict())
                bn.train(child.training)
                setattr(parent, name, bn)
    return model
