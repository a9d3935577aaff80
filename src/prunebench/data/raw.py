"""The in-memory form of a data set before splitting."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import torch

from prunebench.data.imagefolder import FolderImages


@dataclass
class RawData:
    """Official train/test arrays: uint8 N×C×H×W images (or `FolderImages`: files), int64 labels."""

    train_x: torch.Tensor | FolderImages
    train_y: torch.Tensor
    test_x: torch.Tensor | FolderImages
    test_y: torch.Tensor
    source: str
    _fingerprint: str | None = field(default=None, repr=False)

    def fingerprint(self) -> str:
        """SHA-256 of all images and labels (computed once; it enters split hashes)."""
        if self._fingerprint is None:
            digest = hashlib.sha256()
            for t in (self.train_x, self.train_y, self.test_x, self.test_y):
                digest.update(str(tuple(t.shape)).encode())
                assert isinstance(t, torch.Tensor), "a folder's fingerprint is set when it is scanned"
                digest.update(t.contiguous().numpy().tobytes())
            self._fingerprint = digest.hexdigest()
        return self._fingerprint
