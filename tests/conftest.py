"""Shared test set-up: the suite runs on a few shared CPU cores, so keep torch to one thread."""

from __future__ import annotations

import torch

torch.set_num_threads(1)
