"""Fixed, seeded, class-balanced validation split and training subset."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import torch

from prunebench.data.imagefolder import FolderImages
from prunebench.data.info import DatasetInfo
from prunebench.data.raw import RawData
from prunebench.errors import DataError


Images = torch.Tensor | FolderImages  # a split's images: in memory, or files streamed by `batches`


@dataclass
class Splits:
    """Train/validation/test tensors of one data set (uint8 N×C×H×W images, int64 labels).

    An image-folder data set holds `FolderImages` (files, streamed by `batches`) instead.
    `train_index`/`val_index` are positions in the official training set;
    `split_hash` fingerprints the data plus these indices and enters run identities.
    """

    info: DatasetInfo
    train_x: Images
    train_y: torch.Tensor
    val_x: Images
    val_y: torch.Tensor
    test_x: Images
    test_y: torch.Tensor
    source: str
    split_hash: str
    train_index: torch.Tensor | None = None
    val_index: torch.Tensor | None = None


def balanced_pick(labels: np.ndarray, candidates: np.ndarray, n: int, rng: np.random.Generator, what: str) -> np.ndarray:
    """`n` of `candidates` (positions into `labels`), as equal per class as possible, sorted.

    When `n` is not a multiple of the class count, a seeded choice of classes gets one extra.
    """
    classes = np.unique(labels[candidates])
    quota = np.full(len(classes), n // len(classes))
    quota[rng.permutation(len(classes))[: n % len(classes)]] += 1
    picked = []
    for c, q in zip(classes, quota):
        members = candidates[labels[candidates] == c]
        if q > len(members):
            raise DataError(f"{what} of {n} needs {q} images of class {c}, only {len(members)} available")
        picked.append(rng.permutation(members)[:q])
    return np.sort(np.concatenate(picked))


def make_splits(raw: RawData, info: DatasetInfo, *, val_size: int, train_subset: int | None, split_seed: int) -> Splits:
    """Carve the validation split (then the optional training subset) out of the training set."""
    n = len(raw.train_y)
    if val_size < 0 or val_size >= n:
        raise DataError(f"{info.name}: val_size must be in [0, {n - 1}], got {val_size}")
    if train_subset is not None and not 0 < train_subset <= n - val_size:
        raise DataError(f"{info.name}: train_subset must be in [1, {n - val_size}], got {train_subset}")
    labels = raw.train_y.numpy()
    # The split has its own seed so every run seed sees the same validation images.
    rng = np.random.default_rng(split_seed)
    everything = np.arange(n)
    val = balanced_pick(labels, everything, val_size, rng, "validation split") if val_size else everything[:0]
    train = np.setdiff1d(everything, val, assume_unique=True)
    if train_subset is not None and train_subset < len(train):
        train = balanced_pick(labels, train, train_subset, rng, "training subset")
    digest = hashlib.sha256(raw.fingerprint().encode())
    for part in (train, val):
        digest.update(part.astype(np.int64).tobytes() + b"|")
    train_t, val_t = torch.from_numpy(train), torch.from_numpy(val)
    return Splits(
        info=info,
        train_x=raw.train_x[train_t], train_y=raw.train_y[train_t],
        val_x=raw.train_x[val_t], val_y=raw.train_y[val_t],
        test_x=raw.test_x, test_y=raw.test_y,
        source=raw.source,
        split_hash=digest.hexdigest()[:16],
        train_index=train_t, val_index=val_t,
    )
