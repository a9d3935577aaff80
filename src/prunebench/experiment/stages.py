"""What each stage kind does.  `run_stage` is the (picklable) function executors run.

A stage reads its upstream stages' folders, works in its own folder
`<exp_dir>/stages/<stage.dirname>/` (the trainer resumes from there, or returns
its stored result when finished), and returns its results, per-epoch metrics,
budget and output checksums (`compute_stage` -> `StageRecord`); whoever holds its
claim writes them to the store and marks it done (`record_stage`), so a worker on
another machine never touches the store.  A stage killed at any point is simply
run again: every step before `mark_done` is idempotent.

The runner claims a stage before handing it to a worker (`StageTask.claim`, the
claim's token): the worker names itself in the claim, checks the upstream folders
against their recorded checksums before reading them, and records its own
outputs' checksums when it marks the stage done, only while the claim is its own.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import inspect
import json
import os
import traceback
from collections.abc import Generator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from prunebench.experiment.baselines import RUNNERS as BASELINE_RUNNERS, rewind_callbacks
from prunebench.experiment.detection_stages import DETECTION_RUNNERS
from prunebench.errors import PrunebenchError
from prunebench.experiment.claims import process_start
from prunebench.experiment.ddp_stage import compute_under_torchrun, stage_nproc
from prunebench.experiment.identity import jsonable
from prunebench.experiment.resolve import recipe_of
from prunebench.experiment.store import BACKWARD_MULTIPLIER, ClaimLost, Outputs, Store, StoreError
from prunebench.experiment.verify import changed_output, hash_folder, model_digest, remove_transient
from prunebench.models import attached_spec
from prunebench.train import distributed

STAGES_DIR = "stages"
PRUNED_DIR = "pruned"  # the prune stage's output checkpoint
LATENCY_REPEATS = 10
LATENCY_BUDGET_S = 0.3  # per measurement: a noisy one is flagged rather than timed for long


@dataclass(frozen=True)
class StageTask:
    """Everything a worker process needs to run one stage (plain, picklable data)."""

    exp_dir: str
    stage: Any  # graph.Stage
    upstream_dirs: dict[str, str]  # role -> stage folder
    device: str | None = None
    threads: int | None = None
    test_every_epoch: bool = True  # the preset's log_test_every_epoch
    claim: str | None = None  # the token of the runner's claim on this stage (None: unclaimed use)
    data_dir: str | None = None  # searched first for the data files (`--data-dir`)
    #: upstream id -> its recorded output checksums, read by whoever holds the claim (None: read them here)
    upstream_outputs: dict[str, Outputs] | None = None
    attach: bool = True  # a local worker names itself in the claim (False: a remote one, e.g. Ray)


@dataclass
class _Ctx:
    task: StageTask
    store: StageRecord  # what the kind records (Store's add_metrics/add_result/set_budget), kept for the store
    splits: Any
    out: Path

    @property
    def stage(self) -> Any:
        return self.task.stage

    def up(self, role: str) -> Path:
        return Path(self.task.upstream_dirs[role])


_SPLITS: dict[str, Any] = {}  # per process: every stage of an experiment shares one data set


def load_splits(data: dict[str, Any], data_dir: str | os.PathLike[str] | None = None) -> Any:
    from prunebench.data import load

    key = json.dumps({k: v for k, v in data.items() if k not in ("split_hash", "mean", "std")}, sort_keys=True)
    if key not in _SPLITS:  # where the files were found does not matter: their checksums are fixed
        splits = load(
            data["name"], val_size=data["val_size"], train_subset=data["train_subset"],
            split_seed=data["split_seed"], norm=data["normalisation"], data_dir=data_dir,
            classes=data.get("classes"), input_size=data.get("input_size"),
            crop_pad=data.get("crop_pad"), flip=data.get("flip"),
        )  # fmt: skip
        if data["test_subset"]:
            keep = balanced_head(splits.test_y, data["test_subset"])
            splits = dataclasses.replace(splits, test_x=splits.test_x[keep], test_y=splits.test_y[keep])
        _SPLITS[key] = splits
    return _SPLITS[key]


def balanced_head(labels: torch.Tensor, n: int) -> torch.Tensor:
    """Indices of the first n // classes images of each class (n rounded down to a multiple)."""
    classes = torch.unique(labels)
    per = max(1, n // len(classes))
    picks = [torch.nonzero(labels == c).flatten()[:per] for c in classes]
    return torch.sort(torch.cat(picks)).values


@dataclass
class StageRecord:
    """What computing a stage produced, for the store: `compute_stage` returns it (in any process,
    on any machine) and `record_stage` writes it, in the process that holds the stage's claim."""

    stage_id: str
    style: str | None = None
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)
    metrics: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    results: list[tuple[str, int, dict[str, Any]]] = dataclasses.field(default_factory=list)
    budget: dict[str, Any] | None = None
    outputs: Outputs = dataclasses.field(default_factory=dict)
    inputs: dict[str, str] = dataclasses.field(default_factory=dict)

    # the three Store methods a stage kind writes through (`_Ctx.store`): kept here until recorded
    def add_metrics(self, stage_id: str, rows: list[dict[str, Any]]) -> None:
        self.metrics.extend(rows)

    def add_result(self, stage_id: str, arm: str, seed: int, **fields: Any) -> None:
        self.results.append((arm, seed, fields))

    def set_budget(self, stage_id: str, **fields: Any) -> None:
        self.budget = fields


