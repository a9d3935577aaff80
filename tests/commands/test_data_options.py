"""Every command that loads data takes the same `--data-dir`, and a data set that is nowhere gets one
message naming every place searched, `$PRUNEBENCH_DATA` included (set or not)."""

from __future__ import annotations

from pathlib import Path

import pytest
from kit import tiny_preset

from prunebench.cli import main
from prunebench.data import cifar, fashion_mnist, loader
from prunebench.errors import DataError
from prunebench.experiment import stages
from prunebench.models import variant
from prunebench.train import save_model

TINY = tiny_preset("tiny-data", quiet=False, arms=("unpruned",))


@pytest.fixture
def nowhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No data anywhere: an empty user cache, no $PRUNEBENCH_DATA, no Debian package, no network.
    Returns an empty folder to pass as --data-dir."""
    real = fashion_mnist.find()
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("PRUNEBENCH_DATA", raising=False)
    monkeypatch.setattr(fashion_mnist, "_debian_dir", lambda: tmp_path / "no-debian")
    monkeypatch.setattr(fashion_mnist, "can_apt_install", lambda: False)

    def offline(url: str, dest: Path, md5s: tuple[str, ...]) -> None:
        raise DataError(f"{url}: download failed (offline in this test)")

    monkeypatch.setattr(fashion_mnist, "download", offline)
    monkeypatch.setattr(cifar, "download", offline)
    monkeypatch.setattr(loader, "_CACHE", {})
    monkeypatch.setattr(stages, "_SPLITS", {})
    empty = tmp_path / "empty"
    empty.mkdir()
    # the real files, for the commands that should find them through --data-dir alone
    good = tmp_path / "good"
    good.mkdir()
    if real is not None:
        for name in fashion_mnist.FILES:
            (good / name).symlink_to(real / name)
    return empty


def _error(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    return err


def test_the_not_found_message_lists_every_place_and_prunebench_data(
    nowhere: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    err = _error(capsys, ["data", "info", "fashion-mnist", "--data-dir", str(nowhere)])
    for place in [f"{nowhere} (--data-dir)", f"{nowhere}/fashion-mnist (--data-dir)", f"{tmp_path}/cache/prunebench (user cache)",
                  f"{tmp_path}/no-debian (Debian package dataset-fashion-mnist)", "$PRUNEBENCH_DATA (not set)",
                  "offline in this test", "pass --data-dir DIR, or set PRUNEBENCH_DATA=DIR"]:  # fmt: skip
        assert place in err, (place, err)
    monkeypatch.setenv("PRUNEBENCH_DATA", str(tmp_path / "env"))
    err = _error(capsys, ["data", "info", "fashion-mnist"])
    assert f"{tmp_path}/env ($PRUNEBENCH_DATA)" in err and "--data-dir (not given)" in err
    err = _error(capsys, ["data", "info", "cifar10", "--data-dir", str(nowhere)])
    assert f"{nowhere} (--data-dir; as cifar-10-batches-py/ or cifar-10-python.tar.gz)" in err
    assert f"{tmp_path}/env ($PRUNEBENCH_DATA;" in err and "PRUNEBENCH_DATA=DIR" in err


def test_every_command_that_loads_data_takes_data_dir(
    nowhere: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    preset = tmp_path / "tiny.toml"
    preset.write_text(TINY)
    ckpt = tmp_path / "ckpt"
    save_model(ckpt, variant("vgg11", fashion_mnist_info(), width_mult=0.125).build())
    data = ["--data-dir", str(nowhere)]
    commands = [
        ["run", str(preset), "--out", str(tmp_path / "exp"), *data],
        ["demo", "--quick", "--out", str(tmp_path / "demo"), *data],
        ["prune", "--method", "l1norm", "--ratio", "0.5", "--checkpoint", str(ckpt), "--out", str(tmp_path / "p"),
         "--dataset", "fashion-mnist", *data],
        ["train", "--arch", "vgg11", "--width-mult", "0.125", "--epochs", "1", "--out", str(tmp_path / "t"), *data],
        ["eval", str(ckpt), "--dataset", "fashion-mnist", *data],
        ["data", "info", "fashion-mnist", *data],
        ["data", "fetch", "fashion-mnist", *data],
    ]  # fmt: skip
    for argv in commands:
        err = _error(capsys, argv)
        assert f"{nowhere} (--data-dir)" in err and "$PRUNEBENCH_DATA (not set)" in err, (argv[0], err)


def fashion_mnist_info() -> object:
    from prunebench.data import dataset_info

    return dataset_info("fashion-mnist")


def test_data_dir_alone_finds_the_data_and_the_dry_run_reads_it(
    nowhere: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = tmp_path / "good"
    if not any(good.iterdir()):
        pytest.skip("Fashion-MNIST is not installed on this machine")
    assert main(["data", "info", "fashion-mnist", "--data-dir", str(good)]) == 0
    assert str(good) in capsys.readouterr().out
    preset = tmp_path / "tiny.toml"
    preset.write_text(TINY)
    assert main(["run", str(preset), "--dry-run"]) == 0  # the data is nowhere: provisional ids, said so
    assert "is not on this machine" in capsys.readouterr().out
    assert main(["run", str(preset), "--dry-run", "--data-dir", str(good)]) == 0
    assert "not on this machine" not in capsys.readouterr().out
