"""Checkpoint folders: safe to write (atomic) and safe to read (no unpickling of code).

A checkpoint folder holds `spec.json` (the architecture), `weights.safetensors`
(the state dict), optionally `masks.safetensors` (parameter name -> bool mask),
`meta.json`, and for a training state `train_state.pt` (read with
`weights_only=True`). A folder is written next to its final place and renamed
into it, so a reader never sees a half-written checkpoint.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import safetensors.torch
import torch
from torch import nn

from prunebench.errors import CheckpointError, PrunebenchError
from prunebench.models.spec import ModelSpec, spec_from_json

SPEC_FILE = "spec.json"
WEIGHTS_FILE = "weights.safetensors"
MASKS_FILE = "masks.safetensors"
META_FILE = "meta.json"

Masks = dict[str, torch.Tensor]


def _oneline(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return (text[0] if text else type(e).__name__)[:200]


# -- writing ---------------------------------------------------------------------------


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write `data` to `path` via a temp file in the same folder, fsync and rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def torch_bytes(obj: Any) -> bytes:
    """`torch.save` into bytes (for objects of tensors and primitives only)."""
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def _old(path: Path) -> Path:
    return path.with_name(f".{path.name}.old")


def recover_dir(path: str | Path) -> Path:
    """Finish an interrupted `write_dir` swap: bring back the previous folder if the new one is missing."""
    path = Path(path)
    if not path.exists() and _old(path).exists():
        os.replace(_old(path), path)
    return path


def write_dir(path: str | Path, files: dict[str, bytes]) -> None:
    """Atomically replace folder `path` with one holding exactly `files`."""
    path = recover_dir(path)
    tmp = path.with_name(f".{path.name}.tmp")
    if tmp.exists():
        shutil.rmtree(tmp)  # leftover of a crashed write
    tmp.mkdir(parents=True)
    for name, data in files.items():
        with open(tmp / name, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    _fsync_dir(tmp)
    if path.exists():
        if _old(path).exists():
            shutil.rmtree(_old(path))
        os.replace(path, _old(path))
    os.replace(tmp, path)
    _fsync_dir(path.parent)
    if _old(path).exists():
        shutil.rmtree(_old(path))


def _spec_of(model: nn.Module) -> ModelSpec:
    spec = getattr(model, "spec", None)
    if not isinstance(spec, ModelSpec):
        raise CheckpointError("cannot save a model without a spec: build it with prunebench.models")
    return spec


def model_files(model: nn.Module, masks: Masks | None = None, meta: dict[str, Any] | None = None) -> dict[str, bytes]:
    """The files of a checkpoint folder for `model`, as bytes."""
    weights = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    files = {
        SPEC_FILE: _spec_of(model).to_json().encode(),
        WEIGHTS_FILE: safetensors.torch.save(weights),
    }
    if masks:
        files[MASKS_FILE] = safetensors.torch.save({k: v.detach().cpu().bool().contiguous() for k, v in masks.items()})
    if meta is not None:
        files[META_FILE] = json.dumps(meta, sort_keys=True, indent=1).encode()
    return files


def save_model(
    path: str | Path, model: nn.Module, masks: Masks | None = None, meta: dict[str, Any] | None = None
) -> Path:
    """Save `model` (a zoo model with `.spec`), its masks and JSON `meta` as a checkpoint folder."""
    write_dir(path, model_files(model, masks, meta))
    return Path(path)


# -- reading ---------------------------------------------------------------------------


@dataclass
class Checkpoint:
    """The validated contents of a checkpoint folder (tensors on the CPU)."""

    path: Path
    spec: ModelSpec
    weights: dict[str, torch.Tensor]
    masks: Masks | None
    meta: dict[str, Any] | None


def _read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    try:
        return safetensors.torch.load(path.read_bytes())
    except OSError as e:
        raise CheckpointError(f"{path}: cannot read ({_oneline(e)})") from None
    except Exception as e:  # safetensors raises its own error types for corrupt headers/data
        raise CheckpointError(f"{path}: not a valid safetensors file ({_oneline(e)})") from None


def read_torch_state(path: str | Path) -> Any:
    """Load a `torch.save` file with `weights_only=True`: pickled code is refused, never run."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: file is missing")
    try:
        with warnings.catch_warnings():  # torch warns about odd pickle protocols before refusing them
            warnings.simplefilter("ignore")
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise CheckpointError(f"{path}: refused: it holds pickled Python objects, not only tensors") from None
    except Exception as e:  # RuntimeError/EOFError/... for corrupt or truncated files
        raise CheckpointError(f"{path}: corrupt or truncated ({_oneline(e)})") from None


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{path}: not valid JSON ({_oneline(e)})") from None


