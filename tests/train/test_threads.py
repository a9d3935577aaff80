"""Thread policy: pins from the flag or the environment, the free-core rule, re-checks between
epochs, and that a pinned or policy-free run never changes its thread count."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from trainkit import digits, tiny_model

from prunebench.cli import main
from prunebench.errors import ConfigError
from prunebench.train import Recipe, train
from prunebench.train.threads import THREADS_ENV, ThreadPolicy, adapt_threads, thread_policy, use_threads


@pytest.fixture
def machine(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[float]]:
    """A 4-core machine whose 1-minute load average the test sets (last value repeats)."""
    loads = [0.0]
    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: {0, 1, 2, 3})
    monkeypatch.setattr(os, "getloadavg", lambda: (loads.pop(0) if len(loads) > 1 else loads[0], 0.0, 0.0))
    for var in (THREADS_ENV, "OMP_NUM_THREADS"):
        monkeypatch.delenv(var, raising=False)
    before = torch.get_num_threads()
    yield loads
    torch.set_num_threads(before)


def test_pins_come_from_the_flag_then_the_environment(machine, monkeypatch: pytest.MonkeyPatch) -> None:
    assert thread_policy() == ThreadPolicy(None, 1) and thread_policy().adaptive
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert thread_policy(workers=2) == ThreadPolicy(3, 2)
    monkeypatch.setenv(THREADS_ENV, "2")
    assert thread_policy().pinned == 2
    assert thread_policy(1).pinned == 1
    monkeypatch.setenv(THREADS_ENV, "two")
    with pytest.raises(ConfigError, match=THREADS_ENV):
        thread_policy()
    with pytest.raises(ConfigError, match="--threads"):
        thread_policy(0)


def test_only_the_cores_other_jobs_leave_free_are_taken(machine) -> None:
    policy = ThreadPolicy()
    machine[:] = [0.9]  # only this process (1 thread) was running
    assert policy.choose(running=1) == 4
    machine[:] = [2.0]  # one other job besides this process
    assert policy.choose(running=1) == 3
    machine[:] = [3.6]  # 1.6 cores busy elsewhere while our 2 threads ran: 2.4 free, not 3
    assert policy.choose(running=2) == 2
    machine[:] = [9.0]  # overloaded: still one thread
    assert policy.choose(running=1) == 1
    machine[:] = [0.0]
    assert ThreadPolicy(workers=2).choose() == 2  # each of two workers gets half the cores at most
    assert ThreadPolicy(pinned=3).choose(running=1) == 3


def test_use_threads_applies_the_policy_and_restores_the_count(machine) -> None:
    torch.set_num_threads(1)
    assert adapt_threads() is None  # no policy in force: nothing changes
    machine[:] = [1.0]
    with use_threads(ThreadPolicy()):
        assert torch.get_num_threads() == 4
        machine[:] = [6.0]
        assert adapt_threads() == 2 and torch.get_num_threads() == 2  # 6 - 4 own = 2 busy elsewhere
    assert torch.get_num_threads() == 1
    with use_threads(None):
        assert torch.get_num_threads() == 1


def test_the_trainer_rechecks_between_epochs_and_records_the_count(machine, tmp_path: Path) -> None:
    recipe = Recipe(epochs=3, lr=0.05, batch_size=100, precision="fp32")
    machine[:] = [0.5, 0.5, 7.0, 7.0]  # use_threads, epoch 0, epoch 1 (busy machine), epoch 2
    with use_threads(ThreadPolicy()):
        result = train(tiny_model(), digits(), recipe, tmp_path / "adaptive", seed=0, progress=False, eval_test=False)
    assert [h["threads"] for h in result.history] == [4, 1, 1]
    machine[:] = [0.5, 0.5, 7.0, 7.0]
    with use_threads(ThreadPolicy(pinned=2)):
        pinned = train(tiny_model(), digits(), recipe, tmp_path / "pinned", seed=0, progress=False, eval_test=False)
    assert [h["threads"] for h in pinned.history] == [2, 2, 2]
    plain = train(tiny_model(), digits(), recipe, tmp_path / "plain", seed=0, progress=False, eval_test=False)
    assert all("threads" not in h for h in plain.history)  # the library alone leaves torch's setting alone


def test_bad_threads_flag_is_a_one_line_error(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    argv = ["train", "--arch", "resnet20", "--dataset", "digits", "--epochs", "1", "--threads", "0",
            "--out", str(tmp_path / "run")]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--threads" in err
    assert not (tmp_path / "run").exists()
