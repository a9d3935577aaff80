"""The resumable training state in `out_dir/state/`: model, optimizer, counters, callbacks, RNG."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from prunebench.errors import CheckpointError, ConfigError
from prunebench.train.callbacks import TrainContext
from prunebench.train.checkpoint import (
    Masks,
    load_into,
    model_files,
    read_checkpoint,
    read_torch_state,
    torch_bytes,
    write_dir,
)
from prunebench.train.seeding import rng_state, set_rng_state

STATE_DIR = "state"
STATE_FILE = "train_state.pt"
_SHOWN = {"split_hash": "data split"}



def _count(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def _number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def _optimizer(v: Any) -> bool:
    return isinstance(v, dict) and isinstance(v.get("state"), dict) and isinstance(v.get("param_groups"), list)


def _rng(v: Any) -> bool:
    return (
        isinstance(v, dict) and isinstance(v.get("python"), list | tuple) and len(v["python"]) == 3
        and isinstance(v.get("numpy"), list | tuple) and len(v["numpy"]) == 5
        and isinstance(v.get("torch"), torch.Tensor) and v["torch"].dtype == torch.uint8
    )  # fmt: skip


#: What each key of a saved state must be (a file that unpickles safely may still hold anything).
_SHAPE: dict[str, tuple[str, Callable[[Any], bool]]] = {
    "next_epoch": ("a count", _count),
    "step": ("a count", _count),
    "images_seen": ("a count", _count),
    "elapsed_s": ("a number", lambda v: _number(v) and v >= 0),
    "best_val_acc": ("a number or None", lambda v: v is None or _number(v)),
    "best_epoch": ("a count or None", lambda v: v is None or _count(v)),
    "history": ("a list of dicts", lambda v: isinstance(v, list) and all(isinstance(h, dict) for h in v)),
    "seed": ("an integer", lambda v: isinstance(v, int) and not isinstance(v, bool)),
    "split_hash": ("a string or None", lambda v: v is None or isinstance(v, str)),
    "recipe": ("a dict", lambda v: isinstance(v, dict)),
    "optimizer": ("an optimizer state", _optimizer),
    "callbacks": ("a dict", lambda v: isinstance(v, dict)),
    "rng": ("RNG states", _rng),
}
_REQUIRED = set(_SHAPE)


def read_train_state(path: Path) -> dict[str, Any]:
    """Load `train_state.pt` and check its structure: any mismatch is one CheckpointError naming the file."""
    state = read_torch_state(path)
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: not a training state (a {type(state).__name__}, not a dict)")
    missing = _REQUIRED - set(state)
    if missing:
        raise CheckpointError(f"{path}: not a training state (missing {', '.join(sorted(missing))})")
    for key, (what, ok) in _SHAPE.items():
        if not ok(state[key]):
            raise CheckpointError(f"{path}: not a training state ({key} should be {what}, got {type(state[key]).__name__})")
    return state


def run_identity(ctx: TrainContext) -> dict[str, Any]:
    """What makes two calls of `train()` the same run (the model's spec and masks are checked separately)."""
    return {"recipe": ctx.recipe.to_dict(), "seed": ctx.seed, "split_hash": ctx.splits.split_hash}


def check_same_run(where: Path, saved: dict[str, Any], saved_masks: Masks | None, ctx: TrainContext) -> None:
    """Refuse to resume (or to return the result of) a run stored with other settings."""
    now = run_identity(ctx)
    changed = [_SHOWN.get(k, k) for k in now if saved.get(k) != now[k]]
    if not _same_masks(saved_masks, ctx.masks):
        changed.append("masks")
    if changed:
        raise ConfigError(f"{where} holds a run with a different {', '.join(changed)}; use another output folder")


def _callback_key(index: int, callback: object) -> str:
    return f"{index}:{type(callback).__name__}"


def save_state(ctx: TrainContext) -> None:
    """Checkpoint the end of epoch `ctx.epoch`; a resumed run continues with the next epoch."""
    state: dict[str, Any] = {
        "next_epoch": ctx.epoch + 1,
        "step": ctx.step,
        "images_seen": ctx.images_seen,
        "elapsed_s": ctx.elapsed_s,
        "best_val_acc": ctx.best_val_acc,
        "best_epoch": ctx.best_epoch,
        "history": ctx.history,
        **run_identity(ctx),
        "optimizer": ctx.optimizer.state_dict(),
        "callbacks": {
            _callback_key(i, cb): s for i, cb in enumerate(ctx.callbacks) if (s := cb.state_dict())
        },
        "rng": rng_state(),
    }
    files = model_files(ctx.model, ctx.masks, meta={"epoch": ctx.epoch, "step": ctx.step})
    files[STATE_FILE] = torch_bytes(state)
    write_dir(ctx.out_dir / STATE_DIR, files)


def _same_masks(a: Masks | None, b: Masks | None) -> bool:
    if not a or not b:
        return not a and not b
    return a.keys() == b.keys() and all(torch.equal(a[k].cpu().bool(), b[k].cpu().bool()) for k in a)


def restore_state(ctx: TrainContext, state_dir: Path) -> None:
    """Load a saved state into `ctx` (model, optimizer, counters, callbacks, RNG), checking it is the same run."""
    path = state_dir / STATE_FILE
    state = read_train_state(path)
    ckpt = read_checkpoint(state_dir, expected_spec=getattr(ctx.model, "spec", None))
    check_same_run(state_dir, state, ckpt.masks, ctx)
    load_into(ctx.model, ckpt)
    try:  # the parts torch and the callbacks interpret: their own errors, made one line naming the file
        _restore_parts(ctx, state)
    except (ValueError, TypeError, KeyError, IndexError, RuntimeError) as e:
        raise CheckpointError(f"{path}: not a usable training state ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})") from None


def _restore_parts(ctx: TrainContext, state: dict[str, Any]) -> None:
    ctx.optimizer.load_state_dict(state["optimizer"])
    ctx.epoch = state["next_epoch"]
    ctx.step = state["step"]
    ctx.images_seen = state["images_seen"]
    ctx.elapsed_s = state["elapsed_s"]
    ctx.best_val_acc = state["best_val_acc"]
    ctx.best_epoch = state["best_epoch"]
    ctx.history = list(state["history"])
    for i, cb in enumerate(ctx.callbacks):
        if (key := _callback_key(i, cb)) in state["callbacks"]:
            cb.load_state_dict(state["callbacks"][key])
    set_rng_state(state["rng"])
