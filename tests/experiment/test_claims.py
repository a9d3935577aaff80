"""One process per stage: claims in the store, dead claimants recognised, several runs on one
folder run each stage once, and pool workers die with their parent."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from claimkit import ENV, STAGES, accuracies, attempts, no_traceback, query, run_command, start, write_preset

from prunebench.experiment import Store
from prunebench.experiment.claims import HOST, Claimant, process_alive, process_start
from prunebench.experiment.graph import Stage
from prunebench.experiment.store import ClaimLost


def _store_with_stage(tmp_path: Path) -> tuple[Store, str]:
    store = Store.open(tmp_path)
    stage = Stage("ab" * 32, "finetune", 0, {"x": 1}, {}, {}, ("l1",))
    store.add_stages("exp", [stage], [])
    return store, stage.id


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_live_claim_excludes_others_and_a_dead_one_is_taken_over(tmp_path: Path) -> None:
    store, sid = _store_with_stage(tmp_path)
    me, other = Claimant.this_process(), Claimant.this_process()
    assert store.claim(sid, me)
    assert store.status()[sid] == "running"
    assert not store.claim(sid, other)  # this process is alive: the claim stands
    store.attach_worker(sid, me.token, os.getpid(), process_start(os.getpid()))
    # the claimant died (a real, reaped pid), and so did its worker: taken over, the old attempt "died"
    dead = Claimant(HOST, _dead_pid(), None, "dead-token")
    store._db.execute("UPDATE claims SET pid = ?, token = ?, worker_pid = ? WHERE stage_id = ?", (dead.pid, dead.token, dead.pid, sid))
    store._db.execute("UPDATE attempts SET token = ? WHERE stage_id = ?", (dead.token, sid))
    assert store.claim(sid, other)
    assert [a["outcome"] for a in store.attempts(sid)] == ["died", None]
    # the first claimant's late result is refused: the stage is someone else's now
    with pytest.raises(ClaimLost, match="taken over by another process"):
        store.mark_done(sid, token=me.token)
    assert store.status()[sid] == "running"
    store.mark_done(sid, token=other.token, outputs={"a": (1, "0" * 64)})
    assert store.status()[sid] == "done" and store.claims() == {}
    assert not store.claim(sid, me)  # done: nothing to claim
    store.close()


def test_a_reused_pid_a_zombie_and_an_expired_lease_are_dead(tmp_path: Path) -> None:
    assert process_alive(os.getpid(), process_start(os.getpid()))
    assert not process_alive(os.getpid(), "another-boot:123")  # same pid, another process start
    zombie = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    zombie.kill()
    time.sleep(0.5)  # exited, not yet reaped: a zombie is not alive
    assert not process_alive(zombie.pid, None)
    zombie.wait()
    store, sid = _store_with_stage(tmp_path)
    # a claimant on another host is judged by its lease alone: renewed recently it stands, late it has expired
    remote = Claimant("another-host", os.getpid(), None, "remote", lease_s=60)
    assert store.claim(sid, remote)
    assert not store.claim(sid, Claimant.this_process())
    store._db.execute("UPDATE claims SET renewed = renewed - 61")
    mine = Claimant.this_process()
    assert store.claim(sid, mine)
    store.renew(mine.token)
    assert store.claims()[sid]["token"] == mine.token
    store.close()


def test_reap_resets_stages_left_running_by_dead_processes(tmp_path: Path) -> None:
    store, sid = _store_with_stage(tmp_path)
    assert store.claim(sid, Claimant(HOST, _dead_pid(), None, "gone"))
    [dead] = store.reap()
    assert dead["stage_id"] == sid and store.status()[sid] == "pending" and store.claims() == {}
    store.mark_running(sid)  # "running" without any claim (a crash of an older version): reset too
    assert [d["stage_id"] for d in store.reap()] == [sid] and store.status()[sid] == "pending"
    store.close()


def _ran(stdout: str) -> int:
    m = re.search(r"(\d+) stage\(s\) run", stdout)
    assert m, stdout
    return int(m.group(1))


def test_four_runs_on_one_folder_run_each_stage_once(tmp_path: Path) -> None:
    preset = write_preset(tmp_path)
    shared, single = tmp_path / "shared", tmp_path / "single"
    procs = [start(preset, shared) for _ in range(4)]
    reference = subprocess.run(run_command(preset, single), env=ENV, capture_output=True, text=True, timeout=300)
    outs = [p.communicate(timeout=300) for p in procs]
    assert reference.returncode == 0, reference.stderr
    for p, (out, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err
        assert no_traceback(err), err
    # every stage claimed exactly once, and that one attempt finished it
    runs = attempts(shared)
    assert len(runs) == STAGES and all(outcomes == ["done"] for outcomes in runs.values()), runs
    assert sum(_ran(out) for out, _ in outs) == STAGES
    assert query(shared, "SELECT count(*) FROM claims") == [(0,)]
    assert accuracies(shared) == accuracies(single) and len(accuracies(single)) == 6
    # no temporary files of any process left in the shared folder
    assert not [p for p in shared.rglob("*") if re.search(r"\.(tmp|old)\d*$", p.name)]


def _workers_of(exp_dir: Path, parent: int) -> set[int]:
    return {pid for (pid,) in query(exp_dir, "SELECT worker_pid FROM claims") if pid and pid != parent}


def test_pool_workers_die_with_their_parent_and_the_rerun_takes_over(tmp_path: Path) -> None:
    preset = write_preset(tmp_path, epochs=4, seeds=1)
    killed, clean = tmp_path / "killed", tmp_path / "clean"
    reference = start(preset, clean, "--workers", "2")
    proc = start(preset, killed, "--workers", "2")
    deadline = time.monotonic() + 120
    workers: set[int] = set()
    while not workers and proc.poll() is None and time.monotonic() < deadline:
        workers = _workers_of(killed, proc.pid)
        time.sleep(0.1)
    assert workers, "no worker attached to a stage before the run ended"
    time.sleep(0.5)  # a little training, so there is something to kill
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    gone_by = time.monotonic() + 10
    while any(process_alive(pid, None) for pid in workers) and time.monotonic() < gone_by:
        time.sleep(0.1)
    assert not any(process_alive(pid, None) for pid in workers), "workers outlived their killed parent"
    assert reference.wait(timeout=300) == 0
    rerun = subprocess.run(run_command(preset, killed, "--workers", "2"), env=ENV, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert no_traceback(rerun.stderr)
    assert "was left running by a process that died" in rerun.stdout
    assert accuracies(killed) == accuracies(clean)
    outcomes = [o for runs in attempts(killed).values() for o in runs]
    assert outcomes.count("done") == STAGES // 2 and set(outcomes) <= {"done", "died"} and "died" in outcomes
    assert query(killed, "SELECT count(*) FROM claims") == [(0,)]
