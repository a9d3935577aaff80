"""Checkpoints carry checksums, and a checkpoint's claims are checked before anything is built:
a flipped byte, a spec far beyond its weights, an absurd header, a state file of the wrong shape."""

from __future__ import annotations

import hashlib
import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from trainkit import TINY, digits, first_conv_mask, tiny_model

from prunebench.errors import CheckpointError
from prunebench.models import VGGSpec
from prunebench.train import Recipe, load_model, save_model, train
from prunebench.train.checkpoint import CHECKSUMS_FILE, read_torch_state, torch_bytes, write_dir
from prunebench.train.state import STATE_DIR, STATE_FILE, read_train_state


def _one_line(err: pytest.ExceptionInfo[CheckpointError], *parts: str) -> str:
    msg = str(err.value)
    assert "\n" not in msg and all(p in msg for p in parts), msg
    return msg


def _flip(path: Path, at: int) -> None:
    data = bytearray(path.read_bytes())
    data[at % len(data)] ^= 0x01
    stat = path.stat()
    path.write_bytes(bytes(data))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # same size and time: only the bytes tell


def _reseal(folder: Path) -> None:
    """Rewrite checksums.json for the folder's files: a file that is *valid* but says the wrong thing."""
    sums = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.iterdir() if p.name != CHECKSUMS_FILE}
    (folder / CHECKSUMS_FILE).write_text(json.dumps(sums))


@pytest.mark.parametrize("name", ["weights.safetensors", "masks.safetensors", "spec.json", "meta.json"])
def test_a_flipped_bit_in_any_file_is_a_checksum_mismatch(tmp_path: Path, name: str) -> None:
    model = tiny_model()
    folder = save_model(tmp_path / "ck", model, masks=first_conv_mask(model), meta={"epoch": 3})
    size = (folder / name).stat().st_size
    _flip(folder / name, size - 3)  # inside the tensor data for the weights: still a valid safetensors file
    with pytest.raises(CheckpointError) as err:
        load_model(folder)
    _one_line(err, f"{name}: checksum mismatch (file damaged?)")


def test_a_flipped_bit_in_the_train_state_is_caught_and_an_unlisted_file_refused(tmp_path: Path) -> None:
    write_dir(tmp_path / "state", {"train_state.pt": torch_bytes({"next_epoch": 1})})
    assert read_torch_state(tmp_path / "state" / "train_state.pt") == {"next_epoch": 1}
    _flip(tmp_path / "state" / "train_state.pt", 200)
    with pytest.raises(CheckpointError) as err:
        read_torch_state(tmp_path / "state" / "train_state.pt")
    _one_line(err, "train_state.pt: checksum mismatch")
    folder = save_model(tmp_path / "ck", tiny_model())
    (folder / "masks.safetensors").write_bytes((folder / "weights.safetensors").read_bytes())
    with pytest.raises(CheckpointError) as err:
        load_model(folder)
    _one_line(err, "masks.safetensors: not listed in checksums.json")


def test_a_checkpoint_written_before_checksums_still_loads(tmp_path: Path) -> None:
    model = tiny_model()
    folder = save_model(tmp_path / "ck", model)
    (folder / CHECKSUMS_FILE).unlink()
    loaded, _, _ = load_model(folder)
    assert all(torch.equal(v, loaded.state_dict()[k]) for k, v in model.state_dict().items())


