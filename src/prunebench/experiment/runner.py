"""Run an experiment: plan it, register it in the store, and hand ready stages to an executor.

A stage is submitted only once all its upstream stages are done; finished
stages (status "done" in the store) are never run again, so rerunning a
finished experiment does nothing, and rerunning an interrupted one resumes it.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prunebench.errors import PrunebenchError
from prunebench.experiment.executor import make_executor
from prunebench.experiment.graph import Plan, Stage, expand
from prunebench.experiment.preset import Preset, load_preset
from prunebench.experiment.resolve import check_runnable, data_fingerprint
from prunebench.experiment.stages import STAGES_DIR, StageTask, load_splits, run_stage
from prunebench.experiment.store import Store


@dataclass(frozen=True)
class RunSummary:
    exp_dir: Path
    total: int
    ran: int
    already_done: int


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


def run_experiment(
    preset: Preset,
    out_dir: str | Path,
    *,
    seeds: int | None = None,
    workers: int = 1,
    progress: bool = True,
    device: str | None = None,
    say: Callable[[str], None] = print,
) -> RunSummary:
    """Run every stage of `preset` in `out_dir`; returns what ran and what was already done."""
    check_runnable(preset)
    if seeds is not None:
        preset = preset.with_seeds(seeds)
    exp_dir = Path(out_dir)
    splits = load_splits(data_fingerprint(preset))
    source_hash = None
    if preset.transfer is not None:  # the transfer source's stages carry its own data set's hash
        source = load_preset(preset.transfer.source)
        check_runnable(source)
        source_hash = load_splits(data_fingerprint(source)).split_hash
    plan = expand(preset, split_hash=splits.split_hash, source_split_hash=source_hash)
    store = Store.open(exp_dir)
    try:
        store.add_experiment(preset.name, preset.file, preset_record(preset))
        store.add_stages(preset.name, plan.stages, plan.links, replace=True)
        done = {sid for sid, status in store.status().items() if status == "done"}
    finally:
        store.close()
    total = len(plan.stages)
    todo = [s for s in plan.stages if s.id not in done]
    if not todo:
        if progress:
            say(f"all {total} stages already done in {exp_dir}")
        return RunSummary(exp_dir, total, 0, total)
    _schedule(plan, todo, exp_dir, done, workers=workers, progress=progress, device=device, say=say)
    return RunSummary(exp_dir, total, len(todo), total - len(todo))


def _schedule(
    plan: Plan, todo: list[Stage], exp_dir: Path, done: set[str], *,
    workers: int, progress: bool, device: str | None, say: Callable[[str], None],
) -> None:  # fmt: skip
    dirs = {s.id: str(exp_dir / STAGES_DIR / s.dirname) for s in plan.stages}
    threads = max(1, (os.cpu_count() or 1) // workers) if workers > 1 else None
    executor = make_executor(workers)
    waiting = list(todo)
    running: dict[Future, Stage] = {}
    failed: list[tuple[Stage, BaseException]] = []
    blocked: set[str] = set()
    # `done` may hold stages of an earlier version of the preset: count this plan's only
    start, finished, total, first = time.monotonic(), 0, len(plan.stages), len(plan.stages) - len(todo)
    cost_done, cost_left = 0.0, sum(map(_cost, todo))
    try:
        while waiting or running:
            for s in [s for s in waiting if all(u in done for u in s.upstream.values())]:
                if len(running) >= max(workers, 1):
                    break
                waiting.remove(s)
                if progress:
                    eta = ""
                    if cost_done:
                        eta = f" (ETA {_fmt_time((time.monotonic() - start) / cost_done * cost_left)})"
                    say(f"stage {first + finished + len(running) + 1}/{total}: {s.describe()}{eta}")
                ups = {r: dirs[u] for r, u in s.upstream.items()}
                task = StageTask(str(exp_dir), s, ups, device, threads, plan.preset.log_test_every_epoch)
                running[executor.submit(run_stage, task)] = s
            for s in list(waiting):  # in plan order, so blocking propagates down the graph in one pass
                if any(u in blocked for u in s.upstream.values()):
                    waiting.remove(s)  # an upstream stage failed: this one cannot run
                    blocked.add(s.id)
            if not running:
                break
            for fut in executor.wait(list(running)):
                s = running.pop(fut)
                finished += 1
                cost_done, cost_left = cost_done + _cost(s), cost_left - _cost(s)
                error = fut.exception()
                if error is None:
                    done.add(s.id)
                else:
                    failed.append((s, error))
                    blocked.add(s.id)
    finally:
        executor.close()
    if failed:
        s, e = failed[0]
        why = str(e).splitlines()[0] if isinstance(e, PrunebenchError) else f"{type(e).__name__}: {e}"
        raise PrunebenchError(
            f"{len(failed)} stage(s) failed, {len(blocked) - len(failed)} skipped; first: {s.dirname} ({why}); "
            f"rerun to retry, the traceback is in the store"
        )
