"""`[data] crop_pad` and `flip`: a preset may replace a data set's training augmentation.

They change what the large model is trained on, so they join stage identities; a preset that
does not set them keeps the identities it had before the keys existed."""

from __future__ import annotations

import tomllib

import pytest
import torch
from kit import tiny_preset

from prunebench.cli import main
from prunebench.data import batches, load
from prunebench.errors import DataError
from prunebench.experiment import expand, parse_preset


def _ids(text: str) -> list[str]:
    return [s.id for s in expand(parse_preset(tomllib.loads(text), "t.toml")).stages]


def test_unset_keys_keep_identities_and_set_keys_change_them() -> None:
    base = tiny_preset()
    assert _ids(base) == _ids(tiny_preset(data_extra=()))
    no_crop, flips = _ids(tiny_preset(data_extra=["crop_pad = 0"])), _ids(tiny_preset(data_extra=["flip = true"]))
    assert not set(no_crop) & set(_ids(base)) and not set(flips) & set(_ids(base)) and not set(no_crop) & set(flips)


def test_loaded_splits_carry_the_augmentation_and_batches_follow_it() -> None:
    s = load("digits", crop_pad=0, flip=True)
    assert (s.info.pad, s.info.flip) == (0, True)
    assert (load("digits").info.pad, load("digits").info.flip) == (1, False)  # the data set's own
    x, y = s.train_x[:64], s.train_y[:64]
    gen = torch.Generator().manual_seed(0)
    (xb, _), = list(batches(x, y, info=s.info, batch_size=64, train=True, generator=gen))
    plain = (x.float() / 255 - s.info.mean[0]) / s.info.std[0]
    # no crop: every (shuffled) image is one of the originals or its mirror, and with 64 images both occur
    def found(ref: torch.Tensor) -> torch.Tensor:
        return (xb.flatten(1)[:, None] - ref.flatten(1)[None]).abs().amax(-1).lt(1e-5).any(1)

    same, mirrored = found(plain), found(plain.flip(-1))
    assert bool((same | mirrored).all()) and bool(same.any()) and bool((mirrored & ~same).any())


def test_a_crop_pad_as_large_as_the_image_is_refused() -> None:
    with pytest.raises(DataError, match="crop_pad must be in"):
        load("digits", crop_pad=8)


@pytest.mark.parametrize("line, message", [
    ("crop_pad = 28", "crop_pad must be in [0, 27]"),
    ("crop_pad = -1", "crop_pad"),
    ('flip = "yes"', "flip"),
])  # fmt: skip
def test_bad_values_are_one_line_errors(tmp_path, capsys, line: str, message: str) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "p.toml"
    path.write_text(tiny_preset(data_extra=[line]))
    assert main(["run", str(path), "--dry-run", "--out", str(tmp_path / "x")]) != 0
    err = capsys.readouterr().err.strip()
    assert message in err and "Traceback" not in err and len(err.splitlines()) == 1
