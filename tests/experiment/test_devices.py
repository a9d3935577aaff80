"""Every GPU of one machine: the device of each worker slot (`assign_devices`), with a fake GPU
count (no GPU here), and the runner running each stage on its slot's device."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest

from prunebench.cli import main
from prunebench.errors import PrunebenchError
from prunebench.experiment import load_preset, run_experiment
from prunebench.experiment.executor import assign_devices
from prunebench.train.threads import ThreadPolicy
from tests.experiment.claimkit import accuracies, write_preset


def test_default_is_one_worker_per_gpu_and_none_without_gpus() -> None:
    assert assign_devices(None, None, 0) == [None]
    assert assign_devices(3, None, 0) == [None, None, None]
    assert assign_devices(None, None, 8) == [f"cuda:{i}" for i in range(8)]
    assert assign_devices(None, "all", 2) == ["cuda:0", "cuda:1"]


def test_workers_share_devices_round_robin() -> None:
    assert assign_devices(5, "all", 2) == ["cuda:0", "cuda:1", "cuda:0", "cuda:1", "cuda:0"]
    assert assign_devices(4, "cuda:3", 4) == ["cuda:3"] * 4
    assert assign_devices(3, None, 2) == ["cuda:0", "cuda:1", "cuda:0"]
    assert assign_devices(None, "cuda:1, cuda:0", 2) == ["cuda:1", "cuda:0"]
    assert assign_devices(2, "cpu", 0) == ["cpu", "cpu"]


@pytest.mark.parametrize(("workers", "devices", "gpus", "message"), [
    (None, "all", 0, "no CUDA device on this machine"),
    (None, "cuda:2", 2, "cuda:2 is not on this machine (cuda:0..cuda:1)"),
    (None, "cuda:0", 0, "cuda:0 is not on this machine (no CUDA device)"),
    (None, "gpu0", 1, "'gpu0' is not a device"),
    (None, "cuda:x", 1, "'cuda:x' is not a device"),
    (None, ",", 1, "give devices like"),
    (0, None, 1, "--workers must be >= 1"),
])  # fmt: skip
def test_bad_device_lists_are_one_line_errors(workers: int | None, devices: str, gpus: int, message: str) -> None:
    with pytest.raises(PrunebenchError, match=message.replace("(", r"\(").replace(")", r"\)").replace(".", r"\.")):
        assign_devices(workers, devices, gpus)


class _Deferred:
    """An executor that runs what was submitted only when waited on: stages are in flight together."""

    def __init__(self) -> None:
        self.devices: list[str | None] = []
        self.queued: list[tuple[Future, Callable[..., Any], tuple[Any, ...]]] = []

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future:
        self.devices.append(args[0].device)
        fut: Future = Future()
        self.queued.append((fut, fn, args))
        return fut

    def wait(self, pending: Iterable[Future], timeout: float | None = None) -> set[Future]:
        for fut, fn, args in self.queued:
            fut.set_result(fn(*args))
        self.queued.clear()
        return {f for f in pending if f.done()}

    def close(self) -> None:
        pass


def test_each_stage_runs_on_its_slots_device(tmp_path: Path) -> None:
    """Two slots, both the CPU under two names: concurrent stages get different slots, results are the usual."""
    preset = write_preset(tmp_path, seeds=1)
    executor = _Deferred()
    run_experiment(load_preset(str(preset)), tmp_path / "slots", progress=False, threads=ThreadPolicy(pinned=1),
                   devices=["cpu", "cpu:0"], executor=executor)  # fmt: skip
    # train_large, prune on slot 0; then finetune and scratch_e in flight together: slots 0 and 1
    assert executor.devices == ["cpu", "cpu", "cpu", "cpu:0"]
    run_experiment(load_preset(str(preset)), tmp_path / "plain", progress=False, threads=ThreadPolicy(pinned=1))
    assert accuracies(tmp_path / "slots") == accuracies(tmp_path / "plain")


@pytest.mark.parametrize(("args", "message"), [
    (["--executor", "ray", "--workers", "2"], "--workers/--devices are for the local executor"),
    (["--address", "auto"], "--address/--gpus-per-stage need --executor ray"),
    (["--devices", "all"], "--devices all: no CUDA device on this machine"),
    (["--device", "cpu", "--devices", "cpu"], "not both"),
])  # fmt: skip
def test_scale_options_refuse_bad_combinations(args: list[str], message: str, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    preset = write_preset(tmp_path, seeds=1)
    assert main(["run", str(preset), "--out", str(tmp_path / "exp"), *args]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
