"""Which training stages train together as one group (`train.batched.train_group`).

A group is up to K ready stages of one kind whose configurations are equal but for the seed
(the seeds of an arm, or of a method's large model): the runner hands them to one worker as one
job (`stages.compute_group`), which prepares each stage as alone and trains the models together
when they really share an architecture and recipe.  Grouping changes no stage's identity, folder
or record: only how its training steps are run.

The preset's `group_training` sets K: an integer forces groups of up to K on any device (this is
how the tests exercise grouping on the CPU); "off" is K = 1; "auto" groups on CUDA devices for
small nets and not on the CPU (see the constants below for why).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

#: "auto" on a CUDA device: groups of up to this many stages (the protocol's 5 seeds of an arm).
AUTO_CUDA_GROUP = 5
#: "auto" groups on CUDA only nets of at most this many forward FLOPs per image (multiply-adds x 2,
#: the reference counter).  A conservative constant, not a measurement: no GPU was lent when the
#: policy was written.  It admits the paper's CIFAR nets (VGG-16 0.63 GFLOPs, ResNet-56 0.25) whose
#: single-model steps leave a GPU mostly idle, and keeps ImageNet-size nets (ResNet-50: 8 GFLOPs),
#: which fill a GPU alone, training one at a time.
AUTO_CUDA_MAX_FLOPS = 1.5e9
#: "auto" on the CPU: no grouping.  On a CPU one model's convolutions already use the cores it has;
#: grouping would only win where the batched trainer measures a gain (bench/batched_train.md).
AUTO_CPU_GROUP = 1


def group_key(stage: Any) -> str | None:
    """What stages must share to train as one group (None: this stage never trains in a group):
    the kind and the configuration without its seed (`init_seed`), and a ticket's LR."""
    from prunebench.experiment.ddp_stage import stage_nproc
    from prunebench.experiment.stages import kind_trains

    if not kind_trains(stage.kind) or stage_nproc(stage) > 1:  # torchrun stages run alone
        return None
    config = {k: v for k, v in stage.config.items() if k != "init_seed"}
    return json.dumps([stage.kind, config, stage.payload.get("lr")], sort_keys=True, default=str)


def group_size(plan: Any, device: str | None) -> int:
    """K for a run of `plan` on `device` (None: the default device, as the trainer picks it)."""
    setting = plan.preset.group_training
    if setting == "off":
        return 1
    if isinstance(setting, int):
        return setting
    from prunebench.train.speed import resolve_device

    if resolve_device(device).type != "cuda":
        return AUTO_CPU_GROUP
    return AUTO_CUDA_GROUP if _largest_flops(plan) <= AUTO_CUDA_MAX_FLOPS else 1


def _largest_flops(plan: Any) -> float:
    """Forward FLOPs per image of the largest model the plan trains from its spec (its large models;
    every other stage trains a model pruned or derived from one of them)."""
    from prunebench.measure import count_flops
    from prunebench.models import spec_from_dict

    specs = {json.dumps(s.config["model"], sort_keys=True) for s in plan.stages if "model" in s.config}
    return max((float(count_flops(spec_from_dict(json.loads(m)).build()).flops) for m in specs), default=0.0)


def batches(ready: Sequence[Any], waiting: Sequence[Any], size: int, *, force: bool = False) -> list[list[Any]]:
    """The jobs to submit now from the `ready` stages (plan order): groups of up to `size` stages of
    one `group_key`, every other stage alone.  A group smaller than `size` waits while stages of its
    key are still `waiting` for their upstream (they would join it), unless `force`."""
    by_key: dict[str, list[Any]] = {}
    jobs: list[list[Any]] = []
    for s in ready:
        key = group_key(s) if size > 1 else None
        if key is None:
            jobs.append([s])
        else:
            by_key.setdefault(key, []).append(s)
    ready_ids = {s.id for s in ready}
    for key, stages in by_key.items():
        partners = any(group_key(w) == key for w in waiting if w.id not in ready_ids)
        for i in range(0, len(stages), size):
            chunk = stages[i : i + size]
            if len(chunk) == size or force or not partners:
                jobs.append(chunk)
    return jobs


def planned_groups(plan: Any, device: str | None = None) -> dict[str, int]:
    """Stage id -> the size of the group it is planned to train in (stages that train alone are left
    out): the dry run's view; at run time a group also needs its stages ready together and, once
    prepared, models of one architecture."""
    size = group_size(plan, device)
    if size < 2:
        return {}
    by_key: dict[str, list[str]] = {}
    for s in plan.stages:
        key = group_key(s)
        if key is not None:
            by_key.setdefault(key, []).append(s.id)
    out: dict[str, int] = {}
    for ids in by_key.values():
        for i in range(0, len(ids), size):
            chunk = ids[i : i + size]
            out.update({sid: len(chunk) for sid in chunk if len(chunk) > 1})
    return out

