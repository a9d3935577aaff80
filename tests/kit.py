"""Helpers shared by tests in several folders (tests/ is on sys.path through its conftest): the
tiny preset most end-to-end tests run, and a look at a finished store's accuracies."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from prunebench.experiment import Store


def tiny_preset(
    name: str = "tiny",
    *,
    seeds: Sequence[int] = (0,),
    quiet: bool = True,
    data: str = "fashion-mnist",
    train_subset: int | None = 100,
    test_subset: int | None = 100,
    data_extra: Sequence[str] = (),
    variant: str = "vgg11",
    width_mult: float = 0.125,
    method: str = "l1norm",
    label: str | None = None,
    options: str | None = "ratio = 0.5",
    method_extra: Sequence[str] = (),
    arms: Sequence[str] = ("unpruned", "finetuned"),
    arms_extra: Sequence[str] = (),
    large: Sequence[str] = ("epochs = 1", "lr = 0.05"),
    finetune: Sequence[str] = ("epochs = 1", "lr = 0.01"),
    tail: Sequence[str] = (),
) -> str:
    """The TOML of a one-method preset on a small subset (VGG-11 at 1/8 width on 100 Fashion-MNIST
    images by default): one line per key, so that a test can `.replace` a line to break it.
    `quiet`: no per-epoch test evaluation; `*_extra`/`tail`: raw lines added to that table / the end."""
    lines = [f'name = "{name}"', f"seeds = {list(seeds)}"]
    lines += ["log_test_every_epoch = false"] if quiet else []
    lines += ["[data]", f'name = "{data}"']
    lines += [f"train_subset = {train_subset}"] if train_subset is not None else []
    lines += [f"test_subset = {test_subset}"] if test_subset is not None else []
    lines += [*data_extra, "[model]", f'variant = "{variant}"', f"width_mult = {width_mult:g}"]
    lines += ["[[methods]]", f'name = "{method}"'] + ([f'label = "{label}"'] if label else [])
    lines += ([f"options = {{ {options} }}"] if options is not None else []) + list(method_extra)
    lines += ["[arms]", *(f"{arm} = true" for arm in arms), *arms_extra]
    lines += ["[recipes.large]", *large, "[recipes.finetune]", *finetune, *tail]
    return "\n".join(lines) + "\n"


def accuracies(exp_dir: Path) -> dict[tuple[str, str], float]:
    """(stage id, arm) -> primary accuracy of every finished result in the store of `exp_dir`."""
    store = Store.open(exp_dir)
    try:
        return {(r["stage_id"], r["arm"]): r["primary_acc"] for r in store.rows()}
    finally:
        store.close()