def run_stage(task: StageTask) -> str:
    """Run one stage to completion and record it, in this process; returns the stage id.

    The same two steps every executor takes (`compute_stage` where the stage runs, then
    `record_stage` where its claim is held).  A failure is recorded (with its traceback) and re-raised.
    """
    store = Store.open(task.exp_dir)
    try:
        if task.claim is None:
            store.mark_running(task.stage.id)
        if task.upstream_outputs is None:
            task = dataclasses.replace(task, upstream_outputs=upstream_outputs(store, task.stage))
        try:
            record = compute_stage(task)
        except (ClaimLost, StoreError):
            raise
        except BaseException as e:
            with contextlib.suppress(StoreError):  # a full disk: the original error is the one to show
                store.mark_failed(task.stage.id, failure_text(e), token=task.claim)
            raise
        record_stage(store, record, task.claim)
        return task.stage.id
    finally:
        store.close()


def upstream_outputs(store: Store, stage: Any) -> dict[str, Outputs]:
    """The recorded checksums of a stage's upstream folders (upstream id -> outputs), for its task."""
    return {uid: store.outputs(uid) for uid in stage.upstream.values()}


def compute_stage(task: StageTask) -> StageRecord:
    """Compute one stage in its folder and return what it produced; the store is not written
    (but for `attach`: a local worker names itself in the claim, so the claim lives while it does).

    An error keeps its formatted traceback in `stage_traceback` (it survives pickling to the driver).
    """
    if task.threads:
        torch.set_num_threads(task.threads)
    if stage_nproc(task.stage) > 1 and distributed.active() is None:  # `nproc = K`: K processes under torchrun
        return compute_under_torchrun(task, stage_nproc(task.stage))
    try:
        ctx = _open(task)
        done = _advance(ctx, _KINDS[task.stage.kind](ctx))
        while isinstance(done, TrainJob):  # a training kind: train its job alone
            done = _advance(ctx, done.generator, _train_alone(ctx, done))
        return _close(ctx, done)
    except (ClaimLost, StoreError):
        raise  # not this process's stage any more, or nowhere to record anything
    except BaseException as e:
        raise _tagged(e)


