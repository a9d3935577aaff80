"""Run by tests/train/test_distributed.py, alone or under torchrun: train the trainer tests' tiny
VGG on digits for 2 epochs into argv[1]; argv[2] = "nobn" trains it with its BatchNorms removed."""

from __future__ import annotations

import os
import sys

import torch
from torch import nn

from prunebench.train import Recipe, distributed, train
from tests.train.trainkit import digits, tiny_model

#: 500 training images in batches of 63: the last batch (59) splits unevenly over 2 ranks (30 + 29)
RECIPE = Recipe(epochs=2, lr=0.05, batch_size=63, milestones=(1,), precision="fp32")


def without_bn(model: nn.Module) -> nn.Module:
    for name, child in model.named_children():
        if isinstance(child, nn.BatchNorm2d):
            setattr(model, name, nn.Identity())
        else:
            without_bn(child)
    return model


def main(out: str, mode: str) -> None:
    torch.set_num_threads(1)
    if "RANK" in os.environ:
        distributed.init("cpu")
    model = tiny_model(0)
    if mode == "nobn":
        without_bn(model)
    try:
        train(model, digits(val_size=0), RECIPE, out, seed=0, device="cpu", progress=False, tensorboard=False)
    finally:
        distributed.shutdown()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
