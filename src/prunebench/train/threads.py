"""How many torch CPU threads a process trains with.

OpenMP threads that wait for a core held by another job are slow: on this project's
2-core machine VGG-16 trained at 23-32 img/s with torch's default 2 threads whenever
another job ran, against 95-102 img/s with 1 thread (on an idle machine 2 threads are
worth 1.2-1.9x).  So a run takes only the cores that are free: the cores this process
may use (`os.sched_getaffinity`) shared among the pool's workers, minus what other jobs
keep busy (the 1-minute load average less this process's own threads), chosen when
training starts and re-checked between epochs.

The thread count changes results in the last digits (reductions split differently;
measured: 1 vs 2 threads differ after one epoch in fp32 and bf16), so an adaptive run
is not bit-reproducible on a machine whose load changes.  Asking for reproducibility
means pinning the count: `--threads N`, or `PRUNEBENCH_THREADS=N` (or `OMP_NUM_THREADS=N`)
in the environment; a pinned run never adapts.  The library's `train()` changes nothing
unless a policy is in force (`use_threads`), so API users and tests keep torch's setting.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch

from prunebench.errors import ConfigError

THREADS_ENV = "PRUNEBENCH_THREADS"
# Pins read from the environment, in this order (OMP_NUM_THREADS: torch itself honours it).
_PIN_VARS = (THREADS_ENV, "OMP_NUM_THREADS")
# A core counts as free when at most this much of it is busy: a thread sharing a core costs
# far more (3-4x) than one core fewer (1.2-1.9x), so lean towards fewer threads.
_SLACK = 0.25


@dataclass(frozen=True)
class ThreadPolicy:
    """pinned: a fixed thread count (bit-reproducible), or None to adapt to the free cores.
    workers: processes of this run sharing the machine's cores (the pool's size)."""

    pinned: int | None = None
    workers: int = 1

    @property
    def adaptive(self) -> bool:
        return self.pinned is None

    def choose(self, running: int = 1) -> int:
        """The thread count to use now; `running` = this process's threads that were busy
        over the last minute (they are part of the load average)."""
        if self.pinned is not None:
            return self.pinned
        share = max(1, usable_cores() // max(1, self.workers))
        return max(1, min(share, math.floor(free_cores(running) + _SLACK)))


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        return os.cpu_count() or 1


def free_cores(running: int = 1) -> float:
    """Cores not kept busy by other jobs: usable cores minus (load average - our own `running` threads)."""
    try:
        load = os.getloadavg()[0]
    except OSError:
        return float(usable_cores())
    return usable_cores() - max(0.0, load - running)


def thread_policy(threads: int | None = None, *, workers: int = 1) -> ThreadPolicy:
    """`threads` (e.g. `--threads N`), else a pin from the environment, else adaptive."""
    if threads is not None:
        if threads < 1:
            raise ConfigError(f"--threads must be at least 1, got {threads}")
        return ThreadPolicy(threads, workers)
    for var in _PIN_VARS:
        text = os.environ.get(var, "").strip()
        if not text:
            continue
        if not text.isdigit() or int(text) < 1:
            raise ConfigError(f"{var} must be a whole number >= 1, got {text!r}")
        return ThreadPolicy(int(text), workers)
    return ThreadPolicy(None, workers)


_ACTIVE: list[ThreadPolicy] = []  # the policy in force in this process (innermost `use_threads`)


@contextmanager
def use_threads(policy: ThreadPolicy | None) -> Iterator[None]:
    """Apply `policy` now and let the trainer re-check it between epochs; on exit restore
    the previous thread count (None = change nothing)."""
    if policy is None:
        yield
        return
    before = torch.get_num_threads()
    _ACTIVE.append(policy)
    torch.set_num_threads(policy.choose(running=1))
    try:
        yield
    finally:
        _ACTIVE.pop()
        torch.set_num_threads(before)


def adapt_threads() -> int | None:
    """Trainer hook, between epochs: re-choose under the policy in force.  Returns the count
    for the next epoch, or None when no policy is in force (nothing changed)."""
    if not _ACTIVE:
        return None
    current = torch.get_num_threads()
    chosen = _ACTIVE[-1].choose(running=current)
    if chosen != current:
        torch.set_num_threads(chosen)
    return chosen
