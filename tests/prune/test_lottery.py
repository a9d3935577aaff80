"""Lottery tickets: exact θ₀ (or epoch-k) starts, random tickets with the same mask, the LR recipe."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path

import pytest
import safetensors.torch
import torch

from prunebench.errors import CheckpointError, ConfigError
from prunebench.models import variant
from prunebench.prune import get_method
from prunebench.prune.lottery import (
    SaveEpochCallback,
    lottery_callbacks,
    lottery_recipe,
    random_ticket,
    structured_masks,
    ticket_dir,
    winning_ticket,
)
from prunebench.prune.scratch import reinit_std
from prunebench.train import Recipe, SaveInitCallback, seed_everything, train

MAGNITUDE = get_method("magnitude")
RECIPE = Recipe(epochs=2, lr=0.05, batch_size=32, precision="fp32")


@pytest.fixture(scope="module")
def large(small_vgg: Callable[..., tuple]) -> tuple[torch.nn.Module, object, Path]:
    """The small VGG trained for 2 epochs, saving θ₀ and the epoch-1 weights."""
    return small_vgg(
        "lottery-large", train_subset=600, val_size=100, recipe=RECIPE, callbacks=lottery_callbacks(rewind_epoch=1)
    )


def _saved(folder: Path) -> dict[str, torch.Tensor]:
    return safetensors.torch.load_file(str(folder / "weights.safetensors"))


def _magnitude_masks(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return MAGNITUDE.prune(copy.deepcopy(model), None, MAGNITUDE.parse_options({"percent": 0.8})).masks


def test_winning_ticket_run_starts_from_exactly_the_saved_init_masked(large, tmp_path: Path) -> None:
    model, splits, out = large
    masks = _magnitude_masks(model)
    theta0 = _saved(out / "init")
    expected = {k: v * masks[k] if k in masks else v for k, v in theta0.items()}
    ticket = winning_ticket(ticket_dir(out), masks)
    assert all(torch.equal(v, expected[k]) for k, v in ticket.state_dict().items())
    # what the ticket's own training run starts from, bit for bit
    train(ticket, splits, lottery_recipe(Recipe(epochs=1, lr=0.1, batch_size=32, precision="fp32"), 0.01),
          tmp_path / "ticket", seed=3, callbacks=[SaveInitCallback()], masks=masks, eval_test=False)
    start = _saved(tmp_path / "ticket" / "init")
    assert start.keys() == expected.keys() and all(torch.equal(v, expected[k]) for k, v in start.items())
    params = dict(ticket.named_parameters())
    assert all(not params[k][~m].any() for k, m in masks.items())


def test_random_ticket_has_the_same_mask_but_not_the_saved_init(large) -> None:
    model, _, out = large
    masks = _magnitude_masks(model)
    theta0 = _saved(out / "init")
    sparse = random_ticket(model.spec, masks, seed=5)
    dense = random_ticket(model.spec, masks, seed=5, reinit="dense")
    for name, mask in masks.items():
        w = dict(sparse.named_parameters())[name]
        assert not w[~mask].any() and torch.count_nonzero(w[mask]) == mask.sum()
        assert not torch.equal(w, theta0[name] * mask)
        # same seed, same normals: the dense fan-out only scales them down by sqrt(density)
        scale = reinit_std(mask, "sparse") / reinit_std(mask, "dense")
        assert torch.allclose(dense.get_parameter(name) * scale, w, atol=1e-6)


def test_rewind_saves_the_weights_after_k_epochs(large, tmp_path: Path) -> None:
    _, splits, out = large
    seed_everything(0)
    one = variant("vgg11", splits.info, width_mult=0.25).build()
    train(one, splits, RECIPE.replace(epochs=1), tmp_path / "one", seed=0, eval_test=False)
    rewound = _saved(ticket_dir(out, rewind_epoch=1))
    assert all(torch.equal(v, rewound[k]) for k, v in one.state_dict().items())
    assert not torch.equal(rewound["features.0.weight"], _saved(out / "init")["features.0.weight"])
    with pytest.raises(ConfigError):
        SaveEpochCallback(0)


def test_structured_ticket_zeroes_whole_filters_and_their_bn(large) -> None:
    model, _, out = large
    masks = structured_masks(copy.deepcopy(model), None, {"ratio": 0.5})
    ticket = winning_ticket(ticket_dir(out), masks)
    theta0 = _saved(out / "init")
    conv, bn = ticket.features[4], ticket.features[5]
    dropped = ~masks["features.4.weight"].flatten(1).all(1)
    assert int(dropped.sum()) == conv.out_channels - conv.out_channels // 2
    assert not conv.weight[dropped].any() and not bn.weight[dropped].any() and not bn.bias[dropped].any()
    assert torch.equal(conv.weight[~dropped], theta0["features.4.weight"][~dropped])


def test_lottery_recipe_sets_the_lr_and_decays_at_half_and_three_quarters() -> None:
    base = Recipe(epochs=160, lr=0.1, weight_decay=5e-4, milestones=(10,), lr_multipliers=(0.5,))
    r = lottery_recipe(base, 0.01)
    assert r.milestones == (80, 120) and r.weight_decay == 5e-4 and r.epochs == 160
    assert [r.lr_at(e) for e in (0, 79, 80, 120)] == pytest.approx([0.01, 0.01, 0.001, 0.0001])
    assert lottery_recipe(Recipe(epochs=1, lr=0.1), 0.1).milestones == ()


def test_missing_init_is_a_checkpoint_error(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="lottery_callbacks"):
        winning_ticket(tmp_path / "nothing", {})
