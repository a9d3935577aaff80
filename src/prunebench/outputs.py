"""Where prunebench may write, and how it writes.

Ownership: prunebench writes only into folders it created or found empty, and marks
them with the file `.prunebench` (`MARKER`).  A folder that holds other files and no
marker belongs to the user: it is refused with one line and left exactly as it was
(`check_dir`, `claim_dir`).  `--force` never widens this: it replaces prunebench's own
outputs only.

Atomic files: every file is written under a temporary name unique to the process and
thread, in the same folder, fsynced, and renamed over the old one only once complete
(`atomic_write_bytes`).  A full disk or a kill mid-write leaves the old file intact, and
the temporary file is removed.

This module sits at the base of the layer order (next to `errors`): every layer may use it.
"""

from __future__ import annotations

import contextlib
import io
import os
import secrets
import threading
from collections.abc import Callable, Collection, Iterator
from pathlib import Path

from prunebench.errors import PrunebenchError

MARKER = ".prunebench"
MARKER_TEXT = (
    "This folder was created by prunebench. prunebench may replace the files it wrote here;\n"
    "it refuses to write into folders without this file unless they are empty.\n"
)

Recognise = Callable[[Path], bool]


class OutputError(PrunebenchError):
    """An output path prunebench may not or cannot write: the user's folder, a file, read-only, a full disk."""


def _why(path: Path, e: OSError, what: str = "write") -> str:
    return f"{path}: cannot {what} ({e.strerror or e})"


# -- atomic files ----------------------------------------------------------------------


def fsync_dir(path: str | Path) -> None:
    """Make a rename in `path` durable (the folder entry, not just the file's data)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# Threads of one process take turns, so the pid alone makes a temp name unique.
_LOCK = threading.Lock()


def tmp_name(path: Path) -> Path:
    """The temp name of `path` for this process: `.NAME.tmpPID` (the form the checkpoint
    writer's clean-up of dead processes' leftovers recognises)."""
    return path.with_name(f".{path.name}.tmp{os.getpid()}")


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write `data` to `path` through a temp file in the same folder, fsync, rename; `OutputError` on failure.

    On any failure the old `path` (if any) is left as it was and the temp file is removed.
    """
    with _LOCK:
        _atomic_write(Path(path), data)


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = tmp_name(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)  # a leftover of a dead process that had our pid (no thread of ours: the lock)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # the umask applies, as for open()
    except OSError as e:
        raise OutputError(_why(path, e)) from None
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException as e:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(e, OSError):
            raise OutputError(_why(path, e)) from None
        raise
    with contextlib.suppress(OSError):  # the file is in place; some file systems cannot fsync a folder
        fsync_dir(path.parent)


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


@contextlib.contextmanager
def atomic_file(path: str | Path) -> Iterator[io.BytesIO]:
    """`with atomic_file(p) as f: f.write(...)`: `p` is replaced only if the block completes."""
    buf = io.BytesIO()
    yield buf
    atomic_write_bytes(path, buf.getvalue())


# -- ownership -------------------------------------------------------------------------


def owned(folder: str | Path) -> bool:
    """Whether `folder` carries prunebench's marker."""
    return (Path(folder) / MARKER).is_file()


def _entries(folder: Path) -> list[str]:
    try:
        return sorted(p.name for p in folder.iterdir())
    except OSError as e:
        raise OutputError(_why(folder, e, "read")) from None


def _probe(folder: Path) -> None:
    """Fail now, with one line, if nothing can be created in `folder` or its nearest existing parent."""
    target = folder
    while not target.exists() and target != target.parent:
        target = target.parent
    tmp = target / f".prunebench-probe.{os.getpid()}.{secrets.token_hex(4)}"
    try:
        os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        os.unlink(tmp)
    except OSError as e:
        raise OutputError(f"{folder}: cannot write there ({e.strerror or e})") from None


def check_dir(folder: str | Path, *, option: str = "--out", recognise: Recognise | None = None) -> Path:
    """Refuse `folder` as an output folder unless it is missing, empty, marked, or `recognise(folder)`
    (prunebench's own layout from before markers); also refuse a file and a folder nothing can be
    written to.  Nothing is left behind either way."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise OutputError(f"{option} {folder}: is a file, not a folder; nothing was written")
    if folder.is_dir() and not owned(folder) and _entries(folder) and not (recognise and recognise(folder)):
        raise OutputError(
            f"{option} {folder}: holds files prunebench did not write (no {MARKER} marker); "
            "choose a new or empty folder; nothing was written"
        )
    _probe(folder)
    return folder


def claim_dir(folder: str | Path, *, option: str = "--out", recognise: Recognise | None = None) -> Path:
    """`check_dir`, then create `folder` if needed and mark it as prunebench's."""
    folder = check_dir(folder, option=option, recognise=recognise)
    if not owned(folder):
        atomic_write_text(folder / MARKER, MARKER_TEXT)
    return folder


def foreign(folder: str | Path, ours: Collection[str]) -> list[str]:
    """Entries of `folder` that are not among `ours` (prunebench's names there) nor the marker."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return [name for name in _entries(folder) if name not in ours and name != MARKER]
