"""Reader for the idx format of MNIST-like data sets (gzip-compressed)."""

from __future__ import annotations

import gzip
import math
import zlib
from pathlib import Path

import numpy as np

from prunebench.errors import DataError

_UBYTE = 0x08  # the only element type MNIST-like files use
#: The largest payload an idx file may declare; checked before it is decompressed (gzip bombs).
#: Fashion-MNIST's training images are 47 MB.
MAX_IDX_BYTES = 256 << 20


def read_idx(path: Path) -> np.ndarray:
    """Parse one `.gz` idx file into a uint8 array of the shape its header declares."""
    try:
        with gzip.open(path, "rb") as f:
            head = f.read(4)
            if len(head) < 4 or head[0] != 0 or head[1] != 0 or head[2] != _UBYTE:
                raise DataError(f"{path}: not an unsigned-byte idx file (bad magic number)")
            ndim = head[3]
            dims_raw = f.read(4 * ndim)
            if ndim == 0 or len(dims_raw) < 4 * ndim:
                raise DataError(f"{path}: truncated idx header")
            dims = tuple(int(d) for d in np.frombuffer(dims_raw, dtype=">u4", count=ndim))
            expected = math.prod(dims)
            if expected > MAX_IDX_BYTES:
                raise DataError(f"{path}: idx header declares {dims} = {expected:,} bytes (at most {MAX_IDX_BYTES:,})")
            raw = f.read(expected + 1)  # one more byte than declared tells a longer file
    except (OSError, EOFError, zlib.error) as e:
        raise DataError(f"{path}: corrupt or truncated gzip file ({e})") from None
    if len(raw) != expected:
        held = f"{len(raw)}" if len(raw) <= expected else "more"
        raise DataError(f"{path}: idx header declares {dims} = {expected} bytes, file holds {held}")
    return np.frombuffer(raw, dtype=np.uint8).reshape(dims)
