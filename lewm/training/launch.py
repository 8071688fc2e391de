"""`lewm train --nproc N`: torchrun's launcher on this machine, started from Python.

It is torch.distributed's elastic agent configured as `torchrun --standalone --nproc-per-node N` (a private
rendezvous on a free localhost port, no restarts): it starts N processes with RANK, LOCAL_RANK and WORLD_SIZE set,
and when one fails it stops the others.
"""
from __future__ import annotations

import uuid

from lewm_errors import UserError


def launch_on_this_machine(nproc: int, entrypoint, *args) -> None:
    """Run entrypoint(*args) in `nproc` processes of one torchrun job; a UserError when any of them fails."""
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    config = LaunchConfig(min_nodes=1, max_nodes=1, nproc_per_node=nproc, run_id=str(uuid.uuid4()),
                          rdzv_backend="c10d", rdzv_endpoint="localhost:0", max_restarts=0)
    try:
        elastic_launch(config, entrypoint)(*args)
    except ChildFailedError as err:
        rank, failure = err.get_first_failure()
        how = (f"was killed by {failure.signal_name()}" if failure.exitcode < 0
               else f"exited with code {failure.exitcode}")
        raise UserError(f"the training process of rank {rank} {how}, so all {nproc} were stopped (their messages "
                        f"are above); the run folder's last checkpoint is whole: continue with --resume") from None
