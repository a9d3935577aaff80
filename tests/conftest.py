"""Shared test set-up: one torch thread (the suite runs on a few shared CPU cores), and the
small trained model most pruning tests start from."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
import torch

from prunebench.data import Splits, load
from prunebench.models import variant
from prunebench.train import Callback, Recipe, seed_everything, train

torch.set_num_threads(1)

SmallVGG = Callable[..., tuple[torch.nn.Module, Splits, Path]]


@pytest.fixture(scope="session")
def small_vgg(tmp_path_factory: pytest.TempPathFactory) -> SmallVGG:
    """`small_vgg(name, train_subset=, val_size=, recipe=, callbacks=)` -> (model, splits, run folder):
    VGG-11 at width 0.25 trained with seed 0 on a class-balanced Fashion-MNIST subset.

    `callbacks` may be a function of the model's spec (e.g. a method's `large_training`).
    """

    def make(
        name: str,
        *,
        train_subset: int,
        val_size: int,
        recipe: Recipe,
        callbacks: Sequence[Callback] | Callable[[Any], Sequence[Callback]] = (),
    ) -> tuple[torch.nn.Module, Splits, Path]:
        splits = load("fashion-mnist", val_size=val_size, train_subset=train_subset)
        seed_everything(0)
        spec = variant("vgg11", splits.info, width_mult=0.25)
        model = spec.build()
        out = tmp_path_factory.mktemp(name)
        cbs = callbacks(spec) if callable(callbacks) else callbacks
        train(model, splits, recipe, out, seed=0, callbacks=cbs, progress=False, eval_test=False)
        return model, splits, out

    return make
