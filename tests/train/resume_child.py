"""Child process of the resume test: train, and SIGKILL ourselves right after the epoch-2 checkpoint
(one step into the third epoch, so that step's work is lost as in a real crash)."""

from __future__ import annotations

import os
import signal
import sys

import torch

from trainkit import ZeroRandomFilter, digits, first_conv_mask, tiny_model

from prunebench.train import Callback, Recipe, TrainContext, train


class KillAfterEpoch2(Callback):
    def after_step(self, ctx: TrainContext) -> None:
        if ctx.epoch == 2:
            os.kill(os.getpid(), signal.SIGKILL)


if __name__ == "__main__":
    torch.set_num_threads(1)
    recipe = Recipe.from_fractions(4, (0.5,), lr=0.1, precision="fp32")
    model = tiny_model(seed=3)
    train(model, digits(), recipe, sys.argv[1], seed=3, masks=first_conv_mask(model),
          callbacks=[ZeroRandomFilter(), KillAfterEpoch2()], progress=False)
