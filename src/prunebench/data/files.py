"""Where data files live, checksums and verified downloads."""

from __future__ import annotations

import hashlib
import os
import sys
import tempfile
import urllib.request
from pathlib import Path

from tqdm import tqdm

from prunebench.errors import DataError

DOWNLOAD_TIMEOUT_S = 60


def cache_dir() -> Path:
    """The user cache: `$XDG_CACHE_HOME/prunebench`, else `~/.cache/prunebench`."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "prunebench"


def labelled_roots(data_dir: str | os.PathLike[str] | None) -> list[tuple[Path, str]]:
    """Folders to look in, in order, each with where it comes from: the explicit `data_dir`
    (`--data-dir`), `$PRUNEBENCH_DATA`, the user cache."""
    roots = [(Path(data_dir), "--data-dir")] if data_dir else []
    if os.environ.get("PRUNEBENCH_DATA"):
        roots.append((Path(os.environ["PRUNEBENCH_DATA"]), "$PRUNEBENCH_DATA"))
    roots.append((cache_dir(), "user cache"))
    return roots


def search_roots(data_dir: str | os.PathLike[str] | None) -> list[Path]:
    """The folders of `labelled_roots`."""
    return [root for root, _ in labelled_roots(data_dir)]


def not_found(name: str, looked: list[str], data_dir: str | os.PathLike[str] | None) -> DataError:
    """The one 'not found' error of every data set: each place searched, and how to add one."""
    unset = [] if data_dir else ["--data-dir (not given)"]
    unset += [] if os.environ.get("PRUNEBENCH_DATA") else ["$PRUNEBENCH_DATA (not set)"]
    return DataError(
        f"{name} not found; looked in: {'; '.join(looked + unset)}. Put the files in a folder "
        "and pass --data-dir DIR, or set PRUNEBENCH_DATA=DIR"
    )


def md5sum(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def download(url: str, dest: Path, md5s: tuple[str, ...]) -> None:
    """Fetch `url` into `dest`, atomically and only if its MD5 is one of `md5s`.

    Raises `DataError` (one line) on any network or checksum failure.
    """
    try:  # a cache path that is a file, or read-only, is one line too
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    except OSError as e:
        raise DataError(f"{dest.parent}: cannot write the download there ({e.strerror or e})") from None
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as resp:
            total = int(resp.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc=dest.name, leave=False,
                      disable=not sys.stdout.isatty()) as bar:
                for chunk in iter(lambda: resp.read(1 << 20), b""):
                    out.write(chunk)
                    bar.update(len(chunk))
            out.flush()
            os.fsync(out.fileno())
        got = md5sum(tmp)
        if got not in md5s:
            raise DataError(f"{url}: checksum mismatch (MD5 {got}, expected {' or '.join(md5s)})")
        os.replace(tmp, dest)
    except OSError as e:  # URLError, timeouts and disk errors are all OSErrors
        raise DataError(f"{url}: download failed ({getattr(e, 'reason', e)})") from None
    finally:
        tmp.unlink(missing_ok=True)
