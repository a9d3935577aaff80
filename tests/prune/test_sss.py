"""Sparse Structure Selection: APG gate updates, block removal, named layouts."""

from __future__ import annotations

import json
import tempfile
from types import SimpleNamespace

import pytest
import torch

from prunebench.data import load
from prunebench.errors import SpecError
from prunebench.models import ResNetSpec, variant
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
    result = METHOD.prune(model, splits, METHOD.parse_options({"penalty": 0.3, "keep_blocks": 3}))
    assert sum(result.model.spec.blocks) == 3
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
        result = METHOD.prune(model, None, METHOD.parse_options({"variant": name}))
        assert result.model.spec == variant(name, num_classes=10, in_channels=3, input_size=32)
    # the last layout computes what the gated net computes with the removed gates at zero
    with torch.no_grad():
        for blk in result.info["removed"]:
            model.get_submodule(blk).gate.weight.zero_()
    x = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(result.model.eval()(x), model(x), rtol=1e-4, atol=1e-4)


def test_sss_needs_a_zoo_resnet() -> None:
    with pytest.raises(SpecError):
        METHOD.prepare_large(variant("vgg11"), METHOD.parse_options({}))
    plain = ResNetSpec.uniform("basic", (1, 1), planes=(4, 8), stem=4, input_size=16).build()
    with pytest.raises(SpecError, match="gated"):
        METHOD.prune(plain, None, METHOD.parse_options({}))
