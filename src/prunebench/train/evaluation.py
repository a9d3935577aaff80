"""Accuracy (and loss) of a model on a set of images, in eval mode and always in fp32.

Training may run under bf16 autocast, but every accuracy prunebench reports (per epoch,
in `train`'s result, in `eval`, in the report) is computed here in fp32, so that one
checkpoint has one accuracy whichever command measured it.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from prunebench.data import DatasetInfo, Images, batches
from prunebench.train.speed import SpeedSettings, resolve_device


def evaluate_loss_acc(
    model: nn.Module,
    x: Images,
    y: torch.Tensor,
    *,
    info: DatasetInfo,
    speed: SpeedSettings,
    batch_size: int = 512,
) -> tuple[float, float]:
    """Mean cross-entropy and accuracy of `model` (already on `speed.device`) on uint8 images `x`,
    in fp32 (the run's bf16 setting is deliberately ignored) and the run's memory format."""
    was_training = model.training
    model.eval()
    loss_sum = torch.zeros((), dtype=torch.float64, device=speed.device)
    correct = torch.zeros((), dtype=torch.int64, device=speed.device)
    with torch.no_grad():
        for xb, yb in batches(x, y, info=info, batch_size=batch_size, train=False, device=speed.device,
                              channels_last=speed.channels_last):
            logits = model(xb)
            loss_sum += F.cross_entropy(logits.float(), yb, reduction="sum").double()
            correct += (logits.argmax(1) == yb).sum()
    model.train(was_training)
    n = max(len(y), 1)
    return loss_sum.item() / n, correct.item() / n


def evaluate(
    model: nn.Module,
    x: Images,
    y: torch.Tensor,
    *,
    info: DatasetInfo,
    device: str | torch.device | None = None,
    batch_size: int = 512,
) -> float:
    """Top-1 accuracy (0..1) of `model` in fp32 on `device` (default: where the model is)."""
    dev = resolve_device(device) if device is not None else next(model.parameters()).device
    model.to(dev)
    fp32 = SpeedSettings(device=dev, bf16=False, channels_last=False, compile=False)
    return evaluate_loss_acc(model, x, y, info=info, speed=fp32, batch_size=batch_size)[1]
