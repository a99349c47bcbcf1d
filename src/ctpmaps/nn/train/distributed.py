"""One process or several under ``torchrun``: device, rank and collective helpers.

Under ``torchrun`` (``WORLD_SIZE`` > 1) the process group uses nccl on CUDA and gloo on CPU;
each process takes the GPU of its ``LOCAL_RANK``. Alone, a process uses CUDA when present
unless ``device`` says otherwise.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import torch
import torch.distributed as dist

__all__ = ["Dist", "setup_distributed"]


@dataclass
class Dist:
    """Where this process runs and how many run together.

    Attributes
    ----------
    rank, world : int
        This process's rank and the number of processes.
    device : torch.device
    initialised_here : bool
        Whether `setup_distributed` created the process group (and so must destroy it).
    """

    rank: int = 0
    world: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    initialised_here: bool = False

    @property
    def main(self) -> bool:
        """Rank 0: the process that writes files."""
        return self.rank == 0

    @property
    def amp(self) -> bool:
        """Mixed precision (float16 autocast and a gradient scaler): on CUDA only."""
        return self.device.type == "cuda"

    def barrier(self) -> None:
        """Wait for every process (nothing alone)."""
        if self.world > 1:
            dist.barrier()

    def sum(self, values: list[float]) -> list[float]:
        """Element-wise sum of ``values`` over the processes."""
        if self.world == 1:
            return values
        t = torch.tensor(values, dtype=torch.float64, device=self.device)
        dist.all_reduce(t)
        return t.tolist()

    def close(self) -> None:
        """Destroy the process group if this process created it."""
        if self.initialised_here:
            dist.destroy_process_group()


def setup_distributed(device: str | None) -> Dist:
    """The process's `Dist`, initialising the process group under ``torchrun``.

    Parameters
    ----------
    device : str or None
        ``"cpu"``, ``"cuda"``...; CUDA when available by default.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    cuda = torch.cuda.is_available() and device != "cpu"
    if world <= 1:
        dev = torch.device(device) if device else torch.device("cuda" if cuda else "cpu")
        return Dist(device=dev)
    local = int(os.environ.get("LOCAL_RANK", "0"))
    initialised = False
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if cuda else "gloo")
        initialised = True
    if cuda:
        torch.cuda.set_device(local)
    dev = torch.device(f"cuda:{local}") if cuda else torch.device("cpu")
    return Dist(dist.get_rank(), dist.get_world_size(), dev, initialised)
