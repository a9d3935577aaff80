"""Executors: where stages run.  The runner decides *when* (a stage is submitted only
once its upstream stages are done); an executor only decides *where*.

The interface is two methods, so a distributed engine fits behind it later:

    submit(fn, *args)         -> a future (`.done()`, `.result()`; `result()` re-raises the stage's error)
    wait(futures, timeout)    -> the futures that have finished (blocks until at least one has,
                                 or `timeout` seconds have passed: the runner then polls the store)

`fn` and its arguments must be picklable (module-level function, plain data) for
any executor other than `InProcessExecutor`.  `fn` computes a stage and returns its
record; the runner writes it to the store (stages.py: compute, then record), so an
executor's workers need not reach the store.  `ray_executor.RayExecutor` wraps Ray
tasks in futures the same way.  An executor may say how many stages it runs at once
(`capacity`) and whether its workers are remote (`remote`: they do not name
themselves in the claim, the driver's claim stands for them).
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from collections.abc import Callable, Iterable
from concurrent import futures
from typing import Any, Protocol

#: How often a pool worker checks that the process that started it is still alive.
WATCHDOG_S = 0.2


class Executor(Protocol):
    def submit(self, fn: Callable[..., Any], *args: Any) -> futures.Future: ...

    def wait(self, pending: Iterable[futures.Future], timeout: float | None = None) -> set[futures.Future]: ...

    def close(self) -> None: ...


class InProcessExecutor:
    """Runs each stage at once, in this process (the default; easiest to debug)."""

    def submit(self, fn: Callable[..., Any], *args: Any) -> futures.Future:
        fut: futures.Future = futures.Future()
        try:
            fut.set_result(fn(*args))
        except Exception as e:  # handed to the runner through the future, like a pool would
            fut.set_exception(e)
        return fut

    def wait(self, pending: Iterable[futures.Future], timeout: float | None = None) -> set[futures.Future]:
        return {f for f in pending if f.done()}

    def close(self) -> None:
        pass


def _exit_with_parent(parent: int) -> None:
    """A worker's watchdog: once the parent is gone (killed with -9, say) the worker is an orphan
    nobody collects results from; it exits at once instead of training on for minutes."""
    while True:
        if os.getppid() != parent:
            os._exit(70)  # no cleanup handlers: the interrupted stage is resumed by the next run
        time.sleep(WATCHDOG_S)


def _start_watchdog(parent: int) -> None:
    threading.Thread(target=_exit_with_parent, args=(parent,), name="prunebench-watchdog", daemon=True).start()


class PoolExecutor:
    """A local pool of `workers` processes (spawn context: no forked torch state).

    Each worker watches its parent and exits within `WATCHDOG_S` once the parent has died.
    """

    def __init__(self, workers: int) -> None:
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        self._pool = futures.ProcessPoolExecutor(
            max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
            initializer=_start_watchdog, initargs=(os.getpid(),),
        )  # fmt: skip

    def submit(self, fn: Callable[..., Any], *args: Any) -> futures.Future:
        return self._pool.submit(fn, *args)

    def wait(self, pending: Iterable[futures.Future], timeout: float | None = None) -> set[futures.Future]:
        done, _ = futures.wait(list(pending), timeout=timeout, return_when=futures.FIRST_COMPLETED)
        return set(done)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


def make_executor(workers: int) -> Executor:
    return InProcessExecutor() if workers <= 1 else PoolExecutor(workers)


def assign_devices(workers: int | None, devices: str | None, gpu_count: int) -> list[str | None]:
    """The device of each local worker slot (the list's length is the number of workers).

    `devices`: "all" (every CUDA device), a comma list ("cuda:0,cuda:1", "cpu"), or None: then
    with GPUs present one slot per GPU when `workers` is unset (several workers share them
    round-robin when it is set), and torch's default device (None) without GPUs.  Slot i runs on
    `devices[i % len(devices)]`, so several workers may share one device.  `gpu_count` is passed
    in (not asked of torch here) so the same code is tested without GPUs.
    """
    from prunebench.errors import PrunebenchError

    if workers is not None and workers < 1:
        raise PrunebenchError(f"--workers must be >= 1, got {workers}")
    if devices is None:
        if gpu_count == 0:
            return [None] * (workers or 1)
        names = [f"cuda:{i}" for i in range(gpu_count)]
    elif devices.strip() == "all":
        if gpu_count == 0:
            raise PrunebenchError("--devices all: no CUDA device on this machine (use --devices cpu or leave it out)")
        names = [f"cuda:{i}" for i in range(gpu_count)]
    else:
        names = [d.strip() for d in devices.split(",") if d.strip()]
        if not names:
            raise PrunebenchError(f"--devices {devices!r}: give devices like cuda:0,cuda:1 or all")
        for name in names:
            kind, _, index = name.partition(":")
            if kind == "cpu" and not index:
                continue
            if kind != "cuda" or (index and not index.isdigit()):
                raise PrunebenchError(f"--devices: {name!r} is not a device (cpu, cuda or cuda:N)")
            if int(index or 0) >= gpu_count:
                have = f"cuda:0..cuda:{gpu_count - 1}" if gpu_count else "no CUDA device"
                raise PrunebenchError(f"--devices: {name} is not on this machine ({have})")
    n = workers if workers is not None else len(names)
    return [names[i % len(names)] for i in range(n)]
