"""Validation split and training subset: disjoint, class-balanced, seeded, hashed."""

from __future__ import annotations

import pytest
import torch

from prunebench.data import load
from prunebench.errors import DataError


def _index_set(t: torch.Tensor) -> set[int]:
    return set(t.tolist())


def test_default_sizes_and_disjoint() -> None:
    s = load("digits")
    assert (len(s.train_y), len(s.val_y), len(s.test_y)) == (1297, 200, 300)
    assert not _index_set(s.train_index) & _index_set(s.val_index)
    assert len(_index_set(s.train_index) | _index_set(s.val_index)) == 1497
    assert s.train_x.dtype == torch.uint8 and s.train_y.dtype == torch.int64
    assert s.train_x.shape[1:] == (1, 8, 8)


def test_class_balance() -> None:
    s = load("digits", val_size=205, train_subset=503)
    val_counts = torch.bincount(s.val_y, minlength=10)
    train_counts = torch.bincount(s.train_y, minlength=10)
    assert val_counts.sum() == 205 and int(val_counts.max() - val_counts.min()) <= 1
    assert train_counts.sum() == 503 and int(train_counts.max() - train_counts.min()) <= 1
    assert not _index_set(s.train_index) & _index_set(s.val_index)


def test_same_seed_same_split_other_seed_other_split() -> None:
    a, b, c = load("digits", split_seed=3), load("digits", split_seed=3), load("digits", split_seed=4)
    assert torch.equal(a.val_index, b.val_index) and a.split_hash == b.split_hash
    assert torch.equal(a.val_x, b.val_x)
    assert not torch.equal(a.val_index, c.val_index) and a.split_hash != c.split_hash


def test_split_hash_covers_subset_and_size() -> None:
    hashes = {load("digits").split_hash, load("digits", val_size=100).split_hash,
              load("digits", train_subset=500).split_hash}
    assert len(hashes) == 3


def test_val_size_zero_keeps_whole_training_set() -> None:
    s = load("digits", val_size=0)
    assert len(s.val_y) == 0 and s.val_x.shape == (0, 1, 8, 8)
    assert len(s.train_y) == 1497


@pytest.mark.parametrize("kwargs", [{"val_size": -1}, {"val_size": 1497}, {"train_subset": 0},
                                    {"val_size": 200, "train_subset": 1298}])
def test_bad_sizes_are_data_errors(kwargs: dict[str, int]) -> None:
    with pytest.raises(DataError):
        load("digits", **kwargs)


def test_unknown_data_set() -> None:
    with pytest.raises(DataError, match="fashion-mnist"):
        load("mnist-typo")
