"""Accuracy (and loss) of a model on a set of images, in eval mode."""

from __future__ import annotations

import contextlib
from typing import ContextManager

import torch
from torch import nn
from torch.nn import functional as F

from prunebench.data import DatasetInfo, batches
from prunebench.train.speed import resolve_device


def evaluate_loss_acc(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    info: DatasetInfo,
    device: torch.device,
    batch_size: int = 512,
    autocast: ContextManager[object] | None = None,
    channels_last: bool = False,
) -> tuple[float, float]:
    """Mean cross-entropy and accuracy of `model` (already on `device`) on uint8 images `x`."""
    was_training = model.training
    model.eval()
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    correct = torch.zeros((), dtype=torch.int64, device=device)
    with torch.no_grad():
        for xb, yb in batches(x, y, info=info, batch_size=batch_size, train=False, device=device,
                              channels_last=channels_last):
            with autocast or contextlib.nullcontext():
                logits = model(xb)
            loss_sum += F.cross_entropy(logits.float(), yb, reduction="sum").double()
            correct += (logits.argmax(1) == yb).sum()
    model.train(was_training)
    n = max(len(y), 1)
    return loss_sum.item() / n, correct.item() / n


def evaluate(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    info: DatasetInfo,
    device: str | torch.device | None = None,
    batch_size: int = 512,
) -> float:
    """Top-1 accuracy (0..1) of `model` in fp32 on `device` (default: where the model is)."""
    dev = resolve_device(device) if device is not None else next(model.parameters()).device
    model.to(dev)
    return evaluate_loss_acc(model, x, y, info=info, device=dev, batch_size=batch_size)[1]
