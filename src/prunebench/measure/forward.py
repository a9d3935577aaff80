"""How a measurement runs a forward pass: input shape, dummy batch, eval mode."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn

from prunebench.errors import SpecError

Shape = tuple[int, ...]


def input_shape_of(model: nn.Module, input_shape: Shape | None = None) -> Shape:
    """`input_shape` if given, else (in_channels, input_size, input_size) from `model.spec`."""
    if input_shape is not None:
        return tuple(int(s) for s in input_shape)
    spec = getattr(model, "spec", None)
    if spec is None:
        raise SpecError(f"{type(model).__name__} has no `spec`; pass input_shape=(C, H, W)")
    return (int(spec.in_channels), int(spec.input_size), int(spec.input_size))


def device_of(model: nn.Module) -> torch.device:
    """Where the model's parameters live (CPU for a parameter-free module)."""
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


def dummy_batch(model: nn.Module, shape: Shape, batch_size: int = 1) -> torch.Tensor:
    """Zeros of `batch_size × shape` on the model's device (values do not affect counts)."""
    return torch.zeros((batch_size, *shape), device=device_of(model))


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[None]:
    """Eval mode while measuring (BN must not update its statistics), restored after."""
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for m, training in modes:
            m.training = training
