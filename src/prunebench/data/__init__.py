"""Data sets, fixed validation splits and on-device batch augmentation."""

from prunebench.data.augment import batches
from prunebench.data.info import DEFAULT_DATASET, NORMS, DatasetInfo, dataset_info, list_datasets
from prunebench.data.loader import fetch, load, load_raw
from prunebench.data.splits import Images, Splits

__all__ = [
    "DEFAULT_DATASET", "NORMS", "DatasetInfo", "Images", "Splits",
    "batches", "dataset_info", "fetch", "list_datasets", "load", "load_raw",
]
