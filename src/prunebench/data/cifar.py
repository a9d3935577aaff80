"""CIFAR-10/100 from the official python-pickle archive, unpickled without running code."""

from __future__ import annotations

import io
import math
import os
import pickle
import tarfile
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from prunebench.data.files import cache_dir, download, labelled_roots, not_found
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


#: Caps applied before anything is read or allocated (decompression and pickle bombs): the largest
#: official member (CIFAR-100 `train`) is 155 MB, the archives about 180 MB unpacked.
MAX_MEMBER_BYTES = 256 << 20
MAX_ARCHIVE_BYTES = 1 << 30  # all members' declared sizes together
MAX_MEMBERS = 1000


# numpy's own `_reconstruct`, whatever its module is called in this numpy version
_NUMPY_RECONSTRUCT: Callable[..., Any] = np.zeros(0).__reduce__()[0]  # type: ignore[assignment]


class _NdarrayType:
    """Stands in for `numpy.ndarray` inside a pickle: only `_reconstruct` may use it, so a pickle
    cannot call `ndarray(shape)` directly to allocate an array of any size."""

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        raise pickle.UnpicklingError("arrays are rebuilt only through numpy's _reconstruct")


def _reconstruct(subtype: Any, shape: Any, dtype: Any) -> Any:
    """numpy's `_reconstruct` with the size it allocates capped (real pickles pass shape (0,))."""
    if subtype is not _NdarrayType:
        raise pickle.UnpicklingError("only plain numpy arrays may be rebuilt")
    dims = shape if isinstance(shape, tuple) else (shape,)
    if not all(isinstance(d, int) and 0 <= d for d in dims) or math.prod(dims) > MAX_MEMBER_BYTES:
        raise pickle.UnpicklingError(f"array of declared shape {dims} is too large")
    return _NUMPY_RECONSTRUCT(np.ndarray, dims, dtype)


class _SafeUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _ALLOWED:
            raise pickle.UnpicklingError(f"forbidden global {module}.{name}")
        if name == "ndarray":
            return _NdarrayType
        if name == "_reconstruct":
            return _reconstruct
        return super().find_class(module, name)


def safe_unpickle(data: bytes, origin: str) -> dict[str, Any]:
    """Unpickle a CIFAR batch dict; anything but plain data raises `DataError` naming `origin`."""
    try:
        obj = _SafeUnpickler(io.BytesIO(data), encoding="bytes").load()
    except Exception as e:  # a corrupt pickle can raise almost anything (MemoryError too)
        raise DataError(f"{origin}: unsafe or corrupt pickle ({str(e)[:200]})") from None
    if not isinstance(obj, dict):
        raise DataError(f"{origin}: expected a dict, got {type(obj).__name__}")
    return {k.decode() if isinstance(k, bytes) else k: v for k, v in obj.items()}


def _batch(data: bytes, origin: str, label_key: str, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    d = safe_unpickle(data, origin)
    # Exact types before any conversion: np.asarray of nested lists that share references
    # would expand them into an array of any size.
    images, labels = d.get("data"), d.get(label_key)
    if not (isinstance(images, np.ndarray) and images.dtype == np.uint8 and images.ndim == 2
            and images.shape[1] == 3072):  # fmt: skip
        raise DataError(f"{origin}: not a CIFAR batch (data must be a uint8 array of N x 3072 pixels)")
    if not (isinstance(labels, list) and all(type(v) is int for v in labels)):
        raise DataError(f"{origin}: not a CIFAR batch ({label_key} must be a list of integers)")
    x = images.reshape(-1, 3, 32, 32)
    y = np.asarray(labels, dtype=np.int64)
    if len(x) != len(y) or (len(y) and (y.min() < 0 or y.max() >= num_classes)):
        raise DataError(f"{origin}: {len(x)} images but {len(y)} labels, or labels out of range")
    return x, y


def _read_folder(folder: Path, members: list[str]) -> dict[str, bytes]:
    out = {}
    for m in members:
        try:
            if not (folder / m).is_file():  # a device or a folder named like a member is not a batch
                raise DataError(f"{folder / m}: not a file")
            if (folder / m).stat().st_size > MAX_MEMBER_BYTES:
                raise DataError(f"{folder / m}: larger than any CIFAR batch ({MAX_MEMBER_BYTES:,} bytes at most)")
            out[m] = (folder / m).read_bytes()
        except OSError as e:
            raise DataError(f"{folder / m}: cannot read ({e.strerror})") from None
    return out


def _read_archive(path: Path, folder: str, members: list[str]) -> dict[str, bytes]:
    """Read the batch files straight from the .tar.gz, without extracting anything to disk."""
    out: dict[str, bytes] = {}
    wanted = {f"{folder}/{m}": m for m in members}
    try:
        with tarfile.open(path, "r:gz") as tar:
            # Walk the members in order, checking each declared size before its data is read or
            # skipped (skipping a gzip member decompresses it too): a bomb is refused up front.
            total = 0
            for count, info in enumerate(tar, 1):
                total += info.size
                if count > MAX_MEMBERS or info.size > MAX_MEMBER_BYTES or total > MAX_ARCHIVE_BYTES:
                    raise DataError(
                        f"{path}: not a CIFAR archive ({info.name!r} declares {info.size:,} bytes; "
                        f"caps: {MAX_MEMBER_BYTES:,} per member, {MAX_ARCHIVE_BYTES:,} in all, {MAX_MEMBERS} members)"
                    )
                if info.name in wanted and info.isfile():
                    f = tar.extractfile(info)
                    if f is not None:
                        out[wanted[info.name]] = f.read()
                if len(out) == len(wanted):
                    break
            missing = [m for m in members if m not in out]
            if missing:
                raise DataError(f"{path}: has no {folder}/{missing[0]}")
    except (tarfile.TarError, OSError, EOFError, zlib.error) as e:
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
    roots = labelled_roots(data_dir)
    for root, _ in roots:
        if found := _read(root, name):
            return found
    try:
        download(url, cache_dir() / archive, (md5,))
    except DataError as e:
        looked = [f"{r} ({label}; as {folder}/ or {archive})" for r, label in roots]
        raise not_found(name, [*looked, f"download ({e})"], data_dir) from None
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
