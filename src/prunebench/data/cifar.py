"""CIFAR-10/100 from the official python-pickle archive, unpickled without running code."""

from __future__ import annotations

import io
import os
import pickle
import tarfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from prunebench.data.files import cache_dir, download, search_roots
from prunebench.data.raw import RawData
from prunebench.errors import DataError

# name -> (folder inside the archive, archive file, URL, MD5, train members, test member, label key)
ARCHIVES: dict[str, tuple[str, str, str, str, tuple[str, ...], str, str]] = {
    "cifar10": ("cifar-10-batches-py", "cifar-10-python.tar.gz",
                "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz", "c58f30108f718f92721af3b95e74349a",
                tuple(f"data_batch_{i}" for i in range(1, 6)), "test_batch", "labels"),
    "cifar100": ("cifar-100-python", "cifar-100-python.tar.gz",
                 "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz", "eb9058c3a382ffc7106e4002c42a8d85",
                 ("train",), "test", "fine_labels"),
}
NUM_CLASSES = {"cifar10": 10, "cifar100": 100}

# The only globals a CIFAR pickle needs: numpy array reconstruction (numpy 1 and 2
# module names) and the codec call protocol-2 pickles use for bytes.
_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"),
}


class _SafeUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _ALLOWED:
            raise pickle.UnpicklingError(f"forbidden global {module}.{name}")
        return super().find_class(module, name)


def safe_unpickle(data: bytes, origin: str) -> dict[str, Any]:
    """Unpickle a CIFAR batch dict; anything but plain data raises `DataError` naming `origin`."""
    try:
        obj = _SafeUnpickler(io.BytesIO(data), encoding="bytes").load()
    except Exception as e:  # a corrupt pickle can raise almost anything
        raise DataError(f"{origin}: unsafe or corrupt pickle ({e})") from None
    if not isinstance(obj, dict):
        raise DataError(f"{origin}: expected a dict, got {type(obj).__name__}")
    return {k.decode() if isinstance(k, bytes) else k: v for k, v in obj.items()}


def _batch(data: bytes, origin: str, label_key: str, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    d = safe_unpickle(data, origin)
    try:
        x = np.asarray(d["data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
        y = np.asarray(d[label_key], dtype=np.int64)
    except (KeyError, ValueError, TypeError) as e:
        raise DataError(f"{origin}: not a CIFAR batch ({e})") from None
    if len(x) != len(y) or (len(y) and (y.min() < 0 or y.max() >= num_classes)):
        raise DataError(f"{origin}: {len(x)} images but {len(y)} labels, or labels out of range")
    return x, y


def _read_folder(folder: Path, members: list[str]) -> dict[str, bytes]:
    out = {}
    for m in members:
        try:
            out[m] = (folder / m).read_bytes()
        except OSError as e:
            raise DataError(f"{folder / m}: cannot read ({e.strerror})") from None
    return out


def _read_archive(path: Path, folder: str, members: list[str]) -> dict[str, bytes]:
    """Read the batch files straight from the .tar.gz, without extracting anything to disk."""
    out = {}
    try:
        with tarfile.open(path, "r:gz") as tar:
            for m in members:
                try:
                    f = tar.extractfile(f"{folder}/{m}")
                except KeyError:
                    f = None
                if f is None:
                    raise DataError(f"{path}: has no {folder}/{m}")
                out[m] = f.read()
    except (tarfile.TarError, OSError, EOFError) as e:
        raise DataError(f"{path}: corrupt or truncated archive ({e})") from None
    return out


def _read(root: Path, name: str) -> tuple[dict[str, bytes], str] | None:
    """The batch files of `name` under `root` (extracted folder, or the .tar.gz) and their origin."""
    folder, archive, _, _, train_members, test_member, _ = ARCHIVES[name]
    members = [*train_members, test_member]
    for candidate in (root / folder, root):
        if candidate.name == folder and candidate.is_dir():
            return _read_folder(candidate, members), str(candidate)
    if (root / archive).is_file():
        return _read_archive(root / archive, folder, members), str(root / archive)
    return None


def _fetch(name: str, data_dir: str | os.PathLike[str] | None) -> tuple[dict[str, bytes], str]:
    """Find the archive in the search roots, else download it (checksummed) into the user cache."""
    folder, archive, url, md5, *_ = ARCHIVES[name]
    roots = search_roots(data_dir)
    for root in roots:
        if found := _read(root, name):
            return found
    try:
        download(url, cache_dir() / archive, (md5,))
    except DataError as e:
        where = ", ".join(str(r) for r in roots)
        raise DataError(f"{name} not found in {where} (as {folder}/ or {archive}); {e}") from None
    return _read(cache_dir(), name)  # type: ignore[return-value]


def load_raw(name: str, data_dir: str | os.PathLike[str] | None = None) -> RawData:
    files, origin = _fetch(name, data_dir)
    _, _, _, _, train_members, test_member, label_key = ARCHIVES[name]
    n = NUM_CLASSES[name]
    parts = [_batch(files[m], f"{origin}/{m}", label_key, n) for m in train_members]
    test_x, test_y = _batch(files[test_member], f"{origin}/{test_member}", label_key, n)
    train_x = np.concatenate([p[0] for p in parts])
    train_y = np.concatenate([p[1] for p in parts])
    return RawData(torch.from_numpy(train_x), torch.from_numpy(train_y),
                   torch.from_numpy(test_x), torch.from_numpy(test_y), source=origin)
