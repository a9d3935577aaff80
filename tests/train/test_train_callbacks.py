"""Method hooks: exact masks, the BN L1 sub-gradient, per-epoch weight changes, θ₀ saving."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import torch
from torch import nn
from torch.nn import functional as F

from trainkit import digits, first_conv_mask, tiny_model

from prunebench.models import VGGSpec, build_model
from prunebench.train import (
    BNL1Callback,
    Callback,
    MaskCallback,
    Recipe,
    SaveInitCallback,
    TrainContext,
    load_model,
    train,
)

FP32 = dict(precision="fp32")


def _masked_entries(model: nn.Module, masks: dict[str, torch.Tensor]) -> torch.Tensor:
    params = dict(model.named_parameters())
    return torch.cat([params[k].detach()[~m].flatten() for k, m in masks.items()])


def test_masked_weights_stay_exactly_zero_through_training(tmp_path: Path) -> None:
    model = tiny_model()
    masks = first_conv_mask(model)
    before = model.features[0].weight.detach().clone()
    assert _masked_entries(model, masks).abs().sum() > 0  # the mask really removes non-zero weights
    recipe = Recipe(epochs=2, lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-3, **FP32)
    train(model, digits(), recipe, tmp_path, seed=0, masks=masks, progress=False)
    assert torch.all(_masked_entries(model, masks) == 0.0)
    kept = masks["features.0.weight"]
    assert not torch.equal(model.features[0].weight.detach()[kept], before[kept])  # the rest did train
    saved, saved_masks, _ = load_model(tmp_path / "final")
    assert saved_masks is not None and torch.all(_masked_entries(saved, saved_masks) == 0.0)


def test_mask_survives_carried_over_momentum() -> None:
    """An optimizer whose momentum buffers are non-zero at pruned entries (e.g. inherited
    from the large model's training) must not revive them."""
    model = tiny_model()
    masks = first_conv_mask(model)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-2)
    x, y = torch.randn(16, 1, 8, 8), torch.randint(0, 10, (16,))
    F.cross_entropy(model(x), y).backward()
    opt.step()  # momentum buffers now non-zero everywhere
    cb = MaskCallback(masks)
    ctx = SimpleNamespace(model=model)
    cb.on_train_start(ctx)  # type: ignore[arg-type]
    for _ in range(3):
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        cb.before_step(ctx)  # type: ignore[arg-type]
        assert torch.all(model.features[0].weight.grad[~masks["features.0.weight"]] == 0.0)
        opt.step()
        cb.after_step(ctx)  # type: ignore[arg-type]
        assert torch.all(_masked_entries(model, masks) == 0.0)


def test_bn_l1_subgradient_matches_hand_computation() -> None:
    torch.manual_seed(0)
    model = build_model(VGGSpec(cfg=(4, "M", 6), num_classes=3, in_channels=1, input_size=8, head="fc-bn", hidden=(5,)))
    bn2d, bn1d = model.features[1], model.classifier[1]
    with torch.no_grad():
        bn2d.weight.copy_(torch.tensor([0.5, -0.25, 0.0, 2.0]))
    x, y = torch.randn(8, 1, 8, 8), torch.randint(0, 3, (8,))
    lam = 0.01

    def grads(cb: BNL1Callback) -> tuple[torch.Tensor, torch.Tensor]:
        model.zero_grad()
        F.cross_entropy(model(x), y).backward()
        cb.before_step(SimpleNamespace(model=model))  # type: ignore[arg-type]
        return bn2d.weight.grad.clone(), bn1d.weight.grad.clone()

    plain2d, plain1d = grads(BNL1Callback(0.0))
    g2d, g1d = grads(BNL1Callback(lam))
    assert torch.allclose(g2d - plain2d, torch.tensor([lam, -lam, 0.0, lam]))  # sign(0) = 0
    assert torch.equal(g1d, plain1d)  # BN1d untouched by default
    _, g1d_incl = grads(BNL1Callback(lam, include_bn1d=True))
    assert torch.allclose(g1d_incl - plain1d, lam * torch.sign(bn1d.weight.detach()))
    assert torch.equal(bn2d.bias.grad, model.features[1].bias.grad)  # β gets no penalty


class _ZeroHead(Callback):
    """Per-epoch weight change: zero the classifier, so every logit is 0 and argmax is class 0."""

    def on_epoch_end(self, ctx: TrainContext) -> None:
        with torch.no_grad():
            for p in ctx.model.classifier.parameters():
                p.zero_()


def test_epoch_end_hook_changes_weights_before_evaluation(tmp_path: Path) -> None:
    splits = digits()
    result = train(tiny_model(), splits, Recipe(epochs=2, lr=0.1, **FP32), tmp_path, seed=0,
                   callbacks=[_ZeroHead()], progress=False)
    class0 = (splits.val_y == 0).sum().item() / len(splits.val_y)
    assert [h["val_acc"] for h in result.history] == [class0, class0]
    final, _, _ = load_model(tmp_path / "final")
    assert all(torch.all(p == 0) for p in final.classifier.parameters())


def test_save_init_keeps_theta0(tmp_path: Path) -> None:
    model = tiny_model(seed=5)
    theta0 = {k: v.clone() for k, v in model.state_dict().items()}
    train(model, digits(), Recipe(epochs=1, lr=0.1, **FP32), tmp_path, seed=5,
          callbacks=[SaveInitCallback()], masks=first_conv_mask(model), progress=False)
    init, _, meta = load_model(tmp_path / "init")
    assert meta == {"seed": 5}
    assert all(torch.equal(init.state_dict()[k], v) for k, v in theta0.items())  # dense θ₀, before masking
    assert not torch.equal(model.features[0].weight.detach().cpu(), theta0["features.0.weight"])