def _builds_outside_meta(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record every real (non-meta) build of a VGG spec."""
    real: list[str] = []
    original = VGGSpec.build

    def spy(self: VGGSpec) -> torch.nn.Module:
        if torch.empty(0).device.type != "meta":
            real.append(self.label)
        return original(self)

    monkeypatch.setattr(VGGSpec, "build", spy)
    return real


@pytest.mark.parametrize(("change", "needle"), [
    ({"cfg": [8, "M", 10_000_000]}, "cfg = 10000000 is far beyond"),
    ({"num_classes": 5_000_000}, "num_classes = 5000000 is far beyond"),
    ({"input_size": 1_000_000}, "input_size 1000000 is beyond"),
    ({"cfg": [4, "M", 16]}, "does not match the architecture"),  # plausible, but not these weights
])  # fmt: skip
def test_a_spec_is_checked_against_the_weights_header_before_building(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, change: dict[str, object], needle: str
) -> None:
    folder = save_model(tmp_path / "ck", tiny_model())
    spec = {**TINY.to_dict(), **change}
    (folder / "spec.json").write_text(json.dumps(spec))
    _reseal(folder)  # checksums match: only the check against the weights can refuse it
    real = _builds_outside_meta(monkeypatch)
    with pytest.raises(CheckpointError) as err:
        load_model(folder)
    _one_line(err, needle)
    assert real == []  # refused without allocating the model


def test_an_absurd_safetensors_header_length_is_refused_without_reading_it(tmp_path: Path) -> None:
    folder = save_model(tmp_path / "ck", tiny_model())
    data = (folder / "weights.safetensors").read_bytes()
    (folder / "weights.safetensors").write_bytes(struct.pack("<Q", 1 << 40) + data[8:])
    _reseal(folder)
    with pytest.raises(CheckpointError) as err:
        load_model(folder)
    _one_line(err, "weights.safetensors: not a valid safetensors file (header length 1099511627776")


RECIPE = Recipe(epochs=2, lr=0.05, precision="fp32")


@pytest.fixture(scope="module")
def state_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("run")
    train(tiny_model(), digits(), RECIPE, out, seed=0, progress=False)
    return out / STATE_DIR


@pytest.mark.parametrize(("mangle", "needle"), [
    (lambda s: [s], "a list, not a dict"),
    (lambda s: {k: v for k, v in s.items() if k != "rng"}, "missing rng"),
    (lambda s: {**s, "next_epoch": "1"}, "next_epoch should be a count, got str"),
    (lambda s: {**s, "history": {"0": 1}}, "history should be a list of dicts"),
    (lambda s: {**s, "optimizer": [1, 2]}, "optimizer should be an optimizer state"),
    (lambda s: {**s, "rng": {**s["rng"], "torch": torch.zeros(3)}}, "rng should be RNG states"),
    (lambda s: {**s, "elapsed_s": float("nan")}, "elapsed_s should be a number"),
])  # fmt: skip
def test_a_train_state_of_the_wrong_structure_is_one_line(tmp_path: Path, state_folder: Path, mangle: object, needle: str) -> None:
    state = read_train_state(state_folder / STATE_FILE)
    path = tmp_path / STATE_FILE
    path.write_bytes(torch_bytes(mangle(state)))  # type: ignore[operator]
    with pytest.raises(CheckpointError) as err:
        read_train_state(path)
    _one_line(err, str(path), needle)


def test_resuming_from_a_resealed_bogus_state_is_one_line_not_a_traceback(tmp_path: Path, state_folder: Path) -> None:
    out = tmp_path / "run"
    (out / STATE_DIR).mkdir(parents=True)
    for f in state_folder.iterdir():
        (out / STATE_DIR / f.name).write_bytes(f.read_bytes())
    state = read_train_state(state_folder / STATE_FILE)
    state["optimizer"] = {"state": {}, "param_groups": [{"params": [0]}]}  # right shape, wrong contents
    (out / STATE_DIR / STATE_FILE).write_bytes(torch_bytes(state))
    _reseal(out / STATE_DIR)
    with pytest.raises(CheckpointError) as err:
        train(tiny_model(), digits(), RECIPE, out, seed=0, progress=False)
    _one_line(err, "train_state.pt: not a usable training state")


def test_temporary_names_are_per_process_and_dead_writers_leftovers_go(tmp_path: Path) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (tmp_path / f".ck.tmp{dead.pid}").mkdir()  # a dead writer's half-written folder
    (tmp_path / f".ck.tmp{os.getppid()}").mkdir()  # a live process's: not ours to touch
    save_model(tmp_path / "ck", tiny_model())
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["ck", f".ck.tmp{os.getppid()}"])
