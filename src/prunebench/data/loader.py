"""`load`: the one entry point that turns a data set name into `Splits`."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from prunebench.data import cifar, digits, fashion_mnist, imagefolder
from prunebench.data.files import search_roots
from prunebench.data.info import DatasetInfo, dataset_info, sized
from prunebench.data.raw import RawData
from prunebench.data.splits import Splits, make_splits
from prunebench.errors import DataError

# Parsed data sets of this process, keyed by (name, data_dir, $PRUNEBENCH_DATA).
_CACHE: dict[tuple[str, str, str], RawData] = {}
_FOLDERS: dict[tuple[str, str, str, str], RawData] = {}  # scanned image folders (files, not pixels)


def augmented(info: DatasetInfo, crop_pad: int | None, flip: bool | None) -> DatasetInfo:
    """`info` with another training augmentation (None keeps the data set's)."""
    if crop_pad is not None and not 0 <= crop_pad < info.input_size:
        raise DataError(f"{info.name}: crop_pad must be in [0, {info.input_size - 1}], got {crop_pad}")
    return dataclasses.replace(
        info, pad=info.pad if crop_pad is None else crop_pad, flip=info.flip if flip is None else flip
    )


def load_raw(name: str, data_dir: str | os.PathLike[str] | None = None) -> RawData:
    """The official train/test arrays of `name`, parsed once per process."""
    dataset_info(name)  # rejects unknown names with the list of known ones
    key = (name, str(Path(data_dir).resolve()) if data_dir else "", os.environ.get("PRUNEBENCH_DATA", ""))
    if key not in _CACHE:
        if name == "fashion-mnist":
            _CACHE[key] = fashion_mnist.load_raw(data_dir)
        elif name == "digits":
            _CACHE[key] = digits.load_raw()
        elif name == "imagenet":
            _CACHE[key] = imagefolder.load_raw(name, data_dir, input_size=dataset_info(name).input_size, classes=None)
        else:
            _CACHE[key] = cifar.load_raw(name, data_dir)
    return _CACHE[key]


def present(name: str, data_dir: str | os.PathLike[str] | None = None) -> bool:
    """Whether `name` is already on this machine: loading it installs and downloads nothing."""
    dataset_info(name)
    if name == "digits":  # bundled with scikit-learn
        return True
    if name == "fashion-mnist":
        return fashion_mnist.find(data_dir) is not None
    if name == "imagenet":
        return imagefolder.find(data_dir) is not None
    folder, archive = cifar.ARCHIVES[name][:2]
    return any(
        (root / folder).is_dir() or (root.name == folder and root.is_dir()) or (root / archive).is_file()
        for root in search_roots(data_dir)
    )


def fetch(name: str, data_dir: str | os.PathLike[str] | None = None) -> str:
    """Make sure `name` is available (installing or downloading it if needed); returns where it is."""
    return load_raw(name, data_dir).source


def load(
    name: str = "fashion-mnist",
    *,
    val_size: int | None = None,
    train_subset: int | None = None,
    split_seed: int = 0,
    data_dir: str | os.PathLike[str] | None = None,
    norm: str | None = None,
    classes: int | None = None,
    input_size: int | None = None,
    crop_pad: int | None = None,
    flip: bool | None = None,
) -> Splits:
    """Load `name` and split it: a class-balanced validation split of `val_size` images
    (None = the data set's default, 0 = none) carved from the training set with
    `split_seed`, then an optional class-balanced training subset of `train_subset`.

    `classes` (the first N classes) and `input_size` (the crop) apply to the image-folder data
    set only (`imagenet`); its images stay on disk and `batches` streams them.
    `crop_pad` and `flip` replace the data set's training augmentation (None: keep it)."""
    info = augmented(dataset_info(name, norm=norm), crop_pad, flip)
    if name == "imagenet":
        key = (name, str(Path(data_dir).resolve()) if data_dir else "", os.environ.get("PRUNEBENCH_DATA", ""),
               f"{classes}|{input_size}")
        if key not in _FOLDERS:
            info = sized(info, classes=classes, input_size=input_size)
            _FOLDERS[key] = imagefolder.load_raw(name, data_dir, input_size=info.input_size, classes=classes)
        raw = _FOLDERS[key]
        info = dataclasses.replace(
            sized(info, classes=int(raw.train_y.max()) + 1, input_size=input_size),
            train_size=len(raw.train_y), test_size=len(raw.test_y),
            default_val_size=min(len(raw.train_y) // 2, 10 * (int(raw.train_y.max()) + 1)),  # 10 a class
        )
    elif classes is not None or input_size is not None:
        raise DataError(f"{name}: classes and input_size apply to image-folder data sets (imagenet) only")
    else:
        raw = load_raw(name, data_dir)
    return make_splits(
        raw, info,
        val_size=info.default_val_size if val_size is None else val_size,
        train_subset=train_subset, split_seed=split_seed,
    )
