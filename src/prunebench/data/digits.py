"""scikit-learn's 8×8 digits with a fixed stratified train/test split: the fastest data set."""

from __future__ import annotations

import numpy as np
import torch

from prunebench.data.raw import RawData
from prunebench.data.splits import balanced_pick

TEST_SIZE = 300
SPLIT_SEED = 2019  # fixed forever: changing it changes every digits result


def load_raw() -> RawData:
    from sklearn.datasets import load_digits  # bundled with scikit-learn, no download

    bunch = load_digits()
    # Pixel values are 0..16; scale to the 0..255 range every other data set uses.
    images = np.rint(bunch.images * (255.0 / 16.0)).astype(np.uint8)[:, None]
    labels = bunch.target.astype(np.int64)
    test = balanced_pick(labels, np.arange(len(labels)), TEST_SIZE, np.random.default_rng(SPLIT_SEED), "digits test split")
    train = np.setdiff1d(np.arange(len(labels)), test, assume_unique=True)
    x, y = torch.from_numpy(images), torch.from_numpy(labels)
    return RawData(x[train], y[train], x[test], y[test], source="scikit-learn load_digits()")
