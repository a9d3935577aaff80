"""Fashion-MNIST: find it (env, cache, Debian package), install or download it, parse it."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import torch

from prunebench.data.files import cache_dir, download, labelled_roots, md5sum, not_found
from prunebench.data.idx import read_idx
from prunebench.data.raw import RawData
from prunebench.errors import DataError

NAME = "fashion-mnist"
DEBIAN_PACKAGE = "dataset-fashion-mnist"
DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
MIRROR = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"

# file -> (shape, MD5 of the upstream .gz, MD5 of the Debian package's re-compressed .gz)
FILES: dict[str, tuple[tuple[int, ...], str, str]] = {
    "train-images-idx3-ubyte.gz": ((60000, 28, 28), "8d4fb7e6c68d591d4c3dfef9ec88bf0d", "cf8536b0aa1a6ac5fa3f23001093305c"),
    "train-labels-idx1-ubyte.gz": ((60000,), "25c81989df183df01b3e8a0aad5dffbe", "10bea18fdb374794d4bb42e356e600c9"),
    "t10k-images-idx3-ubyte.gz": ((10000, 28, 28), "bef4ecab320f06d8554ea6380940ec79", "f78720b4224f21cce2f2ccf2d7a94c9a"),
    "t10k-labels-idx1-ubyte.gz": ((10000,), "bb300cfdad3c16e7a12a480ee83cd310", "0d30e22e447f3c33dab9ed536400ac01"),
}


def _complete(folder: Path) -> bool:
    return all((folder / f).is_file() for f in FILES)


def _debian_dir() -> Path:
    """Where the Debian package put the files (asks dpkg; falls back to the usual folder)."""
    if shutil.which("dpkg"):
        try:
            out = subprocess.run(["dpkg", "-L", DEBIAN_PACKAGE], capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            return DEBIAN_DIR
        for line in out.stdout.splitlines():
            if line.endswith("/train-images-idx3-ubyte.gz"):
                return Path(line).parent
    return DEBIAN_DIR


def candidate_dirs(data_dir: str | os.PathLike[str] | None) -> list[Path]:
    """Every folder `find` looks in, in order."""
    return [d for d, _ in _labelled_dirs(data_dir)]


def _labelled_dirs(data_dir: str | os.PathLike[str] | None) -> list[tuple[Path, str]]:
    dirs: list[tuple[Path, str]] = []
    for root, label in labelled_roots(data_dir):
        dirs += [(root, label), (root / NAME, label)]
    return dirs + [(_debian_dir(), f"Debian package {DEBIAN_PACKAGE}")]


def find(data_dir: str | os.PathLike[str] | None = None) -> Path | None:
    return next((d for d in candidate_dirs(data_dir) if _complete(d)), None)


def can_apt_install() -> bool:
    """Root on Debian with apt-get: the package manager may install the data set."""
    return Path("/etc/debian_version").exists() and os.geteuid() == 0 and shutil.which("apt-get") is not None


def _apt_install() -> str | None:
    """Install the Debian package; returns None on success, else why it failed."""
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    cmd = ["apt-get", "install", "-y", "-q", DEBIAN_PACKAGE]
    try:
        if subprocess.run(cmd, env=env, capture_output=True, timeout=600).returncode == 0:
            return None
        # A stale package index is the usual reason: refresh it once and retry.
        subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True, timeout=600)
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    except (OSError, subprocess.TimeoutExpired) as e:
        return str(e)
    return None if done.returncode == 0 else (done.stderr.strip().splitlines() or ["failed"])[-1]


def fetch(data_dir: str | os.PathLike[str] | None = None) -> Path:
    """Make sure the four files exist somewhere and return that folder."""
    found = find(data_dir)
    if found:
        return found
    tried = [f"{d} ({label})" for d, label in _labelled_dirs(data_dir)]
    if can_apt_install():
        why = _apt_install()
        if why is None and (found := find(data_dir)):
            return found
        tried.append(f"apt-get install {DEBIAN_PACKAGE} ({why or 'files not found after install'})")
    else:
        tried.append(f"apt-get install {DEBIAN_PACKAGE} (needs root on Debian)")
    target = cache_dir() / NAME
    try:
        for fname, (_, *md5s) in FILES.items():
            if not (target / fname).is_file():
                download(MIRROR + fname, target / fname, tuple(md5s))
        return target
    except DataError as e:
        tried.append(f"download ({e})")
    raise not_found(NAME, tried, data_dir)


def load_raw(data_dir: str | os.PathLike[str] | None = None) -> RawData:
    """Parse and verify the four files (checksums, shapes, labels) into tensors."""
    folder = fetch(data_dir)
    arrays: dict[str, np.ndarray] = {}
    for fname, (shape, *md5s) in FILES.items():
        path = folder / fname
        if md5sum(path) not in md5s:
            raise DataError(f"{path}: checksum mismatch (corrupt, truncated or not the official file)")
        arr = read_idx(path)
        if arr.shape != shape:
            raise DataError(f"{path}: shape {arr.shape}, expected {shape}")
        arrays[fname] = arr

    def images(f: str) -> torch.Tensor:
        return torch.from_numpy(arrays[f].copy()).unsqueeze(1)  # copy: frombuffer arrays are read-only

    def labels(f: str) -> torch.Tensor:
        return torch.from_numpy(arrays[f].astype(np.int64))

    return RawData(images("train-images-idx3-ubyte.gz"), labels("train-labels-idx1-ubyte.gz"),
                   images("t10k-images-idx3-ubyte.gz"), labels("t10k-labels-idx1-ubyte.gz"), source=str(folder))
