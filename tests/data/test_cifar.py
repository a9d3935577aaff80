"""CIFAR loaders on tiny archives written in exactly the official python-pickle format."""

from __future__ import annotations

import os
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

from prunebench.data import cifar, load, load_raw
from prunebench.data.cifar import safe_unpickle
from prunebench.errors import DataError

PER_BATCH = 20  # 2 images per class for CIFAR-10


def _dump(path: Path, obj: object) -> None:
    # The official files are protocol-2 pickles with byte-string keys.
    path.write_bytes(pickle.dumps(obj, protocol=2))


def _batch(rng: np.random.Generator, n: int, label_key: bytes, num_classes: int, offset: int) -> dict[bytes, object]:
    labels = [(offset + i) % num_classes for i in range(n)]
    return {
        b"batch_label": b"training batch",
        label_key: labels,
        b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
        b"filenames": [f"img_{offset + i}.png".encode() for i in range(n)],
    }


def write_cifar10(root: Path) -> Path:
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(1, 6):
        _dump(folder / f"data_batch_{i}", _batch(rng, PER_BATCH, b"labels", 10, i * PER_BATCH))
    _dump(folder / "test_batch", _batch(rng, 10, b"labels", 10, 0))
    _dump(folder / "batches.meta", {b"label_names": [b"airplane"] * 10, b"num_vis": 3072, b"num_cases_per_batch": PER_BATCH})
    return folder


def test_cifar10_folder(tmp_path: Path) -> None:
    folder = write_cifar10(tmp_path)
    s = load("cifar10", val_size=20, data_dir=tmp_path)
    assert s.train_x.shape == (80, 3, 32, 32) and s.test_x.shape == (10, 3, 32, 32)
    assert torch.bincount(s.val_y, minlength=10).tolist() == [2] * 10
    assert s.source == str(folder) and s.info.flip and s.info.pad == 4
    # Each row of 3072 bytes is three 32×32 planes (R, G, B), row-major.
    first = pickle.loads((folder / "data_batch_1").read_bytes())
    raw = load_raw("cifar10", tmp_path)
    assert np.array_equal(raw.train_x[0].numpy(), first[b"data"][0].reshape(3, 32, 32))
    assert raw.train_y[:3].tolist() == first[b"labels"][:3]
    assert load("cifar10", val_size=0, data_dir=folder).source == str(folder)  # the folder itself works too


def test_missing_everywhere_names_the_places(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def offline(url: str, dest: Path, md5s: tuple[str, ...]) -> None:
        raise DataError(f"{url}: download failed (offline)")

    monkeypatch.setattr(cifar, "download", offline)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("PRUNEBENCH_DATA", str(tmp_path / "env"))
    with pytest.raises(DataError) as e:
        load("cifar100", data_dir=tmp_path / "given")
    msg = str(e.value)
    assert "\n" not in msg and "offline" in msg and "cifar-100-python.tar.gz" in msg
    assert all(str(tmp_path / d) in msg for d in ("given", "env", "cache"))


def test_cifar10_tar_gz_from_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = write_cifar10(tmp_path / "src")
    archive = tmp_path / "data" / "cifar-10-python.tar.gz"
    archive.parent.mkdir()
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder, arcname="cifar-10-batches-py")
    monkeypatch.setenv("PRUNEBENCH_DATA", str(archive.parent))
    s = load("cifar10", val_size=0)
    assert len(s.train_y) == 5 * PER_BATCH and s.source == str(archive)


def test_cifar100_fine_labels_and_norms(tmp_path: Path) -> None:
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    rng = np.random.default_rng(1)
    for name, n in (("train", 200), ("test", 100)):
        d = _batch(rng, n, b"fine_labels", 100, 0)
        d[b"coarse_labels"] = [i % 20 for i in range(n)]
        _dump(folder / name, d)
    _dump(folder / "meta", {b"fine_label_names": [b"x"] * 100, b"coarse_label_names": [b"y"] * 20})
    s = load("cifar100", val_size=100, data_dir=tmp_path)
    assert len(s.train_y) == 100 and torch.bincount(s.val_y, minlength=100).tolist() == [1] * 100
    assert s.info.norm == "sfp" and s.info.mean[0] == pytest.approx(129.3 / 255)
    compat = load("cifar100", val_size=0, data_dir=tmp_path, norm="reference")
    assert compat.info.mean == (0.4914, 0.4822, 0.4465)  # the reference's CIFAR-10 values, on purpose


class _Payload:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, ("echo pwned > /dev/null",))


def test_code_running_pickle_is_refused(tmp_path: Path) -> None:
    folder = write_cifar10(tmp_path)
    _dump(folder / "data_batch_3", {b"data": _Payload(), b"labels": []})
    with pytest.raises(DataError, match=r"data_batch_3: unsafe or corrupt pickle \(forbidden global (posix|os)\.system\)"):
        load("cifar10", data_dir=tmp_path)


def test_corrupt_batch_and_archive_name_the_file(tmp_path: Path) -> None:
    folder = write_cifar10(tmp_path / "a")
    (folder / "test_batch").write_bytes((folder / "test_batch").read_bytes()[:100])
    with pytest.raises(DataError, match="test_batch: unsafe or corrupt pickle"):
        load("cifar10", data_dir=tmp_path / "a")
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "cifar-10-python.tar.gz").write_bytes(b"\x1f\x8b truncated")
    with pytest.raises(DataError, match="cifar-10-python.tar.gz: corrupt or truncated archive"):
        load("cifar10", data_dir=tmp_path / "b")


def test_safe_unpickle_keeps_plain_data() -> None:
    d = safe_unpickle(pickle.dumps({b"k": np.arange(3, dtype=np.uint8), "s": [1, 2]}, protocol=2), "mem")
    assert d["k"].tolist() == [0, 1, 2] and d["s"] == [1, 2]
    with pytest.raises(DataError, match="mem: expected a dict"):
        safe_unpickle(pickle.dumps([1, 2]), "mem")
