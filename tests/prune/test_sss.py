"""Sparse Structure Selection: APG gate updates, block removal, named layouts."""

from __future__ import annotations

import json
import tempfile
from types import SimpleNamespace

import pytest
import torch

from prunebench.data import load
from prunebench.errors import ConfigError, SpecError
from prunebench.models import CifarResNetSpec, ResNetSpec, spec_from_json, spec_of, variant
from prunebench.models.resnet_cifar import ShortcutOnly
from prunebench.prune import get_method
from prunebench.prune.sss import GateAPG, gates, soft_threshold
from prunebench.train import Recipe, evaluate, seed_everything, train

METHOD = get_method("sss")


@pytest.fixture(scope="module")
def splits():
    return load("fashion-mnist", val_size=0, train_subset=1000)


@pytest.fixture(scope="module")
def trained(splits):
    """A small gated ImageNet-layout ResNet (basic blocks) trained with a strong gate penalty."""
    opts = METHOD.parse_options({"penalty": 0.3})
    spec = ResNetSpec.uniform("basic", (2, 2, 2, 2), planes=(8, 16, 32, 64), stem=8, num_classes=10,
                              in_channels=1, input_size=28)  # fmt: skip
    spec = METHOD.prepare_large(spec, opts)
    seed_everything(0)
    model = spec.build()
    callbacks = METHOD.large_training(opts, spec)
    with tempfile.TemporaryDirectory() as d:
        train(model, splits, Recipe(epochs=2, lr=0.05, batch_size=32), d, seed=0, callbacks=callbacks,
              progress=False, eval_test=False)  # fmt: skip
    return model, opts


@pytest.fixture(scope="module")
def cifar_trained():
    """ResNet-20 at half width on Fashion-MNIST, gated, 2 epochs: enough to zero some gates and learn."""
    splits = load("fashion-mnist", val_size=0, train_subset=3000)
    opts = METHOD.parse_options({"penalty": 0.1})
    spec = METHOD.prepare_large(variant("resnet20", splits.info, width_mult=0.5), opts)
    seed_everything(0)
    model = spec.build()
    with tempfile.TemporaryDirectory() as d:
        train(model, splits, Recipe(epochs=2, lr=0.1, batch_size=32), d, seed=0,
              callbacks=METHOD.large_training(opts, spec), progress=False, eval_test=False)  # fmt: skip
    return model, splits, opts


def _accuracy(model, splits) -> float:
    return evaluate(model, splits.test_x[:1000], splits.test_y[:1000], info=splits.info)


def test_apg_step_overrides_sgd_and_gives_exact_zeros() -> None:
    spec = ResNetSpec.uniform("basic", (1, 1), planes=(4, 8), stem=4, input_size=16, gates=True)
    model = spec.build()
    params = list(gates(model).values())
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=0.1)
    cb = GateAPG(penalty=0.5, momentum=0.9)
    ctx = SimpleNamespace(model=model, optimizer=opt)
    cb.on_train_start(ctx)
    v = torch.zeros(2, dtype=torch.float64)
    look = torch.tensor([1.0, 0.02], dtype=torch.float64)
    for p, x in zip(params, look):
        p.data.fill_(float(x))
    for step in range(3):
        grads = torch.tensor([0.3, -0.1], dtype=torch.float64) * (step + 1)
        for p, g in zip(params, grads):
            p.grad = torch.full_like(p, float(g))
        cb.before_step(ctx)
        opt.step()
        cb.after_step(ctx)
        prox = soft_threshold(look - 0.1 * grads, 0.1 * 0.5)
        v = prox - look + 0.9 * v
        look = prox + 0.9 * v
        got = torch.tensor([float(p.detach()) for p in params], dtype=torch.float64)
        torch.testing.assert_close(got, look.to(got.dtype), rtol=1e-6, atol=1e-7)
    cb.on_train_end(ctx)
    assert float(params[1].detach()) == 0.0  # the proximal iterate: an exact zero, not a tiny number
    torch.testing.assert_close(cb.state_dict()["prox"], prox, rtol=1e-6, atol=1e-7)


