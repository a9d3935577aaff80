"""The hard-coded normalisation statistics are those of each data set's own training split."""

from __future__ import annotations

import pytest
import torch

from prunebench.data import dataset_info, load_raw


@pytest.mark.parametrize("name", ["digits", "fashion-mnist"])
def test_stats_match_training_split(name: str) -> None:
    x = load_raw(name).train_x.to(torch.float64) / 255
    info = dataset_info(name)
    assert info.norm == "train" and not info.flip
    assert info.mean[0] == pytest.approx(x.mean().item(), abs=1e-5)
    assert info.std[0] == pytest.approx(x.std(unbiased=False).item(), abs=1e-5)


def test_digits_fixed_stratified_test_split() -> None:
    raw = load_raw("digits")
    assert len(raw.train_y) == 1497 and torch.bincount(raw.test_y).tolist() == [30] * 10
    assert int(raw.train_x.max()) == 255  # 0..16 scaled to 0..255
    assert dataset_info("digits").pad == 1


def test_unknown_norm_is_refused() -> None:
    from prunebench.errors import DataError

    with pytest.raises(DataError, match="sfp, reference"):
        dataset_info("cifar10", norm="imagenet")
