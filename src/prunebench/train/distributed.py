"""Data-parallel training of one run on several processes: `torchrun --nproc_per_node K prunebench train ... --ddp`.

What each rank does, and why the result is the single-process one:

- Every rank draws the same seeded permutation and augmentation of each epoch
  (`epoch_generator`), so they all see the same global batch of `batch_size`
  images; rank r trains on its contiguous slice of it (`torch.tensor_split`: the
  slices are disjoint and cover the batch, as DistributedSampler's do, but taken
  per batch so the global batch, the LR schedule and the step count are exactly
  those of one process).
- Gradients are all-reduced by DistributedDataParallel (a mean over ranks).  Each
  rank's loss is weighted by K * n_r / n, so the mean of the ranks' gradients is
  the gradient of the mean loss over the n images of the global batch, also when
  the last batch does not split evenly.  A rank whose slice is empty (a last
  batch smaller than K) still joins the all-reduce, with weight 0.
- BatchNorm: each rank normalises with its own slice's batch statistics, as the
  reference ImageNet training did (DataParallel and DDP without SyncBatchNorm);
  DDP broadcasts rank 0's running statistics before every forward, so every rank
  holds the same model.  A network with BN therefore differs slightly from a
  single process with the same global batch (statistics over n/K instead of n
  images); a network without BN matches it up to float rounding.
- Only rank 0 writes the run folder (checkpoints, `state/`, logs, result); the
  other ranks write theirs to a private temporary folder that is deleted.  All
  ranks resume from the run folder's `state/`.

Backend: nccl on CUDA, gloo on the CPU (how the tests run it, with 2 processes).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from prunebench.errors import PrunebenchError


@dataclass(frozen=True)
class Rank:
    rank: int
    world: int
    local_rank: int

    @property
    def main(self) -> bool:
        return self.rank == 0

    def shard(self, xb: torch.Tensor, yb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, float]:
        """This rank's slice of a global batch, and the weight of its mean loss (K * n_r / n)."""
        n = len(yb)
        xs, ys = torch.tensor_split(xb, self.world)[self.rank], torch.tensor_split(yb, self.world)[self.rank]
        if not len(ys):  # a last batch smaller than K: train on one image with weight 0 (DDP needs every rank's
            return xb[:1], yb[:1], 0.0  # forward and backward; rank 0, whose BN buffers count, is never empty)
        return xs, ys, self.world * len(ys) / n

    def sum(self, *values: float) -> list[float]:
        """Each value summed over the ranks (the epoch's training loss and accuracy counts)."""
        t = torch.tensor(values, dtype=torch.float64, device=_collective_device())
        torch.distributed.all_reduce(t)
        return [float(v) for v in t.tolist()]

    def barrier(self) -> None:
        torch.distributed.barrier()


_ACTIVE: Rank | None = None
_PRIVATE: list[Path] = []


def active() -> Rank | None:
    """This process's rank while a data-parallel run is set up (`init`), else None."""
    return _ACTIVE


def _collective_device() -> torch.device:
    return torch.device("cuda", torch.cuda.current_device()) if torch.distributed.get_backend() == "nccl" else torch.device("cpu")


def init(device: str | None = None) -> Rank:
    """Join the process group torchrun describes (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR/PORT).

    Returns this process's rank; `device` "cuda" becomes this rank's GPU (cuda:LOCAL_RANK).
    """
    global _ACTIVE
    if _ACTIVE is not None:
        return _ACTIVE
    missing = [k for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT") if k not in os.environ]
    if missing:
        raise PrunebenchError(f"--ddp runs under torchrun (torchrun --nproc_per_node K prunebench train ... --ddp); {missing[0]} is not set")
    rank = Rank(int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), int(os.environ["LOCAL_RANK"]))
    cuda = (device or ("cuda" if torch.cuda.is_available() else "cpu")).startswith("cuda")
    if cuda:
        torch.cuda.set_device(rank.local_rank)
    torch.distributed.init_process_group(backend="nccl" if cuda else "gloo")
    _ACTIVE = rank
    return rank


def rank_device(device: str | torch.device | None) -> str | torch.device | None:
    """The device this rank trains on: its own GPU under torchrun with CUDA, else `device` as given."""
    r = active()
    if r is None or not str(device or ("cuda" if torch.cuda.is_available() else "cpu")).startswith("cuda"):
        return device
    return f"cuda:{r.local_rank}"


def shutdown() -> None:
    global _ACTIVE
    if _ACTIVE is not None:
        torch.distributed.destroy_process_group()
        _ACTIVE = None
    for folder in _PRIVATE:
        shutil.rmtree(folder, ignore_errors=True)
    _PRIVATE.clear()


def write_dir(out_dir: Path) -> Path:
    """Where this rank writes the run's files: the run folder on rank 0, a private temporary one elsewhere."""
    r = active()
    if r is None or r.main:
        return out_dir
    private = Path(tempfile.mkdtemp(prefix=f"prunebench-rank{r.rank}-"))
    _PRIVATE.append(private)
    return private


def wrap(model: nn.Module, device: torch.device) -> nn.Module:
    """The model as DistributedDataParallel under an active run (gradients all-reduced), else itself."""
    if active() is None:
        return model
    ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=ids, broadcast_buffers=True)
