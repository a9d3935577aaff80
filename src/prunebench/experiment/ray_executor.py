"""Stages as Ray tasks: `prunebench run PRESET --executor ray [--address ...]`.

Each ready stage becomes one Ray task asking for `cpus_per_stage` CPUs and a GPU
share (small CIFAR/Fashion-MNIST models: a quarter of a GPU, so four share one;
ImageNet: a whole one; none on a cluster without GPUs).  The task computes the
stage in its folder under the experiment folder and returns its record; only
this process, the driver, writes the SQLite store (SQLite on a network file
system is not safe to write from many machines), under the claim it took for
the stage (claims.py: the driver's claim stands for its remote workers).

On a cluster the experiment folder must be on a file system every node mounts at
the same path (NFS, Lustre, ...): checkpoints are written there by the workers
and read back by the driver and by downstream stages.  When joining a cluster the
driver writes a token file in `--out` and a task on every node reads it; a node
that cannot see it makes the run refuse to start rather than lose checkpoints.

A worker that dies (killed, node lost) is retried by Ray (`RETRIES` times); the
retried task resumes from the stage's `state/` checkpoint, as a rerun would.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterable
from concurrent import futures
from pathlib import Path
from typing import Any

from prunebench.errors import PrunebenchError
from prunebench.experiment.ddp_stage import stage_nproc
from prunebench.experiment.stages import StageTask

#: The Ray version prunebench is tested with (pyproject.toml pins the same).
RAY_VERSION = "2.60.0"
#: Data sets whose models are small enough that several stages share one GPU.
SMALL_DATA = frozenset({"digits", "mnist", "fashion-mnist", "cifar10", "cifar100"})
SMALL_GPU_SHARE = 0.25
#: How often Ray reruns a task whose worker process died (each rerun resumes from state/).
RETRIES = 3
SHARED_CHECK = ".prunebench-shared-check"


def _ray() -> Any:
    try:
        import ray
    except ImportError:
        raise PrunebenchError(f"--executor ray needs the ray package: pip install ray=={RAY_VERSION}") from None
    return ray


def stage_gpus(task: StageTask, cluster_gpus: float, override: float | None) -> float:
    """The GPU share a stage's task asks for: `override` (--gpus-per-stage) if given; else none
    without GPUs, a quarter for small data sets, a whole GPU for the rest (ImageNet).  A stage
    whose recipe has `nproc = K` (torchrun inside the task) asks for K whole GPUs where there are any."""
    nproc = stage_nproc(task.stage)
    if override is not None:
        return override * nproc
    if cluster_gpus <= 0:
        return 0.0
    if nproc > 1:
        return float(nproc)
    return SMALL_GPU_SHARE if task.stage.config["data"]["name"] in SMALL_DATA else 1.0


def _read_token(path: str) -> str | None:
    """Run on a node: what it sees in the driver's token file (None: the file is not there)."""
    try:
        return Path(path).read_text()
    except OSError:
        return None


