"""A finished stage is verified, not trusted: the checksums of its output files.

When a stage finishes, the SHA-256 of every file in its folder goes to the store
(`Store.mark_done(outputs=...)`).  Before the runner counts a stage as done, and
before a stage reads an upstream folder, the files are hashed again and compared;
a missing or changed file means the stage must be recomputed.  The files are
checkpoints of small models and a few JSON/CSV files: hashing them costs
milliseconds, and the runner hashes each stage at most once per run.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
from pathlib import Path

from prunebench.errors import PrunebenchError
from prunebench.experiment.store import Outputs, outputs_digest

#: Temporary names of prunebench's atomic writes (`.NAME.tmpPID`, `.NAME.oldPID`; older: no pid).
_TRANSIENT = re.compile(r"^\..+\.(tmp|old)\d*$")


#: The files of checkpoint folders: all a downstream stage reads of an upstream one.
_MODEL_FILES = {"spec.json", "weights.safetensors", "masks.safetensors", "meta.json"}


def model_digest(outputs: Outputs) -> str:
    """The digest of a stage's checkpoints, what its downstream stages read (their inputs).

    Logs and timings are left out, so recomputing a stage bit-identically leaves its
    downstream stages valid, while any change to a checkpoint recomputes them.
    """
    return outputs_digest({k: v for k, v in outputs.items() if k.rsplit("/", 1)[-1] in _MODEL_FILES})


def _transient(name: str) -> bool:
    return bool(_TRANSIENT.match(name))


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def hash_folder(folder: Path) -> Outputs:
    """Every file under `folder` (relative POSIX path -> (size, sha256)), temporary files left out."""
    out: Outputs = {}
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not _transient(d))
        for name in sorted(files):
            if _transient(name):
                continue
            path = Path(root, name)
            out[path.relative_to(folder).as_posix()] = (path.stat().st_size, _sha256(path))
    return out


def changed_output(folder: Path, recorded: Outputs) -> str | None:
    """The first recorded file that is missing or differs now (`"name (missing)"`); None if all match."""
    for rel, (size, sha) in sorted(recorded.items()):
        path = folder / rel
        if not path.is_file():
            return f"{rel} missing"
        if path.stat().st_size != size or _sha256(path) != sha:
            return rel
    return None


def clear_stage_folder(stages_root: Path, dirname: str) -> None:
    """Delete a stage's folder to recompute it from scratch: only `stages_root/<dirname>` itself,
    which prunebench created for that stage (a symlink or a name leaving the root is refused)."""
    folder = stages_root / dirname
    if not dirname or "/" in dirname or "\\" in dirname or dirname in (".", ".."):
        raise PrunebenchError(f"{folder}: not a stage folder name; not deleting it")
    if folder.is_symlink():
        raise PrunebenchError(f"{folder}: is a symbolic link, not a stage folder prunebench made; not deleting it")
    if folder.exists():
        shutil.rmtree(folder)


def remove_transient(folder: Path) -> list[Path]:
    """Clear what interrupted atomic writes left in a stage folder this process holds the claim on.

    Nobody else writes there (the claim), so every temporary name is a dead process's: a
    `.NAME.tmp*` is removed; a `.NAME.old*` is the previous version of NAME, put back if NAME
    itself is missing (the swap was cut between its two renames), removed otherwise.
    """
    removed: list[Path] = []
    if not folder.is_dir():
        return removed
    for root, dirs, files in os.walk(folder, topdown=True):
        for name in [*dirs, *files]:
            if not _transient(name):
                continue
            path = Path(root, name)
            original = path.with_name(name[1:].rsplit(".", 1)[0])
            if ".old" in name[name.rindex(".") :] and not original.exists():
                os.replace(path, original)
                continue
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()
            removed.append(path)
        dirs[:] = [d for d in dirs if not _transient(d) and (Path(root) / d).exists()]
    return removed
