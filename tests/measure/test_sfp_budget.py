"""Scratch-B of SFP: the reference counts the soft-zeroed full model (sparse, the next layer's input
slices dense); E7 uses that rule, the hard-pruned count stays a named option, and every Scratch-B
run, the dry run and `prunebench arch` say which rule they used."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest
from kit import tiny_preset

from prunebench.cli import main
from prunebench.errors import ConfigError
from prunebench.experiment import expand, format_plan, load_preset, parse_preset
from prunebench.experiment.stages import scratch_b_recipe
from prunebench.measure import BudgetPolicy, budget_flops_ratio
from prunebench.models import variant
from prunebench.prune import get_method
from prunebench.train import save_model, seed_everything

SFP_SCHEDULE = {"epochs": 200, "lr": 0.01, "milestones": [1, 60, 120, 160], "lr_multipliers": [10.0, 0.2, 0.2, 0.2]}


@pytest.fixture(scope="module")
def resnet56_sfp() -> tuple:
    seed_everything(0)
    large = variant("resnet56", num_classes=10, in_channels=3, input_size=32).build()
    method = get_method("sfp")
    return large, method.prune(large, None, method.parse_options({"ratio": 0.3}))


def test_soft_zeroed_rule_counts_the_full_model_with_dense_input_slices(resnet56_sfp: tuple) -> None:
    large, result = resnet56_sfp
    hard = budget_flops_ratio(large, result.model, result.masks)
    soft = budget_flops_ratio(large, result.model, result.masks, "soft_zeroed", result.info["zeroed_counts"])
    assert hard == pytest.approx(1.601, abs=2e-3) and soft == pytest.approx(1.377, abs=2e-3)


def test_scratch_b_recipe_follows_the_policys_rule_and_records_it(resnet56_sfp: tuple, tmp_path: Path) -> None:
    large, result = resnet56_sfp
    save_model(tmp_path / "final", large)
    budget = {"base_epochs": 200, "fixed_first_epochs": 1}
    epochs = {}
    for rule in ("pruned", "soft_zeroed"):
        config = {"recipe": SFP_SCHEDULE, "budget": {**budget, "flops_rule": rule}}
        recipe, b = scratch_b_recipe(tmp_path, result.model, result.masks, config, result.info)
        epochs[rule] = recipe.epochs
        assert b.policy.flops_rule == rule  # `policy` JSON of the stage's budget: the report reads it
    assert epochs == {"pruned": 320, "soft_zeroed": 275}
    with pytest.raises(ConfigError, match="soft_zeroed"):  # a method that zeroed nothing cannot use it
        scratch_b_recipe(tmp_path, result.model, result.masks, {"recipe": SFP_SCHEDULE, "budget": {"flops_rule": "soft_zeroed"}}, {})


def test_unknown_rule_is_refused() -> None:
    with pytest.raises(ConfigError, match="flops_rule"):
        BudgetPolicy(flops_rule="dense")


@pytest.mark.parametrize("name", ["e7-sfp-cifar10-resnet20", "e7-sfp-cifar10-resnet56", "e7-sfp-cifar10-resnet110"])
def test_e7_presets_plan_the_reference_budget_in_the_dry_run(name: str) -> None:
    plan = expand(load_preset(name).with_seeds(1))
    [stage] = [s for s in plan.stages if s.kind == "scratch_b"]
    assert stage.config["budget"]["flops_rule"] == "soft_zeroed"
    assert "Scratch-B 275 epochs, LR changes at 1, 82, 165, 220; FLOPs ratio 1.37" in format_plan(plan)


def test_pretrained_sfp_plans_its_400_epoch_base_and_structured_methods_their_variant() -> None:
    text = format_plan(expand(load_preset("e7-sfp-pretrained-cifar10-resnet56").with_seeds(1)))
    assert "Scratch-B 550 epochs" in text and "soft_zeroed FLOPs rule" in text
    text = format_plan(expand(load_preset("e1-l1-cifar10-resnet56").with_seeds(1)))
    assert text.count("Scratch-B ") == 2 and "pruned FLOPs rule" in text  # resnet56-a / -b: known widths
    text = format_plan(expand(load_preset("fmnist-slimming").with_seeds(1)))
    assert "r measured on the pruned model" in text  # slimming decides its widths from the trained γ


def test_soft_zeroed_rule_is_refused_for_a_method_that_does_not_soft_zero() -> None:
    text = tiny_preset("b", quiet=False, train_subset=None, test_subset=None, arms=("scratch_b",), large=("epochs = 4", "lr = 0.1"),
                       finetune=("epochs = 1", "lr = 0.001"), tail=("[budget]", 'flops_rule = "soft_zeroed"'))  # fmt: skip
    with pytest.raises(ConfigError, match="flops_rule"):
        expand(parse_preset(tomllib.loads(text), "b.toml"))


def test_arch_shows_both_rules_for_sfp(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["arch", "resnet56", "--dataset", "cifar10", "--sfp-ratio", "0.3", "--repeats", "1", "--json"]) == 0
    sfp = json.loads(capsys.readouterr().out)["sfp"]
    assert sfp["soft_zeroed"]["scratch_b_epochs"] == 275 and sfp["pruned"]["scratch_b_epochs"] == 320
    assert sfp["soft_zeroed"]["scratch_b_milestones"] == [1, 82, 165, 220]