def compute_group(tasks: Sequence[StageTask]) -> list[StageRecord | PrunebenchError]:
    """Compute several training stages (`grouping.group_key` equal, one device) with their training
    steps as one `train_group` call; everything else is done per stage as `compute_stage` does it.

    The stages are prepared one after the other (seeding and model building as alone), then the jobs
    that can train together (`_job_key`, `groupable`) train as one group; a stage that fails (its
    preparation, its training, its recording) is returned as a `GroupMemberError`, the rest go on.
    """
    from prunebench.train.batched import Member, groupable, train_group

    if tasks and tasks[0].threads:
        torch.set_num_threads(tasks[0].threads)
    outcomes: list[StageRecord | PrunebenchError | None] = [None] * len(tasks)
    jobs: dict[int, tuple[_Ctx, TrainJob]] = {}

    def step(i: int, ctx: _Ctx, job: TrainJob | None = None, result: Any = None) -> None:
        """Run member i on to its next job or its end: from its start (no job), training its job
        alone (no result), or with its job's result; a failure is its own."""
        try:
            if job is None:
                done = _advance(ctx, _KINDS[ctx.stage.kind](ctx))
            else:
                done = _advance(ctx, job.generator, _train_alone(ctx, job) if result is None else result)
            if isinstance(done, TrainJob):
                jobs[i] = (ctx, done)
            else:
                outcomes[i] = _close(ctx, done)
        except StoreError:  # nowhere to record anything (a lost claim is the member's own)
            raise
        except Exception as e:
            outcomes[i] = GroupMemberError.of(_tagged(e))

    for i, task in enumerate(tasks):  # one after another: each member's seeding is as alone
        try:
            ctx = _open(task)
        except StoreError:  # nowhere to record anything (a lost claim is the member's own)
            raise
        except Exception as e:
            outcomes[i] = GroupMemberError.of(_tagged(e))
            continue
        step(i, ctx)
    while jobs:
        batches: dict[str, list[int]] = {}
        for i, (_, job) in jobs.items():
            batches.setdefault(_job_key(job), []).append(i)
        pending, jobs = jobs, {}
        for members in batches.values():
            if len(members) < 2 or groupable([pending[i][1].model for i in members]) is not None:
                for i in members:  # these train alone, one after another
                    step(i, *pending[i])
                continue
            ctx0, job0 = pending[members[0]]
            try:
                results = train_group(
                    [Member(job.model, ctx.out, job.seed, job.callbacks, job.masks) for ctx, job in (pending[i] for i in members)],
                    ctx0.splits, job0.recipe, device=ctx0.task.device, progress=None,
                    test_every_epoch=ctx0.task.test_every_epoch,
                )  # fmt: skip
            except StoreError:  # nowhere to record anything (a lost claim is the member's own)
                raise
            except Exception as e:  # the group's training failed: each of its members failed with it
                for i in members:
                    outcomes[i] = GroupMemberError.of(_tagged(e))
                continue
            for i, result in zip(members, results, strict=True):
                step(i, *pending[i], result)
    return [o if o is not None else GroupMemberError("the group finished without this stage") for o in outcomes]


class GroupMemberError(PrunebenchError):
    """A group member's failure as it crosses to the driver: its summary line and its traceback
    (plain strings, so it pickles whatever the original error was)."""

    def __init__(self, summary: str, stage_traceback: str = "") -> None:
        super().__init__(summary, stage_traceback)
        self.stage_traceback = stage_traceback

    def __str__(self) -> str:
        return str(self.args[0])

    @staticmethod
    def of(e: BaseException) -> PrunebenchError:
        if isinstance(e, ClaimLost):
            return e  # the driver waits for whoever took the stage over
        summary = str(e).splitlines()[0] if isinstance(e, PrunebenchError) and str(e) else f"{type(e).__name__}: {e}"
        return GroupMemberError(summary, failure_text(e))


@dataclass
class TrainJob:
    """What a training kind asks to have trained (`result = yield TrainJob(...)`): the `train()` call
    it would make alone.  The driver (`compute_stage` alone, `compute_group` with others) sends the
    `TrainResult` back."""

    model: nn.Module
    recipe: Any
    seed: int
    masks: Any = None
    callbacks: Sequence[Any] = ()
    generator: Any = None  # the kind waiting for the result (set by `_advance`)


#: what a training kind is: a generator that yields its TrainJob and returns (style, extra)
Training = Generator[TrainJob, Any, tuple[str, dict[str, Any]]]


def kind_trains(kind: str) -> bool:
    """Whether a stage kind trains through a TrainJob (and so may train in a group)."""
    return inspect.isgeneratorfunction(_KINDS.get(kind))


def _open(task: StageTask) -> _Ctx:
    """A stage's context in its folder: claim attached, transient files removed, upstream verified, data loaded."""
    stage = task.stage
    if task.claim is not None and task.attach:
        store = Store.open(task.exp_dir)
        try:
            store.attach_worker(stage.id, task.claim, os.getpid(), process_start(os.getpid()))
        finally:
            store.close()
    out = Path(task.exp_dir) / STAGES_DIR / stage.dirname
    rank = distributed.active()
    if rank is None or rank.main:  # under the claim, every temporary file here is a dead process's
        remove_transient(out)  # (under torchrun rank 0's alone: the other ranks never write here)
    inputs = _verified_upstream(task)
    splits = load_splits(stage.config["data"], task.data_dir)
    out.mkdir(parents=True, exist_ok=True)
    return _Ctx(task, StageRecord(stage.id, inputs=inputs), splits, out)


