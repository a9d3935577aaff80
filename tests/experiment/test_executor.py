"""Executors: results and errors come back through futures, in process or from a spawned pool."""

from __future__ import annotations

import os

import pytest

from prunebench.experiment import InProcessExecutor, PoolExecutor


def _pid_plus(x: int) -> tuple[int, int]:
    return os.getpid(), x + 1


def _fail(x: int) -> None:
    raise ValueError(f"bad {x}")


def test_in_process_runs_now_and_keeps_errors_in_the_future() -> None:
    ex = InProcessExecutor()
    ok, bad = ex.submit(_pid_plus, 1), ex.submit(_fail, 2)
    assert ex.wait([ok, bad]) == {ok, bad}
    assert ok.result() == (os.getpid(), 2)
    with pytest.raises(ValueError, match="bad 2"):
        bad.result()


def test_pool_runs_in_other_processes() -> None:
    ex = PoolExecutor(workers=2)
    try:
        futures = [ex.submit(_pid_plus, i) for i in range(3)]
        done: set = set()
        while len(done) < 3:
            done |= ex.wait([f for f in futures if f not in done])
        results = [f.result() for f in futures]
        assert [r[1] for r in results] == [1, 2, 3]
        assert all(pid != os.getpid() for pid, _ in results)
        bad = ex.submit(_fail, 7)
        ex.wait([bad])
        assert isinstance(bad.exception(), ValueError)
    finally:
        ex.close()