def test_zero_gate_blocks_are_removed_and_the_function_kept(trained, splits) -> None:
    model, opts = trained
    values = {blk: float(p.detach()) for blk, p in gates(model).items()}
    zeros = [b for b, v in values.items() if v == 0.0]
    assert zeros, "the penalty should have zeroed some gates"
    result = METHOD.prune(model, splits, opts)
    pruned = result.model
    assert sum(pruned.spec.blocks) == sum(1 for v in values.values() if v != 0.0) == len(values) - len(zeros)
    assert result.info["removed"] == zeros
    assert not any("gate" in k for k in pruned.state_dict())
    json.dumps(result.info)
    model.eval()
    pruned.eval()
    x = torch.randn(8, 1, 28, 28)
    torch.testing.assert_close(pruned(x), model(x), rtol=1e-4, atol=1e-5)
    assert METHOD.finetune(opts, Recipe(epochs=1, lr=0.01)) is None
    with tempfile.TemporaryDirectory() as d:  # the optional fine-tune stage still trains it
        train(pruned, splits, Recipe(epochs=1, lr=0.01, batch_size=32), d, seed=0, progress=False, eval_test=False)
    assert _accuracy(pruned, splits) > 0.4


def test_keep_blocks_keeps_the_largest_gates(trained, splits) -> None:
    model, _ = trained
    values = {blk: abs(float(p.detach())) for blk, p in gates(model).items()}
    with pytest.raises(ConfigError, match="gates are not zero"):  # a layout from non-zero gates is refused
        METHOD.prune(model, splits, METHOD.parse_options({"penalty": 0.3, "keep_blocks": 3}))
    result = METHOD.prune(model, splits, METHOD.parse_options({"penalty": 0.3, "keep_blocks": 3, "forced": True}))
    assert sum(result.model.spec.blocks) == 3
    assert result.info["forced"] and "FORCED" in result.info["notes"][-1]
    assert METHOD.finetune(METHOD.parse_options({"forced": True}), Recipe(epochs=1, lr=0.01)) is not None
    # stage 1 has no projection (stem width = stage width), so it keeps its larger gate
    forced = max(("layer1.0", "layer1.1"), key=values.get)
    rest = sorted((b for b in values if b != forced), key=values.get, reverse=True)[:2]
    assert sorted(set(values) - set(result.info["removed"])) == sorted([forced, *rest])


def test_named_layouts_are_hit_exactly() -> None:
    spec = variant("resnet50", num_classes=10, in_channels=3, input_size=32).replace(gates=True)
    torch.manual_seed(0)
    model = spec.build().eval()
    for p in gates(model).values():
        p.data.uniform_(0.1, 1.0)
    for name in ("resnet41", "resnet32", "resnet26"):
        with pytest.raises(ConfigError, match=f"sss: {name} would drop"):
            METHOD.prune(model, None, METHOD.parse_options({"variant": name}))
        result = METHOD.prune(model, None, METHOD.parse_options({"variant": name, "forced": True}))
        assert result.model.spec == variant(name, num_classes=10, in_channels=3, input_size=32)
    # gates at exactly zero where the layout drops blocks: the layout needs no force
    with torch.no_grad():
        for blk in result.info["removed"]:
            model.get_submodule(blk).gate.weight.zero_()
    exact = METHOD.prune(model, None, METHOD.parse_options({"variant": "resnet26"}))
    assert exact.model.spec == result.model.spec and exact.info["forced"] == []
    # the last layout computes what the gated net computes with the removed gates at zero
    x = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(result.model.eval()(x), model(x), rtol=1e-4, atol=1e-4)


def test_sss_needs_a_zoo_resnet() -> None:
    with pytest.raises(SpecError, match="ResNets"):
        METHOD.prepare_large(variant("vgg11"), METHOD.parse_options({}))
    plain = ResNetSpec.uniform("basic", (1, 1), planes=(4, 8), stem=4, input_size=16).build()
    with pytest.raises(SpecError, match="gated"):
        METHOD.prune(plain, None, METHOD.parse_options({}))


