"""Checkpoint folders: round trip, atomic swap, and one-line refusals of bad or unsafe files."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch

from trainkit import TINY, first_conv_mask, tiny_model

from prunebench.errors import CheckpointError
from prunebench.models import VGGSpec, build_model
from prunebench.train import load_model, save_model
from prunebench.train.checkpoint import read_torch_state, torch_bytes, write_dir


class _Payload:
    """Unpickling this would create the marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (Path.touch, (self.marker,))  # type: ignore[return-value]


def _unsealed(folder: Path) -> Path:
    """Drop the folder's checksums (as written before they existed), so the checks below them are tested;
    tests/train/test_checkpoint_integrity.py tests that the checksums alone catch each of these."""
    (folder / "checksums.json").unlink()
    return folder


def _assert_one_line(err: pytest.ExceptionInfo[CheckpointError], name: str) -> None:
    msg = str(err.value)
    assert "\n" not in msg and name in msg, msg


def test_round_trip_with_masks_and_meta(tmp_path: Path) -> None:
    model = tiny_model()
    masks = first_conv_mask(model)
    save_model(tmp_path / "ck", model, masks=masks, meta={"epoch": 3})
    loaded, loaded_masks, meta = load_model(tmp_path / "ck", expected_spec=TINY)
    assert loaded.spec == TINY and meta == {"epoch": 3}
    for k, v in model.state_dict().items():
        assert torch.equal(v, loaded.state_dict()[k])
    assert loaded_masks is not None and all(torch.equal(masks[k], loaded_masks[k]) for k in masks)
    assert sorted(p.name for p in (tmp_path).iterdir()) == ["ck"]  # no temp folders left behind


def test_write_dir_replaces_the_whole_folder(tmp_path: Path) -> None:
    write_dir(tmp_path / "d", {"a": b"1", "b": b"2"})
    write_dir(tmp_path / "d", {"a": b"3"})
    assert sorted(p.name for p in (tmp_path / "d").iterdir()) == ["a", "checksums.json"]
    assert (tmp_path / "d" / "a").read_bytes() == b"3"


def test_interrupted_swap_recovers_previous_folder(tmp_path: Path) -> None:
    save_model(tmp_path / "ck", tiny_model())
    (tmp_path / "ck").rename(tmp_path / ".ck.old")  # crash between the two renames of a swap
    model, _, _ = load_model(tmp_path / "ck")
    assert model.spec == TINY


def test_missing_folder_and_file(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError) as err:
        load_model(tmp_path / "nope")
    _assert_one_line(err, "nope")
    save_model(tmp_path / "ck", tiny_model())
    (tmp_path / "ck" / "weights.safetensors").unlink()
    with pytest.raises(CheckpointError) as err:
        load_model(tmp_path / "ck")
    _assert_one_line(err, "weights.safetensors")


def test_truncated_weights(tmp_path: Path) -> None:
    path = _unsealed(save_model(tmp_path / "ck", tiny_model())) / "weights.safetensors"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(CheckpointError) as err:
        load_model(tmp_path / "ck")
    _assert_one_line(err, "weights.safetensors")


def test_corrupt_spec(tmp_path: Path) -> None:
    _unsealed(save_model(tmp_path / "ck", tiny_model()))
    (tmp_path / "ck" / "spec.json").write_text('{"family": "vgg", "cfg": [0]')
    with pytest.raises(CheckpointError) as err:
        load_model(tmp_path / "ck")
    _assert_one_line(err, "spec.json")


def test_weights_from_another_architecture(tmp_path: Path) -> None:
    _unsealed(save_model(tmp_path / "ck", tiny_model()))
    other = build_model(VGGSpec(cfg=(4, "M", 16), num_classes=10, in_channels=1, input_size=8))
    save_model(tmp_path / "other", other)
    (tmp_path / "other" / "spec.json").replace(tmp_path / "ck" / "spec.json")
    with pytest.raises(CheckpointError) as err:
        load_model(tmp_path / "ck")
    _assert_one_line(err, "weights.safetensors")
    assert "features.0.weight" in str(err.value)


def test_expected_spec_mismatch(tmp_path: Path) -> None:
    save_model(tmp_path / "ck", tiny_model())
    with pytest.raises(CheckpointError) as err:
        load_model(tmp_path / "ck", expected_spec=TINY.replace(num_classes=3))
    _assert_one_line(err, "spec.json")


@pytest.mark.parametrize("name", ["weights.safetensors", "masks.safetensors"])
def test_pickled_tensor_file_is_refused_and_payload_never_runs(tmp_path: Path, name: str) -> None:
    _unsealed(save_model(tmp_path / "ck", tiny_model()))
    marker = tmp_path / "pwned"
    (tmp_path / "ck" / name).write_bytes(pickle.dumps(_Payload(marker)))
    with pytest.raises(CheckpointError) as err:
        load_model(tmp_path / "ck")
    _assert_one_line(err, name)
    assert not marker.exists()


def test_pickled_train_state_is_refused_and_payload_never_runs(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    for i, data in enumerate([pickle.dumps(_Payload(marker)), torch_bytes({"x": 1})[:40]]):
        path = tmp_path / f"{i}" / "train_state.pt"
        path.parent.mkdir()
        path.write_bytes(data)
        with pytest.raises(CheckpointError) as err:
            read_torch_state(path)
        _assert_one_line(err, "train_state.pt")
    assert not marker.exists()
    # what the trainer does store (tensors and primitives) loads with weights_only=True
    (tmp_path / "ok.pt").write_bytes(torch_bytes({"t": torch.ones(2), "l": [1, 2.0, None, "s"]}))
    assert read_torch_state(tmp_path / "ok.pt")["l"] == [1, 2.0, None, "s"]


def test_torch_save_of_full_model_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "train_state.pt"
    torch.save(tiny_model(), path)  # the unsafe "save the whole module" habit
    with pytest.raises(CheckpointError) as err:
        read_torch_state(path)
    _assert_one_line(err, "train_state.pt")