def _advance(ctx: _Ctx, kind_out: Any, result: Any = None) -> Any:
    """Run a kind on to its next TrainJob (returned, holding the generator) or to its end: (style, extra).
    A kind that trains nothing returns (style, extra) at once."""
    if not isinstance(kind_out, Generator):
        return kind_out
    try:
        job = kind_out.send(result)  # None starts it
    except StopIteration as stop:
        return stop.value
    job.generator = kind_out
    return job


def _close(ctx: _Ctx, done: tuple[str, dict[str, Any]]) -> StageRecord:
    record = ctx.store
    record.style, record.extra = done
    record.outputs = hash_folder(ctx.out)
    return record


def _tagged(e: BaseException) -> BaseException:
    e.stage_traceback = "".join(traceback.format_exception(e))[-4000:]  # type: ignore[attr-defined]
    return e


def _job_key(job: TrainJob) -> str:
    """Jobs that may train as one group: the same recipe, architecture, mask layout and callbacks."""
    masks = sorted((k, list(v.shape)) for k, v in (job.masks or {}).items())
    return json.dumps(
        [dataclasses.asdict(job.recipe), attached_spec(job.model).to_dict(), masks, [type(c).__name__ for c in job.callbacks]],
        sort_keys=True, default=str,
    )  # fmt: skip


def failure_text(e: BaseException) -> str:
    """The traceback recorded for a failed stage: the worker's own when it came from one."""
    return getattr(e, "stage_traceback", None) or "".join(traceback.format_exception(e))[-4000:]


def record_stage(store: Store, record: StageRecord, token: str | None) -> None:
    """Write a computed stage to the store and mark it done (only while `token`'s claim holds)."""
    sid = record.stage_id
    if record.metrics:
        store.add_metrics(sid, record.metrics)
    for arm, seed, fields in record.results:
        store.add_result(sid, arm, seed, **fields)
    if record.budget is not None:
        store.set_budget(sid, **record.budget)
    store.mark_done(sid, style=record.style, extra=record.extra, token=token, outputs=record.outputs, inputs=record.inputs)


def _verified_upstream(task: StageTask) -> dict[str, str]:
    """Check each upstream folder against its recorded checksums before it is read; returns
    upstream id -> digest of what is read (recorded with this stage: its inputs)."""
    inputs = {}
    recorded_all = task.upstream_outputs or {}
    for role, folder in task.upstream_dirs.items():
        uid = task.stage.upstream[role]
        recorded = recorded_all.get(uid)
        if not recorded:  # finished before checksums were recorded: nothing to compare with
            continue
        problem = changed_output(Path(folder), recorded)
        if problem:
            raise PrunebenchError(
                f"upstream stage {Path(folder).name} output changed since it finished ({problem}); rerun to recompute it"
            )
        inputs[uid] = model_digest(recorded)
    return inputs


# -- helpers --------------------------------------------------------------------------------


def _method(stage: Any) -> tuple[Any, Any]:
    from prunebench.prune import get_method

    m = get_method(stage.payload["method"])
    return m, m.parse_options(stage.payload["options"])


def _measure(model: nn.Module, masks: dict[str, torch.Tensor] | None) -> dict[str, Any]:
    """Params, reference FLOPs (sparse for masked models) and CPU latency of one architecture."""
    from prunebench.measure import count_flops, count_params, measure_latency

    params = count_params(model, masks=masks)
    flops = count_flops(model, masks=masks)
    latency = measure_latency(model, repeats=LATENCY_REPEATS, warmup=2, max_run_time=LATENCY_BUDGET_S)
    spec = attached_spec(model)
    densities = None
    if masks:
        densities = {k: float(v.float().mean()) for k, v in masks.items()}
    return {
        "params_total": params.total,
        "params_nonzero": params.nonzero,
        "flops": flops.flops,
        # "<mode> counter v<version> at <input shape>": the report shows the mode in each cell
        "flops_mode": f"{flops.mode}{'-sparse' if flops.sparse else ''} counter v{flops.counter_version} at {'x'.join(map(str, flops.input_shape))}",
        "latency_ms": latency.median_ms,
        "arch": {"spec": spec.to_dict(), "widths": jsonable(spec.widths()), "densities": densities,
                 # masked models run dense here: their latency is the dense network's (no sparse speed-up)
                 "latency": {**latency.to_dict(), "dense": bool(masks)}},
    }


