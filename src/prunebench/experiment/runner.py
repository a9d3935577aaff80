"""Run an experiment: plan it, register it in the store, and hand ready stages to an executor.

A stage is submitted only once all its upstream stages are done; finished
stages (status "done" in the store) are never run again, so rerunning a
finished experiment does nothing, and rerunning an interrupted one resumes it.

Several runs may share one experiment folder (two terminals, a job array): each
stage is claimed in the store before it runs (`claims.py`), so it runs once; a
run waits for the stages other processes hold, polling the store, and takes
whatever other work is ready.  A stage the store says is done is verified
against its recorded checksums first (`verify.py`); one whose files changed is
recomputed from scratch, and so is a downstream stage whose inputs changed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prunebench.errors import PrunebenchError
from prunebench.experiment.claims import Claimant, Heartbeat
from prunebench.experiment.executor import Executor, make_executor
from prunebench.experiment.graph import Plan, Stage
from prunebench.experiment.planning import finished_seed_links, plan_run, with_store_folders
from prunebench.experiment.preset import Preset
from prunebench.experiment.resolve import check_runnable
from prunebench.experiment.grouping import batches, group_size
from prunebench.experiment.stages import (
    STAGES_DIR, StageRecord, StageTask, compute_group, compute_stage, failure_text, record_stage, upstream_outputs,
)  # fmt: skip
from prunebench.train.speed import resolve_device
from prunebench.train.threads import ThreadPolicy, usable_cores, use_threads
from prunebench.experiment.store import ClaimLost, Store, StoreError
from prunebench.experiment.verify import changed_output, clear_stage_folder, hash_folder, model_digest

#: Seconds between looks at the store while every ready stage is running in another process.
POLL_S = 0.5


@dataclass(frozen=True)
class RunSummary:
    exp_dir: Path
    total: int
    ran: int
    already_done: int
    by_others: int = 0  # finished meanwhile by other processes sharing the folder
    # image-folder files that did not decode and were skipped, in this process (pool workers
    # name theirs on stderr): data/imagefolder.py
    skipped_images: tuple[str, ...] = ()


def preset_record(preset: Preset) -> dict[str, Any]:
    """The preset as JSON for the store (parsed method options are left out: they are derived)."""
    d = dataclasses.asdict(preset)
    for m in d["methods"]:
        m.pop("parsed", None)
    return d


def _fmt_time(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}h{seconds // 60 % 60:02d}m" if seconds >= 3600 else f"{seconds // 60}m{seconds % 60:02d}s"


def _cost(stage: Stage) -> float:
    """Rough relative cost of a stage for the ETA: its training epochs (Scratch-B: about twice
    the base; pruning: about one epoch's worth of work)."""
    recipe = stage.config.get("recipe")
    if recipe is None:
        return 1.0
    return recipe["epochs"] * (2.0 if stage.kind == "scratch_b" else 1.0)


def run_threaded(task: StageTask, threads: ThreadPolicy | None) -> StageRecord:
    """What an executor runs: one stage under the run's thread policy (train/threads.py); its
    record comes back to the scheduler, which writes it to the store."""
    with use_threads(threads):
        return compute_stage(task)


def run_group_threaded(tasks: list[StageTask], threads: ThreadPolicy | None) -> list[StageRecord | PrunebenchError]:
    """What an executor runs for a group (grouping.py): its stages computed as one job, each
    returning its record or its own error (`stages.compute_group`)."""
    with use_threads(threads):
        return compute_group(tasks)


def run_experiment(
    preset: Preset,
    out_dir: str | Path,
    *,
    seeds: int | None = None,
    workers: int = 1,
    progress: bool = True,
    device: str | None = None,
    say: Callable[[str], None] = print,
    data_dir: str | None = None,
    threads: ThreadPolicy | None = None,
    executor: Executor | None = None,
    devices: list[str | None] | None = None,
) -> RunSummary:
    """Run every stage of `preset` in `out_dir`; returns what ran and what was already done.
    `executor`: where stages run (default: in this process, or a pool of `workers`; closed at the
    end).  `devices`: the device of each worker slot (`executor.assign_devices`), else `device`.
    `data_dir` is searched first for the data files.  `threads`: every stage trains under this
    policy (`prunebench run` passes one: adaptive unless pinned); None = one pinned thread
    count per worker, cores // workers, and torch's own setting in-process."""
    check_runnable(preset)
    if device is not None:
        resolve_device(device)  # a bad or absent device fails here, before the data is loaded
    if seeds is not None:
        preset = preset.with_seeds(seeds)
    exp_dir = Path(out_dir)
    plan = plan_run(preset, data_dir)
    store = Store.open(exp_dir)
    try:
        store.add_experiment(preset.name, preset.file, preset_record(preset))
        plan = with_store_folders(plan, store)  # stages the store has keep their recorded folders
        # finished seeds an earlier, larger --seeds ran stay in the report (which says so)
        links = plan.links + finished_seed_links(plan, store, data_dir)
        store.add_stages(preset.name, plan.stages, links, replace=True)
        dead = store.reap()  # stages left "running" by processes that died: pending again
    finally:
        store.close()
    names = {st.id: st.dirname for st in plan.stages}
    for claim in dead:
        if progress and claim["stage_id"] in names:
            who = f" ({claim['host']} pid {claim['pid']})" if claim["pid"] else ""
            say(f"stage {names[claim['stage_id']]} was left running by a process that died{who}; it will be resumed")
    return _schedule(plan, exp_dir, workers=workers, progress=progress, device=device, say=say, data_dir=data_dir,
                     threads=threads, executor=executor, devices=devices)


def _schedule(
    plan: Plan, exp_dir: Path, *,
    workers: int, progress: bool, device: str | None, say: Callable[[str], None], data_dir: str | None = None,
    threads: ThreadPolicy | None = None, executor: Executor | None = None, devices: list[str | None] | None = None,
) -> RunSummary:  # fmt: skip
    store = Store.open(exp_dir)
    try:
        return _Scheduler(plan, exp_dir, store, workers=workers, progress=progress, device=device, say=say, data_dir=data_dir,
                          threads=threads, executor=executor, devices=devices).run()
    except OSError as e:  # the experiment folder itself cannot be written (full, read-only): one line
        raise PrunebenchError(f"{e.filename or exp_dir}: {e.strerror or e}") from None
    finally:
        store.close()


class _Scheduler:
    """The scheduling loop of one `run_experiment` call: claims stages, hands them to the
    executor, waits for stages other processes hold, and verifies what the store says is done."""

    def __init__(
        self, plan: Plan, exp_dir: Path, store: Store, *,
        workers: int, progress: bool, device: str | None, say: Callable[[str], None], data_dir: str | None,
        threads: ThreadPolicy | None = None, executor: Executor | None = None, devices: list[str | None] | None = None,
    ) -> None:  # fmt: skip
        self.executor = executor
        if devices:
            workers = len(devices)
        workers = getattr(executor, "capacity", workers)
        self.plan, self.exp_dir, self.store, self.workers = plan, exp_dir, store, max(workers, 1)
        # each worker slot's device: a stage runs on its slot's device (several slots may share one)
        self.slot_devices: list[str | None] = list(devices) if devices else [device] * self.workers
        self.remote = bool(getattr(executor, "remote", False))
        if threads is None and self.workers > 1:  # pool workers share the cores: a fixed share each
            threads = ThreadPolicy(pinned=max(1, usable_cores() // self.workers), workers=self.workers)
        self.threads = threads
        self.progress, self.device, self.say, self.data_dir = progress, device, say, data_dir
        self.group_size = group_size(plan, self.slot_devices[0])  # grouping.py: the preset's and the device's
        self.claimant = Claimant.this_process()
        self.started = time.time()
        self.stages_root = exp_dir / STAGES_DIR
        self.dirs = {s.id: str(self.stages_root / s.dirname) for s in plan.stages}
        self.names = {s.id: s.dirname for s in plan.stages}
        self.done: set[str] = set()
        self.verified: set[str] = set()  # hashed once per run
        self.redo: dict[str, float] = {}  # done stages found changed: id -> the finish time found wrong
        self.waited: set[str] = set()  # stages announced as running elsewhere
        self.failed: list[tuple[Stage, BaseException]] = []
        self.blocked: set[str] = set()
        self.ran = self.by_others = 0

    # -- verification: a finished stage is checked, not trusted ---------------------------
    def _usable(self, s: Stage, finished: float) -> bool:
        """Whether a stage the store says is done can be used as it is (its files hashed once per run)."""
        if s.id in self.verified:
            return True
        if self.redo.get(s.id) == finished:
            return False
        self.redo.pop(s.id, None)
        folder = self.stages_root / s.dirname
        recorded = self.store.outputs(s.id)
        problem = None
        if not recorded:  # finished before outputs were recorded: record what is there now
            recorded = hash_folder(folder)
            if recorded:
                self.store.record_outputs(s.id, recorded)
            else:
                problem = "output changed since it finished (its folder is empty or missing)"
        elif (changed := changed_output(folder, recorded)) is not None:
            problem = f"output changed since it finished ({changed})"
        if problem is None:
            inputs = self.store.inputs(s.id)
            for uid in s.upstream.values():
                if uid in inputs and inputs[uid] != model_digest(self.store.outputs(uid)):
                    problem = f"input changed since it finished (upstream {self.names.get(uid, uid[:12])} was recomputed)"
                    break
        if problem is not None:
            if self.progress:
                self.say(f"stage {s.dirname} {problem}; recomputing")
            self.redo[s.id] = finished
            return False
        self.verified.add(s.id)
        return True

    # -- taking work -----------------------------------------------------------------------
    def _take(self, s: Stage, capacity: bool) -> str:
        """What to do with a ready stage: "done", "failed" (elsewhere, this run), "run" (claimed) or "wait"."""
        row = self.store.stage(s.id)
        if row["status"] == "done":
            if self._usable(s, row["finished"]):
                return "done"
            if capacity and self.store.claim(s.id, self.claimant, redo_finished=row["finished"]):
                clear_stage_folder(self.stages_root, s.dirname)  # recomputed from scratch
                self.store.reset_stage(s.id, self.claimant.token)
                self.redo.pop(s.id, None)
                return "run"
            return "wait"
        if row["status"] == "failed" and (row["finished"] or 0) >= self.started:
            return "failed"  # another process ran it during this run and it failed: not retried here
        if capacity and self.store.claim(s.id, self.claimant):
            return "run"
        if s.id not in self.waited and self.progress:
            holder = self.store.claims().get(s.id)
            if holder is not None:
                self.waited.add(s.id)
                self.say(f"stage {s.dirname}: running in another process ({holder['host']} pid {holder['pid']}); waiting for it")
        return "wait"

    def _task(self, s: Stage, device: str | None) -> StageTask:
        ups = {r: self.dirs[u] for r, u in s.upstream.items()}
        return StageTask(
            str(self.exp_dir), s, ups, device, None, self.plan.preset.log_test_every_epoch,
            claim=self.claimant.token, data_dir=self.data_dir,
            upstream_outputs=upstream_outputs(self.store, s), attach=not self.remote,
        )  # fmt: skip

    def run(self) -> RunSummary:
        total = len(self.plan.stages)
        waiting: list[Stage] = []
        for s in self.plan.stages:  # plan order: upstream stages come first
            row = self.store.stage(s.id)
            ready = all(u in self.done for u in s.upstream.values())
            if ready and row["status"] == "done" and self._usable(s, row["finished"]):
                self.done.add(s.id)
            else:
                waiting.append(s)
        already = len(self.done)
        if not waiting:
            if self.progress:
                self.say(f"all {total} stages already done in {self.exp_dir}")
            return RunSummary(self.exp_dir, total, 0, total)
        heartbeat = Heartbeat(self.store.path, self.claimant)
        executor = self.executor or make_executor(self.workers)
        running: dict[Future, list[Stage]] = {}  # one stage, or a group trained as one job
        slots: dict[Future, int] = {}  # the worker slot each running job holds
        start = time.monotonic()
        cost_done, cost_left = 0.0, sum(map(_cost, waiting))
        try:
            while waiting or running:
                if heartbeat.error is not None:
                    raise heartbeat.error
                progressed = elsewhere = False
                for force in (False, True):  # a group waits for its partners only while other work goes on
                    takeable = [s for s in waiting if all(u in self.done for u in s.upstream.values())]
                    for job in batches(takeable, waiting, self.group_size, force=force):
                        claimed = []
                        for s in job:
                            action = self._take(s, capacity=len(running) < self.workers)
                            if action == "wait":
                                elsewhere = elsewhere or not running  # with nothing running here, it waits for another process
                                continue
                            waiting.remove(s)
                            progressed = True
                            if action == "done":  # finished by another process
                                self.done.add(s.id)
                                self.by_others += 1
                                cost_left -= _cost(s)
                            elif action == "failed":
                                self.failed.append((s, PrunebenchError(_first_line(self.store.stage(s.id)["error"]))))
                                self.blocked.add(s.id)
                            else:
                                claimed.append(s)
                        if not claimed:
                            continue
                        if self.progress:
                            eta = ""
                            if cost_done:
                                eta = f" (ETA {_fmt_time((time.monotonic() - start) / cost_done * cost_left)})"
                            together = f" (group of {len(claimed)})" if len(claimed) > 1 else ""
                            n = len(self.done) + sum(map(len, running.values()))
                            for k, s in enumerate(claimed, 1):
                                self.say(f"stage {n + k}/{total}: {s.describe()}{together}{eta}")
                        slot = min(set(range(self.workers)) - set(slots.values()))
                        tasks = [self._task(s, self.slot_devices[slot]) for s in claimed]
                        if len(tasks) == 1:
                            fut = executor.submit(run_threaded, tasks[0], self.threads)
                        else:
                            fut = executor.submit(run_group_threaded, tasks, self.threads)
                        running[fut], slots[fut] = claimed, slot
                    if progressed or running:
                        break
                for s in list(waiting):  # in plan order, so blocking propagates down the graph in one pass
                    if any(u in self.blocked for u in s.upstream.values()):
                        waiting.remove(s)  # an upstream stage failed: this one cannot run
                        self.blocked.add(s.id)
                if not running:
                    if not elsewhere and not progressed:
                        break  # nothing can become ready (as before: stages outside the plan never finish here)
                    if not progressed:
                        time.sleep(POLL_S)  # everything ready is running elsewhere: poll the store
                    continue
                for fut in executor.wait(list(running), timeout=POLL_S if waiting else None):
                    members = running.pop(fut)
                    slots.pop(fut)
                    error = fut.exception()  # a group's job fails as a whole only when its worker does
                    outcomes: list[Any] = [error] * len(members) if error else fut.result() if len(members) > 1 else [fut.result()]
                    for s, outcome in zip(members, outcomes, strict=True):
                        cost_done, cost_left = cost_done + _cost(s), cost_left - _cost(s)
                        if isinstance(outcome, StageRecord):
                            try:  # only this process writes the store: the worker's record goes in under the claim
                                record_stage(self.store, outcome, self.claimant.token)
                            except ClaimLost:
                                waiting.append(s)  # another process took it over: wait for its result
                                continue
                            self.done.add(s.id)
                            self.verified.add(s.id)  # just hashed by its worker
                            self.ran += 1
                        elif isinstance(outcome, StoreError):
                            raise outcome  # the store cannot be written: nothing else can be recorded either
                        elif isinstance(outcome, ClaimLost):
                            waiting.append(s)  # another process took it over: wait for its result
                        else:
                            with contextlib.suppress(StoreError):  # a full disk: the original error is the one to show
                                self.store.mark_failed(s.id, failure_text(outcome), token=self.claimant.token)
                            self.failed.append((s, outcome))
                            self.blocked.add(s.id)
        finally:
            heartbeat.stop()
            executor.close()
            with contextlib.suppress(StoreError):  # claims of stages that did not finish go back
                self.store.release(self.claimant.token)
        if self.failed:
            s, e = self.failed[0]
            why = str(e).splitlines()[0] if isinstance(e, PrunebenchError) else f"{type(e).__name__}: {e}"
            raise PrunebenchError(
                f"{len(self.failed)} stage(s) failed, {len(self.blocked) - len(self.failed)} skipped; first: {s.dirname} ({why}); "
                f"`prunebench report {self.exp_dir} --failures` shows each error with its traceback; rerun to retry"
            )
        from prunebench.data.imagefolder import skipped_files

        return RunSummary(self.exp_dir, total, self.ran, already, self.by_others, tuple(skipped_files().values()))


def _first_line(text: str | None) -> str:
    lines = [line for line in (text or "").strip().splitlines() if line.strip()]
    return lines[-1] if lines else "failed in another process"
