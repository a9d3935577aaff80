"""The ImageNet-layout loader on a tiny folder of real JPEG files: layout, splits, the transforms
against their definition, workers, and bad data (one-line errors, counted skips)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

pytest.importorskip("torchvision")

from imagefolder_toy import write_toy_imagenet  # noqa: E402
from torchvision.io import decode_image, read_file  # noqa: E402
from torchvision.transforms.v2 import functional as F  # noqa: E402

from prunebench.cli import main  # noqa: E402
from prunebench.data import batches, load  # noqa: E402
from prunebench.data.imagefolder import CROP_RATIO, CROP_SCALE, crop_params, resize_size, skipped_files, transform  # noqa: E402
from prunebench.errors import DataError  # noqa: E402


@pytest.fixture(scope="module")
def toy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_toy_imagenet(tmp_path_factory.mktemp("imagenet"), classes=4, train=6, val=2)


@pytest.fixture(autouse=True)
def _no_workers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PRUNEBENCH_LOADER_WORKERS", "0")


def test_layout_splits_and_classes(toy: Path) -> None:
    s = load("imagenet", data_dir=toy, val_size=8, input_size=56)
    assert (s.info.num_classes, s.info.input_size, s.info.train_size, s.info.test_size) == (4, 56, 24, 8)
    assert s.train_x.shape == (16, 3, 56, 56) and len(s.test_y) == 8
    assert torch.bincount(s.val_y).tolist() == [2, 2, 2, 2]  # class-balanced
    assert not set(s.val_index.tolist()) & set(s.train_index.tolist())
    again = load("imagenet", data_dir=toy, val_size=8, input_size=56)
    other = load("imagenet", data_dir=toy, val_size=8, input_size=56, split_seed=1)
    assert again.split_hash == s.split_hash != other.split_hash  # seeded
    two = load("imagenet", data_dir=toy, val_size=2, classes=2, train_subset=4, input_size=56)
    assert two.info.num_classes == 2 and set(two.test_y.tolist()) == {0, 1}
    assert torch.bincount(two.train_y).tolist() == [2, 2]
    assert all("/n00000000/" in f or "/n00000001/" in f for f in two.train_x.files)  # the first two, sorted


def test_eval_view_is_resize_then_centre_crop_then_normalised(toy: Path) -> None:
    s = load("imagenet", data_dir=toy, val_size=0, input_size=56)
    assert resize_size(224) == 256 and resize_size(56) == 64
    xb, yb = next(batches(s.test_x, s.test_y, info=s.info, batch_size=4, train=False))
    for k in range(4):
        img = decode_image(read_file(s.test_x.files[k]))
        short = min(img.shape[1:])
        want = F.center_crop(F.resize(img, [64], antialias=True), [56, 56])
        assert short == 64 and want.shape == (3, 56, 56)
        mean, std = torch.tensor(s.info.mean).view(3, 1, 1), torch.tensor(s.info.std).view(3, 1, 1)
        torch.testing.assert_close(xb[k], (want.float() / 255 - mean) / std)
    assert yb.tolist() == s.test_y[:4].tolist()


def test_random_resized_crop_stays_in_its_area_and_aspect_ranges() -> None:
    g = torch.Generator().manual_seed(0)
    areas, ratios = [], []
    for _ in range(600):
        top, left, h, w = crop_params(64, 80, g)
        assert 0 <= top and top + h <= 64 and 0 <= left and left + w <= 80
        areas.append(h * w / (64 * 80))
        ratios.append(w / h)
    # Rounding to whole pixels moves each side by at most half a pixel.
    assert CROP_SCALE[0] * 0.8 <= min(areas) < 0.15 and 0.85 < max(areas) <= CROP_SCALE[1]
    assert CROP_RATIO[0] * 0.9 <= min(ratios) < 0.8 and 1.25 < max(ratios) <= CROP_RATIO[1] * 1.1
    # Log-uniform aspect ratio: about half of the draws are wider than tall.
    assert 0.35 < sum(math.log(r) > 0 for r in ratios) / len(ratios) < 0.65


def test_crop_fallback_is_the_centre_clamped_to_the_ratio_range() -> None:
    # No draw fits a 3 x 300 strip (every crop of >= 8% of its area is taller than 3 rows within
    # the ratio range): the fallback is the whole height, as wide as 4/3 allows, centred.
    g = torch.Generator().manual_seed(0)
    assert crop_params(3, 300, g) == (0, 148, 3, 4)
    assert crop_params(300, 3, g) == (148, 0, 4, 3)


def test_training_view_is_the_drawn_crop_then_a_fair_flip(toy: Path) -> None:
    img = decode_image(read_file(str(next((toy / "train" / "n00000001").iterdir()))))
    flips = 0
    for seed in range(40):
        g = torch.Generator().manual_seed(seed)
        top, left, h, w = crop_params(img.shape[1], img.shape[2], g)
        flipped = torch.rand(1, generator=g).item() < 0.5
        want = F.resized_crop(img, top, left, h, w, [56, 56], antialias=True)
        got = transform(img, 56, True, seed)
        assert torch.equal(got, F.horizontal_flip(want) if flipped else want)
        flips += flipped
    assert 10 <= flips <= 30


def test_training_batches_are_seeded_and_worker_independent(toy: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    s = load("imagenet", data_dir=toy, val_size=0, input_size=56)

    def epoch() -> list[torch.Tensor]:
        g = torch.Generator().manual_seed(3)
        return [torch.cat([xb.flatten(), yb.float()]) for xb, yb in
                batches(s.train_x, s.train_y, info=s.info, batch_size=10, train=True, generator=g)]

    inline = epoch()
    monkeypatch.setenv("PRUNEBENCH_LOADER_WORKERS", "2")
    pooled = epoch()
    assert [len(b) for b in inline] == [len(b) for b in pooled] == [10 * 3 * 56 * 56 + 10] * 2 + [4 * 3 * 56 * 56 + 4]
    assert all(torch.equal(a, b) for a, b in zip(inline, pooled))
    g = torch.Generator().manual_seed(4)
    other = next(batches(s.train_x, s.train_y, info=s.info, batch_size=10, train=True, generator=g))[0]
    assert not torch.equal(other.flatten(), inline[0][: other.numel()])


def test_a_corrupt_jpeg_is_skipped_counted_and_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = write_toy_imagenet(tmp_path, classes=2, train=3, val=1)
    bad = root / "train" / "n00000000" / "n00000000_1.JPEG"
    bad.write_bytes(b"\xff\xd8\xff\xe0 this is not a JPEG")
    s = load("imagenet", data_dir=root, val_size=0, input_size=56)
    got = [yb for _, yb in batches(s.train_x, s.train_y, info=s.info, batch_size=4, train=False)]
    assert sum(len(y) for y in got) == 5 and str(bad) in skipped_files()
    assert str(bad) in capsys.readouterr().err


def test_bad_layouts_are_one_line_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = write_toy_imagenet(tmp_path / "ok", classes=2, train=2, val=1)
    (root / "train" / "n00000009").mkdir()
    with pytest.raises(DataError, match=r"n00000009: empty class folder"):
        load("imagenet", data_dir=root, val_size=0)
    (root / "train" / "n00000009").rmdir()
    (root / "val" / "n00000000" / "n00000000_0.JPEG").unlink()
    (root / "val" / "n00000000").rmdir()
    (root / "val" / "n00000001" / "n00000001_0.JPEG").unlink()
    (root / "val" / "n00000001").rmdir()
    (root / "val").rmdir()
    assert main(["data", "info", "imagenet", "--data-dir", str(root)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "no val/ folder" in err
    assert main(["data", "info", "imagenet", "--data-dir", str(tmp_path / "nowhere")]) == 2
    assert "imagenet not found" in capsys.readouterr().err


def test_data_info_on_a_standard_layout(toy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["data", "info", "imagenet", "--data-dir", str(toy), "--input-size", "56"]) == 0
    out = capsys.readouterr().out
    assert "classes        4" in out and "resize 64, centre crop 56" in out and "3 x 56 x 56" in out