def _record_training(
    ctx: _Ctx, arm: str, model: nn.Module, masks: Any, result: Any, recipe: Any, ratio: float | None, **budget: Any
) -> None:
    """Results, per-epoch metrics and the budget of a training stage; `ratio` = FLOPs(large) / FLOPs(model)."""
    has_val = ctx.stage.config["data"]["val_size"] > 0
    measured = _measure(model, masks)
    primary = result.test_acc_best_val if has_val else result.test_acc
    ctx.store.add_metrics(ctx.stage.id, [{"epoch": i, **h} for i, h in enumerate(result.history)])
    ctx.store.add_result(
        ctx.stage.id, arm, ctx.stage.seed,
        primary_acc=primary, final_test_acc=result.test_acc, best_val_acc=result.best_val_acc,
        test_acc_best_val=result.test_acc_best_val, best_test_acc_compat=result.best_test_acc_compat,
        flops_ratio=ratio, **measured,
    )  # fmt: skip
    ctx.store.set_budget(
        ctx.stage.id,
        epochs=result.epochs, milestones=list(recipe.milestones), lr=recipe.lr,
        optimizer_steps=result.steps, images_seen=result.images_seen,
        forward_flops=measured["flops"], training_flops=measured["flops"] * result.images_seen * BACKWARD_MULTIPLIER,
        flops_multiplier=BACKWARD_MULTIPLIER, wall_s=result.wall_time_s, **budget,
    )  # fmt: skip


def _train_alone(ctx: _Ctx, job: TrainJob) -> Any:
    from prunebench.train import train

    return train(
        job.model, ctx.splits, job.recipe, ctx.out, seed=job.seed, callbacks=list(job.callbacks), masks=job.masks,
        device=ctx.task.device, progress=None, test_every_epoch=ctx.task.test_every_epoch,
    )  # fmt: skip


def _load_pruned(ctx: _Ctx) -> tuple[nn.Module, Any, dict[str, Any]]:
    from prunebench.train import load_model

    model, masks, meta = load_model(ctx.up("pruned") / PRUNED_DIR)
    return model, masks, meta or {}


def _large_model(large_dir: Path) -> nn.Module:
    """A fresh model of the large stage's architecture (for FLOPs ratios and sizes)."""
    from prunebench.models import spec_from_json

    return spec_from_json((large_dir / "final" / "spec.json").read_text()).build()


def _style(masks: Any) -> str:
    return "mask" if masks else "physical"


# -- the kinds ----------------------------------------------------------------------------


def _train_large(ctx: _Ctx) -> Training:
    from prunebench.models import spec_from_dict
    from prunebench.train import SaveInitCallback, seed_everything

    method, opts = _method(ctx.stage)
    spec = spec_from_dict(ctx.stage.config["model"])
    seed_everything(ctx.stage.seed)  # before building anything: the init is part of the seed
    model = spec.build()
    plain = ctx.stage.config["large_training"]["kind"] == "plain"
    callbacks = [SaveInitCallback(), *rewind_callbacks(ctx.stage.config), *([] if plain else method.large_training(opts, spec))]
    recipe = recipe_of(ctx.stage.config["recipe"])
    result = yield TrainJob(model, recipe, ctx.stage.seed, callbacks=callbacks)
    _record_training(ctx, "unpruned", model, None, result, recipe, 1.0)
    return "physical", {"large_training": ctx.stage.config["large_training"]["kind"]}


def _soft_train(ctx: _Ctx) -> Training:
    """Soft-pruning training (SFP) continuing from the pretrained large model's final weights."""
    from prunebench.train import load_model, seed_everything

    method, opts = _method(ctx.stage)
    model, _, _ = load_model(ctx.up("pretrained") / "final")
    seed_everything(ctx.stage.seed)
    recipe = recipe_of(ctx.stage.config["recipe"])
    callbacks = method.large_training(opts, attached_spec(model))
    result = yield TrainJob(model, recipe, ctx.stage.seed, callbacks=callbacks)
    _record_training(ctx, "unpruned", model, None, result, recipe, 1.0)
    return "physical", {"large_training": ctx.stage.config["large_training"]["kind"], "pretrained": True}


