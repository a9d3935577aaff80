"""Static facts about each data set: shape, classes, normalisation, augmentation."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from prunebench.errors import DataError


@dataclass(frozen=True)
class DatasetInfo:
    """What models, trainers and reports need to know about a data set.

    `mean`/`std` are per-channel, on the 0..1 pixel scale; `norm` names where they
    come from (see `NORMS`).  `pad` is the zero padding of the random crop (0 = no
    crop), `flip` switches random horizontal flips on.
    """

    name: str
    num_classes: int
    in_channels: int
    input_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    pad: int
    flip: bool
    train_size: int
    test_size: int
    default_val_size: int
    norm: str = "train"


# Named normalisation statistics per data set (docs/protocol.md §2.1, §2.5).  The
# first entry is the default.  "train" values are computed from the data set's
# own full training split (tests/data/test_norm_stats.py recomputes them).
NORMS: dict[str, dict[str, tuple[tuple[float, ...], tuple[float, ...]]]] = {
    "fashion-mnist": {"train": ((0.28604,), (0.35302,))},
    "digits": {"train": ((0.30540,), (0.37616,))},
    "cifar10": {
        # SFP scripts: per-data-set values.
        "sfp": ((125.3 / 255, 123.0 / 255, 113.9 / 255), (63.0 / 255, 62.1 / 255, 66.7 / 255)),
        # L1/slimming/weight-level/lottery scripts: widely copied values (compat only).
        "reference": ((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)),
    },
    "cifar100": {
        "sfp": ((129.3 / 255, 124.1 / 255, 112.4 / 255), (68.2 / 255, 65.4 / 255, 70.4 / 255)),
        # The reference reuses the CIFAR-10 values on CIFAR-100: a hazard kept for reproduction.
        "reference": ((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)),
    },
    # The torchvision/reference ImageNet statistics, used for every ImageNet-layout folder.
    "imagenet": {"imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))},
}

_BASE: dict[str, DatasetInfo] = {
    info.name: info
    for info in (
        DatasetInfo("fashion-mnist", 10, 1, 28, (), (), pad=4, flip=False,
                    train_size=60000, test_size=10000, default_val_size=5000),
        DatasetInfo("digits", 10, 1, 8, (), (), pad=1, flip=False,
                    train_size=1497, test_size=300, default_val_size=200),
        DatasetInfo("cifar10", 10, 3, 32, (), (), pad=4, flip=True,
                    train_size=50000, test_size=10000, default_val_size=5000),
        DatasetInfo("cifar100", 100, 3, 32, (), (), pad=4, flip=True,
                    train_size=50000, test_size=10000, default_val_size=5000),
        # Any ImageNet-layout folder (data/imagefolder.py); `load(classes=, input_size=)` and the
        # preset's [data] classes/input_size give the class count and crop of a smaller one.
        DatasetInfo("imagenet", 1000, 3, 224, (), (), pad=0, flip=True,
                    train_size=1281167, test_size=50000, default_val_size=10000),
    )
}

DEFAULT_DATASET = "fashion-mnist"


def list_datasets() -> list[str]:
    """Names accepted by `load` and `dataset_info`, the default first."""
    return list(_BASE)


def dataset_info(name: str, *, norm: str | None = None) -> DatasetInfo:
    """The `DatasetInfo` of `name`; `norm` picks a named set of statistics."""
    if name not in _BASE:
        raise DataError(f"unknown data set {name!r}; choose one of: {', '.join(_BASE)}")
    norms = NORMS[name]
    norm = norm or next(iter(norms))
    if norm not in norms:
        raise DataError(f"{name}: unknown normalisation {norm!r}; choose one of: {', '.join(norms)}")
    mean, std = norms[norm]
    return dataclasses.replace(_BASE[name], mean=mean, std=std, norm=norm)


def sized(info: DatasetInfo, *, classes: int | None = None, input_size: int | None = None) -> DatasetInfo:
    """`info` of a folder data set kept to its first `classes` classes, cropped to `input_size`."""
    if input_size is not None and input_size < 8:
        raise DataError(f"{info.name}: input_size must be at least 8, got {input_size}")
    return dataclasses.replace(
        info, num_classes=classes or info.num_classes, input_size=input_size or info.input_size,
    )