class RayExecutor:
    """Runs stages as Ray tasks on a local Ray instance (started here, small) or a cluster (`address`).

    An already initialised Ray (a test's, a notebook's) is used as it is and left running.
    """

    remote = True  # the workers do not name themselves in the store's claims: the driver holds them

    def __init__(
        self, exp_dir: str | Path, *, address: str | None = None, gpus_per_stage: float | None = None,
        cpus_per_stage: float = 1.0, local_cpus: int | None = None,
    ) -> None:  # fmt: skip
        if cpus_per_stage <= 0:
            raise PrunebenchError(f"--cpus-per-stage must be > 0, got {cpus_per_stage}")
        if gpus_per_stage is not None and gpus_per_stage < 0:
            raise PrunebenchError(f"--gpus-per-stage must be >= 0, got {gpus_per_stage}")
        ray = self._ray = _ray()
        self._started = False
        self._temp: str | None = None
        if not ray.is_initialized():
            common: dict[str, Any] = dict(log_to_driver=False, logging_level=logging.ERROR, configure_logging=False)
            try:
                if address is None:  # a small local instance: no dashboard, its files under /tmp (removed at close)
                    self._temp = tempfile.mkdtemp(prefix="prunebench-ray-", dir="/tmp")
                    ray.init(num_cpus=local_cpus, include_dashboard=False, _temp_dir=self._temp, **common)
                else:
                    ray.init(address=address, **common)
            except (ConnectionError, RuntimeError, ValueError) as e:
                raise PrunebenchError(f"Ray: cannot start or join {address or 'a local instance'}: {str(e).splitlines()[0]}") from None
            self._started = True
        resources = ray.cluster_resources()
        self.cluster_gpus = float(resources.get("GPU", 0.0))
        self.cpus_per_stage, self.gpus_per_stage = cpus_per_stage, gpus_per_stage
        #: stages claimed and handed to Ray at once: as many as the cluster's CPUs run together
        self.capacity = max(1, int(float(resources.get("CPU", 1.0)) // cpus_per_stage))
        self._remotes: dict[Callable[..., Any], Any] = {}
        self._refs: dict[futures.Future, Any] = {}
        if address is not None:
            check_shared_folder(Path(exp_dir))

    def _remote(self, fn: Callable[..., Any]) -> Any:
        if fn not in self._remotes:
            self._remotes[fn] = self._ray.remote(fn)
        return self._remotes[fn]

    def submit(self, fn: Callable[..., Any], *args: Any) -> futures.Future:
        gpus, cpus = 0.0, self.cpus_per_stage
        for i, a in enumerate(args):
            if isinstance(a, list) and a and isinstance(a[0], StageTask):  # a group (grouping.py): one task's share
                gpus = stage_gpus(a[0], self.cluster_gpus, self.gpus_per_stage)
                if gpus and a[0].device is None:
                    args = (*args[:i], [_with_device(t, "cuda") for t in a], *args[i + 1 :])
            if isinstance(a, StageTask):
                gpus = stage_gpus(a, self.cluster_gpus, self.gpus_per_stage)
                cpus = self.cpus_per_stage * stage_nproc(a.stage)  # its torchrun ranks run in the task
                if gpus and a.device is None:  # Ray sets CUDA_VISIBLE_DEVICES to the task's GPU
                    args = (*args[:i], _with_device(a, "cuda"), *args[i + 1 :])
        ref = self._remote(fn).options(
            num_cpus=cpus, num_gpus=gpus, max_retries=RETRIES, retry_exceptions=False
        ).remote(*args)
        fut: futures.Future = futures.Future()
        fut.set_running_or_notify_cancel()
        self._refs[fut] = ref
        return fut

    def wait(self, pending: Iterable[futures.Future], timeout: float | None = None) -> set[futures.Future]:
        pending = list(pending)
        finished = {f for f in pending if f.done()}
        by_ref = {self._refs[f]: f for f in pending if f in self._refs and not f.done()}
        if not by_ref:
            return finished
        ray = self._ray
        ready, _ = ray.wait(list(by_ref), num_returns=1, timeout=0 if finished else timeout)
        if ready:  # and whatever else has finished meanwhile
            ready, _ = ray.wait(list(by_ref), num_returns=len(by_ref), timeout=0)
        for ref in ready:
            fut = by_ref[ref]
            del self._refs[fut]
            try:
                fut.set_result(ray.get(ref))
            except ray.exceptions.RayTaskError as e:  # the stage's own error, as the worker raised it
                fut.set_exception(e.cause if isinstance(e.cause, BaseException) else PrunebenchError(str(e).splitlines()[0]))
            except ray.exceptions.RayError as e:  # the worker died more than RETRIES times, a node was lost, ...
                fut.set_exception(PrunebenchError(f"Ray: {type(e).__name__}: {str(e).strip().splitlines()[0]}"))
            finished.add(fut)
        return finished

    def close(self) -> None:
        for ref in self._refs.values():  # stages not finished: their claims go back (the runner releases them)
            try:
                self._ray.cancel(ref, force=True)
            except Exception:  # noqa: BLE001 - already finished or its worker gone
                pass
        self._refs.clear()
        if self._started:  # idempotent: the runner closes it, and so does the command on an early exit
            self._ray.shutdown()
            self._started = False
            if self._temp is not None:
                shutil.rmtree(self._temp, ignore_errors=True)


def _with_device(task: StageTask, device: str) -> StageTask:
    import dataclasses

    return dataclasses.replace(task, device=device)


def check_shared_folder(exp_dir: Path, timeout_s: float = 120.0) -> None:
    """Refuse to run unless every alive node of the Ray cluster sees `exp_dir` (the driver's --out):
    a token file written here must read back the same from a task pinned to each node."""
    ray = _ray()
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    exp_dir.mkdir(parents=True, exist_ok=True)
    token = uuid.uuid4().hex
    path = exp_dir / SHARED_CHECK
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(token)
    os.replace(tmp, path)
    try:
        nodes = [n for n in ray.nodes() if n.get("Alive")]
        reader = ray.remote(_read_token)
        refs = [
            reader.options(num_cpus=0, scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False)).remote(str(path.resolve()))
            for n in nodes
        ]  # fmt: skip
        try:
            seen = ray.get(refs, timeout=timeout_s)
        except ray.exceptions.GetTimeoutError:
            raise PrunebenchError(f"Ray: the nodes did not answer the shared-folder check within {timeout_s:g}s") from None
        blind = unseen_nodes([n.get("NodeManagerAddress", n["NodeID"]) for n in nodes], seen, token)
    finally:
        path.unlink(missing_ok=True)
    if blind:
        raise PrunebenchError(
            f"--out {exp_dir} is not on a file system every Ray node shares ({', '.join(blind)} cannot see it); "
            "put --out on NFS/Lustre mounted at the same path on every node (see the README's Scale section)"
        )


def unseen_nodes(names: list[str], seen: list[str | None], token: str) -> list[str]:
    """The nodes whose read of the token file did not give `token` back."""
    return [name for name, got in zip(names, seen, strict=True) if got != token]
