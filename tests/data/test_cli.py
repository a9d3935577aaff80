"""`prunebench data list|info|fetch` through the real CLI entry point."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from prunebench.cli import main
from prunebench.data import fashion_mnist


def test_list(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["data", "list"]) == 0
    out = capsys.readouterr().out
    assert [line.split()[0] for line in out.splitlines()] == ["fashion-mnist", "digits", "cifar10", "cifar100", "imagenet"]


def test_info_text_and_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["data", "info", "digits", "--val-size", "100", "--train-subset", "300"]) == 0
    out = capsys.readouterr().out
    assert "train 300, val 100, test 300" in out and "scikit-learn" in out and "1 x 8 x 8" in out
    assert main(["data", "info", "digits", "--json", "--val-size", "0"]) == 0
    facts = json.loads(capsys.readouterr().out)
    assert facts["splits"] == {"train": 1497, "val": 0, "test": 300} and facts["mean"] == [0.3054]


def test_fashion_mnist_info_says_where(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["data", "info", "fashion-mnist"]) == 0
    out = capsys.readouterr().out
    assert f"found in       {fashion_mnist.find()}" in out and "train 55000, val 5000, test 10000" in out


def test_corrupt_file_is_one_line_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    real = fashion_mnist.find()
    assert real
    for f in fashion_mnist.FILES:
        (tmp_path / f).symlink_to(real / f)
    (tmp_path / "t10k-images-idx3-ubyte.gz").unlink()
    (tmp_path / "t10k-images-idx3-ubyte.gz").write_bytes(b"\x1f\x8b\x08garbage")
    assert main(["data", "info", "fashion-mnist", "--data-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "t10k-images-idx3-ubyte.gz" in err and "Traceback" not in err


def test_fetch_digits(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["data", "fetch", "digits"]) == 0
    assert "digits: present" in capsys.readouterr().out