def _prune(ctx: _Ctx) -> tuple[str, dict[str, Any]]:
    from prunebench.measure import flops_ratio
    from prunebench.prune.recalibrate import recalibrate_bn
    from prunebench.train import evaluate, load_model, save_model, seed_everything

    stage = ctx.stage
    out = ctx.out / PRUNED_DIR
    if not (out / "spec.json").exists():  # a killed run may have saved it already
        large, _, _ = load_model(ctx.up("large") / "final")
        method, opts = _method(stage)
        # training inside prune() runs at the experiment's precision, in this stage's folder (resumable)
        method.inner_precision = stage.payload.get("precision", method.inner_precision)
        method.work_dir = ctx.out / "inner"
        seed_everything(stage.seed)
        res = method.prune(large, ctx.splits, opts, seed=stage.seed)
        meta = {
            "kept": res.kept, "info": jsonable(res.info), "style": res.info.get("style") or _style(res.masks),
            # reference-mode FLOPs ratio (sparse for masks), measured once; every downstream arm reuses it
            "flops_ratio": flops_ratio(_large_model(ctx.up("large")), res.model, res.masks),
        }  # fmt: skip
        save_model(out, res.model, masks=res.masks, meta=meta)
    model, masks, loaded = load_model(out)
    meta = loaded or {}
    info, s = ctx.splits.info, ctx.splits
    measured = _measure(model, masks)
    rows = {"pruned_no_ft": model}
    if stage.payload["bn_recal"]:
        rows["pruned_no_ft_bnrecal"] = recalibrate_bn(copy.deepcopy(model), s, seed=stage.seed)
    if stage.payload["is_final"]:  # SFP/SSS: the method's own output is the "fine-tuned" arm
        rows["finetuned"] = model
    for arm, m in rows.items():
        acc = evaluate(m, s.test_x, s.test_y, info=info, device=ctx.task.device)
        ctx.store.add_result(
            stage.id, arm, stage.seed, primary_acc=acc, final_test_acc=acc, info=meta.get("info"),
            flops_ratio=meta.get("flops_ratio"), **measured,
        )  # fmt: skip
    return meta.get("style") or _style(masks), {"prune_info": meta.get("info")}


def _finetune(ctx: _Ctx) -> Training:
    from prunebench.prune import PruneResult
    from prunebench.train import seed_everything

    method, opts = _method(ctx.stage)
    model, masks, meta = _load_pruned(ctx)
    seed_everything(ctx.stage.seed)
    callbacks = method.finetune_callbacks(opts, PruneResult(model, masks, meta.get("kept"), meta.get("info") or {}))
    recipe = recipe_of(ctx.stage.config["recipe"])
    result = yield TrainJob(model, recipe, ctx.stage.seed, masks=masks, callbacks=callbacks)
    _record_training(ctx, "finetuned", model, masks, result, recipe, meta.get("flops_ratio"))
    return _style(masks), {}


def _scratch(ctx: _Ctx, arm: str, recipe: Any, **budget: Any) -> Training:
    from prunebench.prune.scratch import scratch_model

    pruned, masks, meta = _load_pruned(ctx)
    seed = ctx.stage.config["init_seed"]
    model, masks = scratch_model(pruned, seed=seed, masks=masks, reinit=ctx.stage.config["reinit"], selection_from=pruned)
    result = yield TrainJob(model, recipe, seed, masks=masks)
    _record_training(ctx, arm, model, masks, result, recipe, meta.get("flops_ratio"), **budget)
    return _style(masks), {"paired_prune": ctx.stage.upstream["pruned"], **budget}


def _scratch_e(ctx: _Ctx) -> Training:
    return (yield from _scratch(ctx, "scratch_e", recipe_of(ctx.stage.config["recipe"])))


def scratch_b_recipe(
    large_dir: Path, pruned: nn.Module, masks: Any, config: dict[str, Any], prune_info: dict[str, Any] | None = None
) -> tuple[Any, Any]:
    """The Scratch-B recipe: the large recipe stretched by the reference-mode FLOPs ratio, counted on the
    model the policy's `flops_rule` names (`prune_info` of the pruning run: SFP's zeroed counts)."""
    from prunebench.measure import BudgetPolicy, budget_flops_ratio, scratch_b_budget

    base = recipe_of(config["recipe"])
    policy = BudgetPolicy(**config["budget"])
    zeroed = (prune_info or {}).get("zeroed_counts")
    ratio = budget_flops_ratio(_large_model(large_dir), pruned, masks, policy.flops_rule, zeroed)
    budget = scratch_b_budget(base.epochs, base.milestones, ratio, policy)
    return base.replace(epochs=budget.epochs, milestones=budget.milestones), budget


