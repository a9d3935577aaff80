"""The Python entry point for a user's own model: `compare` runs every arm of a pruning experiment.

`compare(build_model, ...)` writes the same preset a TOML file would hold (`[model] builder =`),
and runs it through the same stage graph, store and report as `prunebench run`: nothing here
trains or prunes by itself.  `build_model` must be a module-level function returning a fresh
`nn.Module`: the Scratch-E/B arms import it again, build the model under their own seed and
replay the structural pruning record on that fresh init (models/builder.py).
"""

from __future__ import annotations

import json
import re
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from prunebench.errors import ConfigError

DEFAULT_ARMS = ("unpruned", "pruned_no_ft", "finetuned", "scratch_e", "scratch_b")


@dataclass(frozen=True)
class Comparison:
    """The finished experiment of `compare`: its folder, report and per-run results."""

    exp_dir: Path
    report: Path

    def table(self) -> str:
        """The summary table (accuracy of every arm, mean ± std over seeds) as Markdown."""
        from prunebench.report import summary_table

        return summary_table(self.exp_dir)

    def results(self) -> list[dict[str, Any]]:
        """One dict per (arm, seed) run: accuracies, params, FLOPs (with the counting rule), budgets."""
        rows: list[dict[str, Any]] = json.loads((self.exp_dir / "results.json").read_text())
        return rows


def _builder(build_model: Callable[..., nn.Module] | str) -> str:
    from prunebench.models import builder_ref, resolve_builder

    if isinstance(build_model, str):
        resolve_builder(build_model)
        return build_model
    return builder_ref(build_model)


def _check_input(example_input: torch.Tensor | None, data: str) -> None:
    """The example input must be one image of the data set's shape (it is what tracing and FLOPs use)."""
    if example_input is None:
        return
    from prunebench.data import dataset_info

    info = dataset_info(data)
    want = (1, info.in_channels, info.input_size, info.input_size)
    if tuple(example_input.shape) not in (want, want[1:]):
        raise ConfigError(f"example_input has shape {list(example_input.shape)}; data {data!r} gives {list(want)}")


def compare(
    build_model: Callable[..., nn.Module] | str,
    *,
    data: str = "digits",
    method: str = "l1norm",
    amount: float = 0.5,
    example_input: torch.Tensor | None = None,
    seeds: int = 3,
    kwargs: dict[str, Any] | None = None,
    options: dict[str, Any] | None = None,
    arms: Sequence[str] = DEFAULT_ARMS,
    epochs: int = 10,
    finetune_epochs: int | None = None,
    lr: float = 0.05,
    batch_size: int = 64,
    train_subset: int | None = None,
    test_subset: int | None = None,
    out: str | Path | None = None,
    name: str = "my-model",
    progress: bool = False,
) -> Comparison:
    """Is pruning worth it for *your* model?  Train it, prune it with `method` at `amount` (the fraction
    of channels removed), fine-tune it, and train the pruned architecture from scratch (Scratch-E: the
    same epochs; Scratch-B: the same FLOPs budget), for `seeds` seeds, then write the report.

    build_model: a module-level function returning a fresh `nn.Module` (or its "pkg.module:function"),
        called with `kwargs`.  data: a data set name (`prunebench data list`).  method: "l1norm",
        "slimming" (its sparsity training on |gamma| included), "sfp" (its soft-pruning training included)
        or "magnitude" (weight masks); `options` go
        to the method.
    Results are kept in `out` (a new temporary folder by default); a rerun there skips finished stages.
    """
    from prunebench.experiment import run_experiment
    from prunebench.experiment.preset import parse_preset
    from prunebench.report import write_report

    _check_input(example_input, data)
    label = f"{method}-{round(100 * amount)}%"
    raw: dict[str, Any] = {
        "name": re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-") or "my-model",
        "description": f"compare(): {method} at {amount:g} on a user model",
        "seeds": list(range(seeds)),
        "data": {"name": data, "val_size": 0, **({"train_subset": train_subset} if train_subset else {}),
                 **({"test_subset": test_subset} if test_subset else {})},
        "model": {"builder": _builder(build_model), "kwargs": dict(kwargs or {})},
        "methods": [{"name": method, "label": label, "options": {"ratio": amount, **(options or {})}}],
        "arms": {a: True for a in arms},
        "recipes": {
            "large": {"epochs": epochs, "lr": lr, "batch_size": batch_size, "precision": "fp32"},
            "finetune": {"epochs": finetune_epochs or max(1, epochs // 4), "lr": lr / 10},
        },
    }
    preset = parse_preset(raw, "compare()")
    exp_dir = Path(out) if out is not None else Path(tempfile.mkdtemp(prefix="prunebench-"))
    run_experiment(preset, exp_dir, progress=progress, say=print if progress else (lambda _: None))
    return Comparison(exp_dir, write_report(exp_dir))
