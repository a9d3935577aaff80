"""Checkpoint folders: safe to write (atomic) and safe to read (no unpickling of code).

A checkpoint folder holds `spec.json` (the architecture), `weights.safetensors`
(the state dict), optionally `masks.safetensors` (parameter name -> bool mask),
`meta.json`, and for a training state `train_state.pt` (read with
`weights_only=True`). A folder is written next to its final place and renamed
into it, so a reader never sees a half-written checkpoint.

`checksums.json` holds the SHA-256 of every other file of the folder; a reader
refuses a file whose bytes differ (a flipped bit, a truncated copy).  Folders
written before checksums existed have none and are read unverified.  Before a
model is built, the spec is checked against the weights file's header (names
and shapes, computed on the `meta` device, which allocates nothing): a spec
asking for far more than its weights hold is refused instead of filling memory.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import re
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
from prunebench.outputs import atomic_write_bytes, atomic_write_text  # noqa: F401  (re-exported: one writer)
from prunebench.outputs import fsync_dir as _fsync_dir

SPEC_FILE = "spec.json"
WEIGHTS_FILE = "weights.safetensors"
MASKS_FILE = "masks.safetensors"
META_FILE = "meta.json"
CHECKSUMS_FILE = "checksums.json"

#: Caps on what a file may declare before it is read or built (far above any real model here).
MAX_HEADER_BYTES = 16 << 20  # a safetensors JSON header
MAX_JSON_BYTES = 16 << 20  # spec.json / meta.json / checksums.json
MAX_INPUT_SIZE = 4096  # pixels per side of a checkpoint's input (FLOPs and latency run a forward at it)

Masks = dict[str, torch.Tensor]


def _oneline(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return (text[0] if text else type(e).__name__)[:200]


# -- writing ---------------------------------------------------------------------------


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def pid_alive(pid: int) -> bool:
    """Whether a process `pid` exists (signal 0: nothing is sent; another user's process counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _stale_siblings(path: Path, kind: str) -> list[Path]:
    """`.NAME.<kind>PID` leftovers next to `path` whose writer is dead (or of the old pid-less form)."""
    pattern = re.compile(rf"^\.{re.escape(path.name)}\.{kind}(\d*)$")
    stale = []
    for sibling in path.parent.iterdir() if path.parent.is_dir() else ():
        m = pattern.match(sibling.name)
        if m and (not m.group(1) or (int(m.group(1)) != os.getpid() and not pid_alive(int(m.group(1))))):
            stale.append(sibling)
    return stale


def torch_bytes(obj: Any) -> bytes:
    """`torch.save` into bytes (for objects of tensors and primitives only)."""
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def _old(path: Path) -> Path:
    return path.with_name(f".{path.name}.old{os.getpid()}")


def recover_dir(path: str | Path) -> Path:
    """Finish an interrupted `write_dir` swap: bring back the previous folder if the new one is missing."""
    path = Path(path)
    if not path.exists():
        olds = _stale_siblings(path, "old") + ([_old(path)] if _old(path).exists() else [])
        if olds:
            os.replace(max(olds, key=lambda p: p.stat().st_mtime), path)
    return path


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink()


def write_dir(path: str | Path, files: dict[str, bytes]) -> None:
    """Atomically replace folder `path` with one holding exactly `files` (and their `checksums.json`).

    Temporary names carry the writer's pid, so two processes never share one; those of dead
    writers are removed.
    """
    path = recover_dir(path)
    for stale in _stale_siblings(path, "tmp") + _stale_siblings(path, "old"):
        _remove(stale)  # leftovers of crashed writes
    files = {**files, CHECKSUMS_FILE: _checksums_json(files)}
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    if tmp.exists():
        shutil.rmtree(tmp)
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


def _checksums_json(files: dict[str, bytes]) -> bytes:
    sums = {name: sha256_hex(data) for name, data in sorted(files.items()) if name != CHECKSUMS_FILE}
    return json.dumps(sums, sort_keys=True, indent=1).encode()


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


_HEX64 = re.compile(r"^[0-9a-f]{64}$")


def _folder_checksums(folder: Path) -> dict[str, str] | None:
    """The folder's `checksums.json` (file name -> sha256); None for a folder written before them."""
    path = folder / CHECKSUMS_FILE
    if not path.exists():
        return None
    sums = _read_json(path)
    if not isinstance(sums, dict) or not all(isinstance(k, str) and isinstance(v, str) and _HEX64.match(v) for k, v in sums.items()):
        raise CheckpointError(f"{path}: not a checksum list (file name -> SHA-256)")
    return sums


def _read_bytes(path: Path, limit: int | None = None) -> bytes:
    try:
        if limit is not None and path.stat().st_size > limit:
            raise CheckpointError(f"{path}: {path.stat().st_size} bytes, more than the {limit >> 20} MiB such a file may have")
        return path.read_bytes()
    except OSError as e:
        raise CheckpointError(f"{path}: cannot read ({_oneline(e)})") from None


def read_verified(path: Path, sums: dict[str, str] | None = None, limit: int | None = None) -> bytes:
    """The bytes of a checkpoint file, checked against its folder's checksums when it has them."""
    if sums is None:
        sums = _folder_checksums(path.parent)
    data = _read_bytes(path, limit)
    if sums is not None:
        want = sums.get(path.name)
        if want is None:
            raise CheckpointError(f"{path}: not listed in {CHECKSUMS_FILE} (added after the checkpoint was written?)")
        if sha256_hex(data) != want:
            raise CheckpointError(f"{path}: checksum mismatch (file damaged?)")
    return data


def safetensors_shapes(path: Path, data: bytes) -> dict[str, tuple[int, ...]]:
    """Tensor name -> shape from a safetensors header (8-byte length + JSON), without decoding tensors."""
    n = int.from_bytes(data[:8], "little") if len(data) >= 8 else -1
    if n < 0 or n > MAX_HEADER_BYTES or n > len(data) - 8:
        raise CheckpointError(f"{path}: not a valid safetensors file (header length {n} for a {len(data)}-byte file)")
    try:
        header = json.loads(data[8 : 8 + n])
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{path}: not a valid safetensors file (header: {_oneline(e)})") from None
    if not isinstance(header, dict):
        raise CheckpointError(f"{path}: not a valid safetensors file (header is not an object)")
    shapes = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        shape = entry.get("shape") if isinstance(entry, dict) else None
        if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
            raise CheckpointError(f"{path}: not a valid safetensors file (bad shape for {name!r})")
        shapes[name] = tuple(shape)
    return shapes


def _load_safetensors(path: Path, data: bytes) -> dict[str, torch.Tensor]:
    try:
        return safetensors.torch.load(data)
    except Exception as e:  # safetensors raises its own error types for corrupt headers/data
        raise CheckpointError(f"{path}: not a valid safetensors file ({_oneline(e)})") from None


def _read_safetensors(path: Path, sums: dict[str, str] | None) -> dict[str, torch.Tensor]:
    data = read_verified(path, sums)
    safetensors_shapes(path, data)
    return _load_safetensors(path, data)


def read_torch_state(path: str | Path) -> Any:
    """Load a `torch.save` file with `weights_only=True`: pickled code is refused, never run.

    Checked against its folder's `checksums.json` first, when the folder has one.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: file is missing")
    data = read_verified(path)
    try:
        with warnings.catch_warnings():  # torch warns about odd pickle protocols before refusing them
            warnings.simplefilter("ignore")
            return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise CheckpointError(f"{path}: refused: it holds pickled Python objects, not only tensors") from None
    except Exception as e:  # RuntimeError/EOFError/... for corrupt or truncated files
        raise CheckpointError(f"{path}: corrupt or truncated ({_oneline(e)})") from None


def _read_json(path: Path, sums: dict[str, str] | None = None) -> Any:
    data = read_verified(path, sums, MAX_JSON_BYTES) if sums is not None else _read_bytes(path, MAX_JSON_BYTES)
    try:
        return json.loads(data.decode())
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        raise CheckpointError(f"{path}: not valid JSON ({_oneline(e)})") from None


def _check_tensors(path: Path, got: dict[str, Any], want: dict[str, Any], what: str) -> None:
    """Compare names and shapes (tensors, sizes or tuples) of what a file holds with what is needed."""
    got = {k: tuple(getattr(v, "shape", v)) for k, v in got.items()}
    want = {k: tuple(v) for k, v in want.items()}
    missing = sorted(set(want) - set(got))
    extra = sorted(set(got) - set(want))
    wrong = [k for k in sorted(set(got) & set(want)) if got[k] != want[k]]
    if missing or extra or wrong:
        if wrong:
            k = wrong[0]
            detail = f"{k} has shape {list(got[k])}, {what} needs {list(want[k])}"
        else:
            detail = f"missing {missing[:3]}" if missing else f"unexpected {extra[:3]}"
        n = len(missing) + len(extra) + len(wrong)
        raise CheckpointError(
            f"{path}: does not match the architecture in {SPEC_FILE} ({n} tensor(s) differ: {detail})"
        )


def _ints(value: Any, key: str = "") -> list[tuple[str, int]]:
    if isinstance(value, bool):
        return []
    if isinstance(value, int):
        return [(key, value)]
    if isinstance(value, dict):
        return [x for k, v in value.items() for x in _ints(v, str(k))]
    if isinstance(value, list | tuple):
        return [x for v in value for x in _ints(v, key)]
    return []


def check_spec_fits(spec: ModelSpec, shapes: dict[str, tuple[int, ...]], spec_path: Path, weights_path: Path) -> None:
    """Refuse a spec that asks for far more than its weights hold, before anything is allocated.

    Every width, class count and layer count of an honest spec is at most the largest tensor
    dimension or the number of tensors in its weights; the input size is capped on its own.
    Then the exact parameter shapes are computed on the `meta` device (no memory) and compared.
    """
    if spec.input_size > MAX_INPUT_SIZE:
        raise CheckpointError(f"{spec_path}: input_size {spec.input_size} is beyond the {MAX_INPUT_SIZE} px a checkpoint may declare")
    bound = max([len(shapes), *(d for shape in shapes.values() for d in shape)])
    for key, v in _ints(spec.to_dict()):
        # a user model's pruning record lists removed channel indices of the unpruned widths: not sizes
        if key not in ("input_size", "pruning") and v > bound:
            raise CheckpointError(
                f"{spec_path}: {key} = {v} is far beyond what {weights_path.name} holds "
                f"(largest dimension or tensor count {bound}); refusing to build it"
            )
    try:
        with torch.device("meta"):
            want = {k: tuple(v.shape) for k, v in spec.build().state_dict().items()}
    except PrunebenchError as e:
        raise CheckpointError(f"{spec_path}: {e}") from None
    _check_tensors(weights_path, shapes, want, f"the architecture in {SPEC_FILE}")


def read_checkpoint(path: str | Path, expected_spec: ModelSpec | None = None) -> Checkpoint:
    """Read and validate a checkpoint folder; every failure is a one-line CheckpointError naming the file.

    Each file is checked against `checksums.json` (when the folder has one) and the spec against
    the weights' header before any tensor is decoded.
    """
    path = recover_dir(path)
    if not path.is_dir():
        raise CheckpointError(f"{path}: checkpoint folder does not exist")
    spec_path = path / SPEC_FILE
    if not spec_path.is_file():
        raise CheckpointError(f"{spec_path}: file is missing")
    sums = _folder_checksums(path)
    try:
        spec = spec_from_json(read_verified(spec_path, sums, MAX_JSON_BYTES).decode())
    except PrunebenchError as e:
        if isinstance(e, CheckpointError):
            raise
        raise CheckpointError(f"{spec_path}: {e}") from None
    except (UnicodeDecodeError, RecursionError) as e:
        raise CheckpointError(f"{spec_path}: cannot read ({_oneline(e)})") from None
    if expected_spec is not None and spec != expected_spec:
        raise CheckpointError(f"{spec_path}: architecture differs from the expected {expected_spec.family} spec")
    weights_path = path / WEIGHTS_FILE
    if not weights_path.is_file():
        raise CheckpointError(f"{weights_path}: file is missing")
    data = read_verified(weights_path, sums)
    check_spec_fits(spec, safetensors_shapes(weights_path, data), spec_path, weights_path)
    weights = _load_safetensors(weights_path, data)
    masks = None
    if (path / MASKS_FILE).exists():
        masks = {k: v.bool() for k, v in _read_safetensors(path / MASKS_FILE, sums).items()}
    meta = _read_json(path / META_FILE, sums) if (path / META_FILE).exists() else None
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