def _scratch_b(ctx: _Ctx) -> Training:
    pruned, masks, meta = _load_pruned(ctx)
    recipe, budget = scratch_b_recipe(ctx.up("large"), pruned, masks, ctx.stage.config, meta.get("info"))
    policy = {**dataclasses.asdict(budget.policy), "capped": budget.capped}
    return (yield from _scratch(ctx, "scratch_b", recipe, flops_ratio=budget.ratio, policy=policy))


def _uniform(ctx: _Ctx) -> Training:
    from prunebench.measure import count_params, flops_ratio
    from prunebench.prune.scratch import scratch_model
    from prunebench.prune.uniform import uniform_spec

    pruned, masks, _ = _load_pruned(ctx)
    large = _large_model(ctx.up("large"))
    target = count_params(pruned, masks=masks).nonzero
    spec, factor = uniform_spec(attached_spec(large), target_params=target)
    seed = ctx.stage.config["init_seed"]
    model, _ = scratch_model(spec, seed=seed)
    recipe = recipe_of(ctx.stage.config["recipe"])
    result = yield TrainJob(model, recipe, seed)
    _record_training(ctx, "uniform_scratch", model, None, result, recipe, flops_ratio(large, model))
    return "physical", {"paired_prune": ctx.stage.upstream["pruned"], "width_factor": factor, "target_params": target}


def conv_density(masks: dict[str, torch.Tensor] | None) -> float:
    """Kept fraction of all conv weights (4-d masks) taken together; 1.0 without masks."""
    convs = [m for m in (masks or {}).values() if m.dim() == 4]
    total = sum(m.numel() for m in convs)
    return float(sum(int(m.sum()) for m in convs) / total) if total else 1.0


def _search_arm(ctx: _Ctx) -> Training:
    """The architecture-search arms (docs/methods.md §10 Pruning as architecture search), freshly initialised and trained with the
    Scratch-E recipe.  uniform_sparse: random masks at the pruned model's conv density.  guided(_sparse):
    the pruned model's per-stage widths (sized to its parameters) or per-stage densities and 3x3 maps.
    transferred_guided: the same, with the pattern of the transfer source's pruned model."""
    from prunebench.measure import count_params, flops_ratio
    from prunebench.prune.analysis import conv_stages
    from prunebench.prune.guided import guided_spec, stage_width_fractions, transfer_fractions
    from prunebench.prune.guided_sparse import guided_sparse_masks, stage_sparsity, uniform_sparse_masks
    from prunebench.prune.scratch import scratch_model
    from prunebench.train import load_model

    kind, cfg = ctx.stage.kind, ctx.stage.config
    pruned, pruned_masks, meta = _load_pruned(ctx)
    large = _large_model(ctx.up("large"))
    large_spec = attached_spec(large)
    seed = cfg["init_seed"]
    extra: dict[str, Any] = {"paired_prune": ctx.stage.upstream["pruned"]}
    if kind == "transferred_guided_scratch":
        pattern, pattern_masks, pattern_meta = load_model(ctx.up("source_pruned") / PRUNED_DIR)
        pattern_meta = pattern_meta or {}
        pattern_large = attached_spec(_large_model(ctx.up("source_large")))
        sparse = bool(pattern_masks) and pattern_meta.get("style") == "mask"
        extra["source_prune"] = ctx.stage.upstream["source_pruned"]
    else:
        pattern, pattern_meta, pattern_large = pruned, meta, large_spec
        sparse = kind != "guided_scratch"
    masks: Any = None
    if kind == "uniform_sparse_scratch":
        extra["density"] = conv_density(pruned_masks)
        masks = uniform_sparse_masks(large, extra["density"], seed=seed)
    elif sparse:  # per-stage pattern mapped onto this network's stages (unchanged for the same network)
        densities, maps = stage_sparsity(pattern_meta["info"])
        n = 1 + max(conv_stages(large).values())
        extra["stage_density"] = transfer_fractions(densities, n)
        masks = guided_sparse_masks(large, extra["stage_density"], transfer_fractions(maps, n), seed=seed)
    if masks is not None:  # drawn on the full architecture, then the sparse re-init
        model, masks = scratch_model(large_spec, seed=seed, masks=masks, reinit=cfg["reinit"])
    else:
        n = 1 + max(g.stage for g in large_spec.groups())
        fractions = transfer_fractions(stage_width_fractions(attached_spec(pattern), pattern_large), n)
        target = count_params(pruned, masks=pruned_masks).nonzero
        spec, scale = guided_spec(large_spec, fractions, target_params=target)
        model, masks = scratch_model(spec, seed=seed)
        extra.update(stage_fractions=fractions, scale=scale, target_params=target)
    recipe = recipe_of(cfg["recipe"])
    result = yield TrainJob(model, recipe, seed, masks=masks)
    _record_training(ctx, kind, model, masks, result, recipe, flops_ratio(large, model, masks))
    return _style(masks), extra