def _check_tensors(path: Path, got: dict[str, torch.Tensor], want: dict[str, torch.Size], what: str) -> None:
    missing = sorted(set(want) - set(got))
    extra = sorted(set(got) - set(want))
    wrong = [k for k in sorted(set(got) & set(want)) if got[k].shape != want[k]]
    if missing or extra or wrong:
        if wrong:
            k = wrong[0]
            detail = f"{k} has shape {list(got[k].shape)}, {what} needs {list(want[k])}"
        else:
            detail = f"missing {missing[:3]}" if missing else f"unexpected {extra[:3]}"
        n = len(missing) + len(extra) + len(wrong)
        raise CheckpointError(
            f"{path}: does not match the architecture in {SPEC_FILE} ({n} tensor(s) differ: {detail})"
        )


def read_checkpoint(path: str | Path, expected_spec: ModelSpec | None = None) -> Checkpoint:
    """Read and validate a checkpoint folder; every failure is a one-line CheckpointError naming the file."""
    path = recover_dir(path)
    if not path.is_dir():
        raise CheckpointError(f"{path}: checkpoint folder does not exist")
    spec_path = path / SPEC_FILE
    if not spec_path.is_file():
        raise CheckpointError(f"{spec_path}: file is missing")
    try:
        spec = spec_from_json(spec_path.read_text())
    except PrunebenchError as e:
        raise CheckpointError(f"{spec_path}: {e}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{spec_path}: cannot read ({_oneline(e)})") from None
    if expected_spec is not None and spec != expected_spec:
        raise CheckpointError(f"{spec_path}: architecture differs from the expected {expected_spec.family} spec")
    weights_path = path / WEIGHTS_FILE
    if not weights_path.is_file():
        raise CheckpointError(f"{weights_path}: file is missing")
    weights = _read_safetensors(weights_path)
    masks = None
    if (path / MASKS_FILE).exists():
        masks = {k: v.bool() for k, v in _read_safetensors(path / MASKS_FILE).items()}
    meta = _read_json(path / META_FILE) if (path / META_FILE).exists() else None
    return Checkpoint(path=path, spec=spec, weights=weights, masks=masks, meta=meta)


def load_into(model: nn.Module, ckpt: Checkpoint) -> None:
    """Copy a checkpoint's weights into `model` (same architecture), checking names and shapes first."""
    want = {k: v.shape for k, v in model.state_dict().items()}
    _check_tensors(ckpt.path / WEIGHTS_FILE, ckpt.weights, want, "the model")
    if ckpt.masks is not None:
        params = {k: p.shape for k, p in model.named_parameters()}
        unknown = sorted(set(ckpt.masks) - set(params))
        bad = [k for k in sorted(set(ckpt.masks) & set(params)) if ckpt.masks[k].shape != params[k]]
        if unknown or bad:
            raise CheckpointError(
                f"{ckpt.path / MASKS_FILE}: masks do not match the model's parameters ({(unknown + bad)[:3]})"
            )
    with torch.no_grad():
        model.load_state_dict(ckpt.weights, strict=True)


def load_model(
    path: str | Path, expected_spec: ModelSpec | None = None
) -> tuple[nn.Module, Masks | None, dict[str, Any] | None]:
    """Build the model a checkpoint folder describes and load its weights: `(model, masks, meta)`."""
    ckpt = read_checkpoint(path, expected_spec)
    try:
        model = ckpt.spec.build()
    except PrunebenchError as e:
        raise CheckpointError(f"{ckpt.path / SPEC_FILE}: {e}") from None
    load_into(model, ckpt)
    return model, ckpt.masks, ckpt.meta
