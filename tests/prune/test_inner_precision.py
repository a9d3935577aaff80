"""Training inside `prune()` (magnitude's Han rounds, ThiNet's between-layer fine-tune) runs at the
experiment's precision: a preset pinned to fp32 never gets bf16 inner training on bf16 hardware."""

from __future__ import annotations

import copy
import tomllib
from pathlib import Path
from typing import Any

import pytest
from kit import tiny_preset

from prunebench.data import load
from prunebench.experiment import parse_preset, run_experiment
from prunebench.models import VGGSpec
from prunebench.prune import get_method
from prunebench.train import seed_everything

SPEC = VGGSpec(cfg=(8, "M", 16, "M", 16), in_channels=1, input_size=8)


@pytest.fixture()
def recipes(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Every recipe the one trainer is called with (the training still runs)."""
    import prunebench.prune.magnitude as magnitude
    import prunebench.train as train_pkg

    seen: list[Any] = []
    real = train_pkg.train

    def spy(model: Any, splits: Any, recipe: Any, out: Any, **kw: Any) -> Any:
        seen.append(recipe)
        return real(model, splits, recipe, out, **kw)

    monkeypatch.setattr(magnitude, "train", spy)
    monkeypatch.setattr(train_pkg, "train", spy)
    return seen


@pytest.mark.parametrize("name", ["magnitude", "thinet"])
def test_inner_training_uses_the_precision_it_is_given(name: str, recipes: list[Any]) -> None:
    seed_everything(0)
    model = SPEC.build()
    splits = load("digits", val_size=0, train_subset=200)
    method = get_method(name)
    options = ({"ratio": 0.5, "iterative_rounds": 2, "round_epochs": 1} if name == "magnitude"
               else {"ratio": 0.5, "images": 10, "locations": 2, "finetune_between": 1})  # fmt: skip
    opts = method.parse_options(options)
    method.prune(copy.deepcopy(model), splits, opts)
    assert recipes and all(r.precision == "auto" for r in recipes)  # a bare call: the trainer's default
    recipes.clear()
    method.inner_precision = "fp32"
    method.prune(copy.deepcopy(model), splits, opts)
    assert recipes and all(r.precision == "fp32" for r in recipes)


def test_an_experiment_passes_its_precision_and_its_own_folder(tmp_path: Path, recipes: list[Any]) -> None:
    text = tiny_preset(
        "inner", data="digits", train_subset=200, test_subset=None, data_extra=("val_size = 0",), variant="resnet20", width_mult=0.25,
        method="magnitude", options="ratio = 0.5, iterative_rounds = 2, round_epochs = 1", arms=("unpruned", "pruned_no_ft"),
        large=("epochs = 1", "lr = 0.05", 'precision = "fp32"'), finetune=("epochs = 1", "lr = 0.005"),
    )
    run_experiment(parse_preset(tomllib.loads(text), "inner.toml"), tmp_path, say=lambda _: None)
    assert [r.precision for r in recipes] == ["fp32", "fp32"]  # the large model, then the one Han round
    [prune_dir] = (tmp_path / "stages").glob("prune-*")
    assert (prune_dir / "inner" / "round1" / "result.json").is_file()  # inside the stage's folder, resumable