def _ticket(ctx: _Ctx) -> Training:
    from prunebench.prune.lottery import lottery_recipe, random_ticket, ticket_dir, winning_ticket
    from prunebench.prune.scratch import scratch_model
    from prunebench.prune import prune_channels
    from prunebench.train import load_model

    pruned, masks, meta = _load_pruned(ctx)
    seed = ctx.stage.config["init_seed"]
    init = ticket_dir(ctx.up("large"))
    if ctx.stage.kind == "winning_ticket":
        if masks:
            model = winning_ticket(init, masks)
        else:  # physically pruned: slice θ0 to the kept channels
            model = prune_channels(load_model(init)[0], meta["kept"])
    elif masks:
        model = random_ticket(pruned, masks, seed, ctx.stage.config["reinit"])
    else:
        model, _ = scratch_model(pruned, seed=seed, selection_from=pruned)
    lr = ctx.stage.payload["lr"]
    recipe = lottery_recipe(recipe_of(ctx.stage.config["recipe"]), lr)
    result = yield TrainJob(model, recipe, seed, masks=masks)
    _record_training(ctx, f"{ctx.stage.kind}_lr{lr:g}", model, masks, result, recipe, meta.get("flops_ratio"))
    return _style(masks), {"paired_prune": ctx.stage.upstream["pruned"], "lr": lr}


def _imp_prune(ctx: _Ctx) -> tuple[str, dict[str, Any]]:
    """A round k >= 2 of iterative magnitude pruning with reset: prune `ratio` of the survivors of
    round k-1's mask by the magnitudes of round k-1's trained winning ticket.  Writes the mask
    checkpoint the round's tickets read, like a prune stage (the reset to θ₀ is the winning ticket)."""
    from prunebench.measure import flops_ratio
    from prunebench.prune.magnitude import imp_round
    from prunebench.train import load_model, save_model

    out = ctx.out / PRUNED_DIR
    if not (out / "spec.json").exists():  # a killed run may have saved it already
        _, opts = _method(ctx.stage)
        trained, _, _ = load_model(ctx.up("trained") / "final")
        _, masks, _ = load_model(ctx.up("previous") / PRUNED_DIR)
        res = imp_round(trained, masks or {}, opts)
        meta = {"kept": None, "info": jsonable({**res.info, "round": ctx.stage.config["round"]}), "style": "mask",
                "flops_ratio": flops_ratio(_large_model(ctx.up("large")), res.model, res.masks)}  # fmt: skip
        save_model(out, res.model, masks=res.masks, meta=meta)
    saved = load_model(out)[2] or {}
    return "mask", {"prune_info": saved.get("info"), "round": ctx.stage.config["round"]}


_KINDS = {
    "train_large": _train_large,
    "soft_train": _soft_train,
    "prune": _prune,
    "finetune": _finetune,
    "scratch_e": _scratch_e,
    "scratch_b": _scratch_b,
    "uniform_scratch": _uniform,
    "winning_ticket": _ticket,
    "random_ticket": _ticket,
    "imp_prune": _imp_prune,
    "uniform_sparse_scratch": _search_arm,
    "guided_scratch": _search_arm,
    "guided_sparse_scratch": _search_arm,
    "transferred_guided_scratch": _search_arm,
    **BASELINE_RUNNERS,  # experiment/baselines.py (its run functions call back into this module)
    **DETECTION_RUNNERS,  # experiment/detection_stages.py (E8)
}
