"""The Ray executor on a real local Ray instance (one per module: Ray takes seconds to start):
its store equals the in-process executor's row for row, and a worker killed mid-stage is retried
by Ray, resumes from the stage's checkpoint and gives the uninterrupted result."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from prunebench.experiment import load_preset, run_experiment
from prunebench.experiment.stages import STAGES_DIR
from prunebench.train.threads import ThreadPolicy
from tests.experiment.claimkit import attempts, write_preset

ray = pytest.importorskip("ray")

from prunebench.experiment.ray_executor import RayExecutor, check_shared_folder, unseen_nodes  # noqa: E402

ONE = ThreadPolicy(pinned=1)  # the same thread count everywhere: bit-identical results


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    temp = tempfile.mkdtemp(prefix="pbray-", dir="/tmp")  # short: Ray's socket paths must fit 107 bytes
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False, _temp_dir=temp)
    try:
        yield
    finally:
        ray.shutdown()
        shutil.rmtree(temp, ignore_errors=True)


def _results(exp_dir: Path) -> list[dict[str, Any]]:
    """Every results row, without what is timed (latency): the rest must be equal."""
    with sqlite3.connect(exp_dir / "prunebench.sqlite") as db:
        db.row_factory = sqlite3.Row
        rows = [dict(r) for r in db.execute("SELECT * FROM results ORDER BY stage_id, arm")]
    for r in rows:
        r.pop("latency_ms")
        arch = json.loads(r["arch"])
        arch.pop("latency")
        r["arch"] = arch
    return rows


def _metrics(exp_dir: Path) -> list[tuple[Any, ...]]:
    with sqlite3.connect(exp_dir / "prunebench.sqlite") as db:
        return db.execute("SELECT * FROM metrics WHERE name NOT IN ('seconds', 'threads') AND name NOT LIKE '%time%' "
                          "ORDER BY stage_id, epoch, name").fetchall()  # fmt: skip


def _run(preset: Path, out: Path, executor: Any = None) -> None:
    run_experiment(load_preset(str(preset)), out, progress=False, threads=ONE, executor=executor)


def test_ray_executor_records_what_the_in_process_executor_records(local_ray: None, tmp_path: Path) -> None:
    preset = write_preset(tmp_path, seeds=1)
    _run(preset, tmp_path / "inproc")
    lines: list[str] = []
    run_experiment(load_preset(str(preset)), tmp_path / "ray", threads=ONE, say=lines.append,
                   executor=RayExecutor(tmp_path / "ray"))  # fmt: skip
    assert [line.split(":")[0] for line in lines] == [f"stage {k}/4" for k in range(1, 5)]  # progress as locally
    assert _results(tmp_path / "ray") == _results(tmp_path / "inproc") and len(_results(tmp_path / "ray")) == 4
    assert _metrics(tmp_path / "ray") == _metrics(tmp_path / "inproc")
    runs = attempts(tmp_path / "ray")
    assert len(runs) == 4 and all(r == ["done"] for r in runs.values())
    # the driver held the claims: no Ray worker named itself in the store
    with sqlite3.connect(tmp_path / "ray" / "prunebench.sqlite") as db:
        assert db.execute("SELECT count(*) FROM attempts WHERE worker_pid IS NOT NULL").fetchone() == (0,)


def _ray_stage_workers() -> list[int]:
    pids = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmd = (proc / "cmdline").read_bytes().decode(errors="replace")
            except OSError:
                continue
            if cmd.startswith("ray::run_threaded"):
                pids.append(int(proc.name))
    return pids


def test_a_killed_ray_worker_is_retried_from_its_checkpoint(local_ray: None, tmp_path: Path) -> None:
    preset = write_preset(tmp_path, epochs=4, seeds=1)
    _run(preset, tmp_path / "clean")
    out = tmp_path / "killed"
    errors: list[BaseException] = []

    def drive() -> None:
        try:
            _run(preset, out, RayExecutor(out))
        except BaseException as e:  # noqa: BLE001 - the test thread reports it
            errors.append(e)

    driver = threading.Thread(target=drive)
    driver.start()
    killed = None
    deadline = time.monotonic() + 120
    while killed is None and driver.is_alive() and time.monotonic() < deadline:
        # the large model's stage, once it has written its first epoch's checkpoint
        states = list((out / STAGES_DIR).glob("train_large-*/state/*")) if (out / STAGES_DIR).exists() else []
        workers = _ray_stage_workers()
        if states and workers:
            killed = workers[0]
            os.kill(killed, signal.SIGKILL)
        time.sleep(0.05)
    driver.join(timeout=300)
    assert killed is not None, "no Ray worker was caught mid-stage"
    assert not errors, errors
    assert _results(out) == _results(tmp_path / "clean")
    assert _metrics(out) == _metrics(tmp_path / "clean")
    runs = attempts(out)  # Ray retried the task under the driver's claim: one attempt per stage, done
    assert len(runs) == 4 and all(r == ["done"] for r in runs.values()), runs


def test_the_shared_folder_check_passes_here_and_names_a_blind_node(local_ray: None, tmp_path: Path) -> None:
    check_shared_folder(tmp_path / "exp")  # one node: it sees the driver's folder
    assert not list((tmp_path / "exp").iterdir())  # the token file is gone again
    assert unseen_nodes(["10.0.0.1", "10.0.0.2"], ["tok", None], "tok") == ["10.0.0.2"]
    assert unseen_nodes(["a", "b"], ["tok", "old"], "tok") == ["b"]


def _task(data: str, nproc: int = 1) -> Any:
    from types import SimpleNamespace

    from prunebench.experiment.stages import StageTask

    recipe = {"epochs": 1, "lr": 0.1, **({"nproc": nproc} if nproc > 1 else {})}
    return StageTask("/x", SimpleNamespace(config={"data": {"name": data}, "recipe": recipe}), {})


def test_gpu_shares_small_models_share_a_gpu_imagenet_takes_one() -> None:
    from prunebench.experiment.ray_executor import stage_gpus

    assert stage_gpus(_task("cifar10"), 8, None) == 0.25
    assert stage_gpus(_task("fashion-mnist"), 1, None) == 0.25
    assert stage_gpus(_task("imagenet"), 8, None) == 1.0
    assert stage_gpus(_task("cifar10"), 0, None) == 0.0  # no GPU in the cluster: none asked for
    assert stage_gpus(_task("cifar10"), 8, 0.5) == 0.5  # --gpus-per-stage wins
    assert stage_gpus(_task("imagenet", nproc=8), 8, None) == 8.0  # torchrun inside the task: K GPUs
    assert stage_gpus(_task("imagenet", nproc=4), 8, 0.5) == 2.0
