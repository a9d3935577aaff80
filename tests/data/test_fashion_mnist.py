"""Fashion-MNIST: search order, checksums, idx parsing, download and the all-failed message."""

from __future__ import annotations

import gzip
import os
import struct
from pathlib import Path

import pytest
import torch

from prunebench.data import fashion_mnist, load, load_raw
from prunebench.data.idx import read_idx
from prunebench.errors import DataError


@pytest.fixture(scope="module")
def real_dir() -> Path:
    found = fashion_mnist.find()
    assert found, "Fashion-MNIST missing: run `make data`"
    return found


@pytest.fixture
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Empty $PRUNEBENCH_DATA and user cache, no Debian folder, no apt: only what the test provides."""
    for d in ("data", "cache"):
        (tmp_path / d).mkdir()
    monkeypatch.setenv("PRUNEBENCH_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(fashion_mnist, "_debian_dir", lambda: tmp_path / "no-debian")
    monkeypatch.setattr(fashion_mnist, "can_apt_install", lambda: False)
    monkeypatch.setattr(fashion_mnist, "MIRROR", (tmp_path / "mirror").as_uri() + "/")
    return tmp_path


def _link_all(src: Path, dst: Path) -> None:
    dst.mkdir(parents=True, exist_ok=True)
    for f in fashion_mnist.FILES:
        (dst / f).symlink_to(src / f)


def test_real_files_load(real_dir: Path) -> None:
    s = load("fashion-mnist", val_size=1000)
    assert s.train_x.shape == (59000, 1, 28, 28) and s.test_x.shape == (10000, 1, 28, 28)
    assert torch.bincount(s.val_y).tolist() == [100] * 10
    assert int(s.train_y.max()) == 9 and s.train_x.dtype == torch.uint8
    assert load_raw("fashion-mnist") is load_raw("fashion-mnist")  # parsed once per process


def test_env_subfolder_is_searched_first(real_dir: Path, isolated: Path) -> None:
    _link_all(real_dir, isolated / "data" / "fashion-mnist")
    assert fashion_mnist.find() == isolated / "data" / "fashion-mnist"
    assert load_raw("fashion-mnist").source == str(isolated / "data" / "fashion-mnist")


def test_truncated_file_names_the_file(real_dir: Path, isolated: Path) -> None:
    _link_all(real_dir, isolated / "data")
    bad = isolated / "data" / "train-labels-idx1-ubyte.gz"
    bad.unlink()
    bad.write_bytes((real_dir / bad.name).read_bytes()[:1000])
    with pytest.raises(DataError, match="train-labels-idx1-ubyte.gz: checksum mismatch"):
        load_raw("fashion-mnist")


def test_download_from_mirror_verifies_checksums(real_dir: Path, isolated: Path) -> None:
    _link_all(real_dir, isolated / "mirror")
    folder = fashion_mnist.fetch()
    assert folder == isolated / "cache" / "prunebench" / "fashion-mnist"
    assert sorted(p.name for p in folder.iterdir()) == sorted(fashion_mnist.FILES)  # no leftover .part files


def test_corrupt_download_is_refused_and_everything_tried_is_named(real_dir: Path, isolated: Path) -> None:
    _link_all(real_dir, isolated / "mirror")
    (isolated / "mirror" / "t10k-labels-idx1-ubyte.gz").unlink()
    (isolated / "mirror" / "t10k-labels-idx1-ubyte.gz").write_bytes(b"not the file")
    with pytest.raises(DataError) as e:
        fashion_mnist.fetch()
    msg = str(e.value)
    assert "\n" not in msg and "checksum mismatch" in msg and "apt-get install dataset-fashion-mnist" in msg
    for place in (isolated / "data", isolated / "cache" / "prunebench", isolated / "no-debian"):
        assert str(place) in msg
    assert not (isolated / "cache" / "prunebench" / "fashion-mnist" / "t10k-labels-idx1-ubyte.gz").exists()


def test_apt_install_retries_after_update(real_dir: Path, isolated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A stand-in apt-get: `install` fails until `update` ran, then "installs" the package's files.
    debian = isolated / "debian"
    fake = isolated / "bin" / "apt-get"
    fake.parent.mkdir()
    links = " ".join(f"ln -s {real_dir / f} {debian / f};" for f in fashion_mnist.FILES)
    fake.write_text(f"""#!/bin/sh
echo "$@" >> {isolated / 'calls'}
case "$1" in
  update) touch {isolated / 'updated'} ;;
  install) [ -e {isolated / 'updated'} ] || exit 100; mkdir -p {debian}; {links} ;;
esac
""")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake.parent}:{os.environ['PATH']}")
    monkeypatch.setattr(fashion_mnist, "_debian_dir", lambda: debian)
    monkeypatch.setattr(fashion_mnist, "can_apt_install", lambda: True)
    assert fashion_mnist.fetch() == debian
    calls = (isolated / "calls").read_text().split("\n")
    assert [c.split()[0] for c in calls if c] == ["install", "update", "install"]
    assert "dataset-fashion-mnist" in calls[0]


def _idx(path: Path, payload: bytes) -> Path:
    with gzip.open(path, "wb") as f:
        f.write(payload)
    return path


def test_idx_parser(tmp_path: Path) -> None:
    ok = _idx(tmp_path / "ok.gz", b"\x00\x00\x08\x03" + struct.pack(">3I", 2, 2, 3) + bytes(range(12)))
    assert read_idx(ok).shape == (2, 2, 3) and read_idx(ok)[1, 1, 2] == 11
    bad_magic = _idx(tmp_path / "magic.gz", b"\x00\x00\x0d\x01" + struct.pack(">I", 1) + b"\x00")
    with pytest.raises(DataError, match="magic.gz: .*magic"):
        read_idx(bad_magic)
    short = _idx(tmp_path / "short.gz", b"\x00\x00\x08\x01" + struct.pack(">I", 5) + b"\x00\x01")
    with pytest.raises(DataError, match="short.gz: .*declares"):
        read_idx(short)
    cut = tmp_path / "cut.gz"
    cut.write_bytes(ok.read_bytes()[:-6])
    with pytest.raises(DataError, match="cut.gz: corrupt or truncated"):
        read_idx(cut)