def test_cifar_resnet_zero_gate_blocks_are_removed_and_the_function_kept(cifar_trained) -> None:
    model, splits, opts = cifar_trained
    assert isinstance(model.spec, CifarResNetSpec) and model.spec.gates
    values = {blk: float(p.detach()) for blk, p in gates(model).items()}
    assert len(values) == 9
    result = METHOD.prune(model, splits, opts)
    pruned = result.model
    assert result.info["removed"], "the penalty should have zeroed some gates"
    assert sum(pruned.spec.blocks) == sum(1 for v in values.values() if v != 0.0) < 9
    assert not any("gate" in k for k in pruned.state_dict())
    assert spec_of(pruned) == pruned.spec == spec_from_json(pruned.spec.to_json())
    json.dumps(result.info)
    model.eval()
    pruned.eval()
    x = torch.randn(8, 1, 28, 28)
    torch.testing.assert_close(pruned(x), model(x), rtol=1e-4, atol=1e-5)
    assert _accuracy(pruned, splits) > 0.4  # the pruned net is the SSS result: no fine-tune


def _gated_resnet20() -> torch.nn.Module:
    torch.manual_seed(0)
    model = variant("resnet20", in_channels=1, input_size=12, width_mult=0.5).replace(gates=True).build().eval()
    with torch.no_grad():  # non-trivial BN terms, so a wrong fold or copy shows
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.5, 0.5)
        for p in gates(model).values():
            p.uniform_(0.2, 1.5)
    return model


def test_cifar_first_blocks_leave_their_option_a_shortcut() -> None:
    model = _gated_resnet20()
    zero = ["layer1.0", "layer1.1", "layer1.2", "layer2.0", "layer3.0", "layer3.1", "layer3.2"]
    with torch.no_grad():
        for blk in zero:
            model.get_submodule(blk).gate.weight.zero_()
    result = METHOD.prune(model, None, METHOD.parse_options({}))
    pruned = result.model
    # stage 1 has no shortcut to keep, so its first block stays (gate 0: an identity block)
    assert pruned.spec.blocks == (1, 2, 0) and pruned.spec.first_residual == (True, False, False)
    assert any("stage 1" in n for n in result.info["notes"])
    assert isinstance(pruned.layer2[0], ShortcutOnly) and isinstance(pruned.layer3[0], ShortcutOnly)
    assert len(pruned.layer3) == 1 and spec_of(pruned) == pruned.spec
    x = torch.randn(4, 1, 12, 12)
    torch.testing.assert_close(pruned(x), model(x), rtol=1e-4, atol=1e-5)
    # a second round on a net that already has shortcut-only units
    regated = pruned.spec.replace(gates=True).build().eval()
    regated.load_state_dict(pruned.state_dict(), strict=False)  # new gates start at 1: the same function
    with torch.no_grad():
        regated.layer2[2].gate.weight.zero_()
    again = METHOD.prune(regated, None, METHOD.parse_options({})).model
    assert again.spec.blocks == (1, 1, 0) and again.spec.first_residual == (True, False, False)
    torch.testing.assert_close(again(x), regated(x), rtol=1e-4, atol=1e-5)


def test_cifar_keep_blocks_and_named_layouts() -> None:
    model = _gated_resnet20()
    values = {blk: abs(float(p.detach())) for blk, p in gates(model).items()}
    result = METHOD.prune(model, None, METHOD.parse_options({"keep_blocks": 2, "forced": True}))
    kept = set(values) - set(result.info["removed"])
    stage1 = max(("layer1.0", "layer1.1", "layer1.2"), key=values.get)  # forced: stage 1 cannot be emptied
    assert kept == {stage1, max(set(values) - {stage1}, key=values.get)}
    with pytest.raises(SpecError, match="4 stages, the model 3"):  # the named layouts are ImageNet ResNet-50s
        METHOD.prune(model, None, METHOD.parse_options({"variant": "resnet26"}))
