"""Image folders in the ImageNet layout, streamed from disk: `train/<class>/*.JPEG`, `val/<class>/*.JPEG`.

The layout is torchvision's `ImageFolder` one, so ImageNet, Imagenette/Imagewoof or a folder of
your own classes all load the same way. The official ImageNet validation set comes as one flat
folder of 50,000 files: move each file into `val/<wnid>/` using the devkit's ground truth
(the usual `valprep.sh` does exactly that).

The transforms are defined here, and only here (the ImageNet scripts of the reference):

- training: RandomResizedCrop(S) (area 8-100% of the image, aspect ratio 3/4-4/3, torchvision's
  ten-try rule with a centre-crop fallback) + horizontal flip with probability 1/2;
- evaluation: resize the shorter side to R, centre crop S;
- both: normalisation by the data set's mean/std, on the device (`data/augment.py`).

S is the input size (224 for ImageNet) and R = round(S * 256 / 224) (256 for 224; 64 for a 56-pixel
toy). Decoding and cropping run in DataLoader worker processes (`PRUNEBENCH_LOADER_WORKERS`,
default: one per core up to 8), batches are pinned for a CUDA device and prefetched; with
`PRUNEBENCH_DECODE=cuda` JPEGs are decoded on the GPU (`torchvision.io.decode_jpeg(device="cuda")`)
and only the file reading stays in the workers. A file that does not decode is skipped and counted
(`skipped_files()`, one warning line naming it), never a hang: workers have a timeout.
"""

from __future__ import annotations

import hashlib
import math
import os
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from prunebench.data.files import labelled_roots, not_found
from prunebench.errors import DataError

IMAGE_SUFFIXES = (".jpeg", ".jpg", ".png")
CROP_SCALE = (0.08, 1.0)  # RandomResizedCrop's area range (share of the image)
CROP_RATIO = (3 / 4, 4 / 3)  # and aspect-ratio range (width / height)
FOLDER_NAMES = ("imagenet", "ILSVRC2012")  # sub-folders of a data root that hold train/ and val/
WORKER_TIMEOUT_S = 300  # a stuck worker is an error, not a hang

_SKIPPED: dict[str, str] = {}  # per process: file -> decoding error


def resize_size(input_size: int) -> int:
    """The evaluation resize R for a centre crop of `input_size` (256 for 224)."""
    return round(input_size * 256 / 224)


def skipped_files() -> dict[str, str]:
    """Files that failed to decode in this process so far, with the error (a run summary reports them)."""
    return dict(_SKIPPED)


def loader_workers() -> int:
    """Decoding worker processes: `$PRUNEBENCH_LOADER_WORKERS`, else one per core, at most 8."""
    env = os.environ.get("PRUNEBENCH_LOADER_WORKERS")
    if env is not None:
        if not env.isdigit():
            raise DataError(f"PRUNEBENCH_LOADER_WORKERS must be a non-negative integer, got {env!r}")
        return int(env)
    return min(8, len(os.sched_getaffinity(0)))


def crop_params(height: int, width: int, generator: torch.Generator) -> tuple[int, int, int, int]:
    """(top, left, h, w) of one RandomResizedCrop, drawn from `generator` (torchvision's rule)."""
    area = height * width
    log_ratio = (math.log(CROP_RATIO[0]), math.log(CROP_RATIO[1]))
    for _ in range(10):
        target = area * torch.empty(1).uniform_(*CROP_SCALE, generator=generator).item()
        ratio = math.exp(torch.empty(1).uniform_(*log_ratio, generator=generator).item())
        w = round(math.sqrt(target * ratio))
        h = round(math.sqrt(target / ratio))
        if 0 < w <= width and 0 < h <= height:
            top = int(torch.randint(0, height - h + 1, (1,), generator=generator))
            left = int(torch.randint(0, width - w + 1, (1,), generator=generator))
            return top, left, h, w
    # Fallback: the whole image, clamped to the ratio range, centred.
    in_ratio = width / height
    if in_ratio < CROP_RATIO[0]:
        w, h = width, round(width / CROP_RATIO[0])
    elif in_ratio > CROP_RATIO[1]:
        h, w = height, round(height * CROP_RATIO[1])
    else:
        w, h = width, height
    return (height - h) // 2, (width - w) // 2, h, w


def transform(img: torch.Tensor, size: int, train: bool, seed: int) -> torch.Tensor:
    """One decoded uint8 C×H×W image -> its uint8 size×size view (training crop + flip, or eval)."""
    from torchvision.transforms.v2 import functional as F

    if train:
        g = torch.Generator().manual_seed(seed)
        top, left, h, w = crop_params(img.shape[-2], img.shape[-1], g)
        img = F.resized_crop(img, top, left, h, w, [size, size], antialias=True)
        if torch.rand(1, generator=g).item() < 0.5:
            img = F.horizontal_flip(img)
        return img
    img = F.resize(img, [resize_size(size)], antialias=True)
    return F.center_crop(img, [size, size])


def decode(data: torch.Tensor, device: str = "cpu") -> torch.Tensor:
    """Encoded bytes -> uint8 RGB C×H×W (JPEG on `device`; PNG on the CPU)."""
    from torchvision.io import ImageReadMode, decode_image, decode_jpeg

    if device != "cpu":
        return decode_jpeg(data, mode=ImageReadMode.RGB, device=device)
    return decode_image(data, mode=ImageReadMode.RGB)


def _decode_on(datas: list[torch.Tensor], device: torch.device) -> list[torch.Tensor]:
    """A batch of encoded files decoded on the GPU in one call; a batch with a non-JPEG (or a file
    nvjpeg refuses) falls back to decoding it file by file, PNGs on the CPU."""
    from torchvision.io import ImageReadMode, decode_jpeg

    try:
        return list(decode_jpeg(datas, mode=ImageReadMode.RGB, device=device))
    except RuntimeError:
        out = []
        for d in datas:
            try:
                out.append(decode(d, str(device)))
            except RuntimeError:
                out.append(decode(d).to(device))
        return out


class _Files(torch.utils.data.Dataset[tuple[torch.Tensor, int, str]]):
    """The worker side: read (and unless decoding on the GPU, decode and transform) one file."""

    def __init__(self, files: Sequence[str], labels: Sequence[int], seeds: Sequence[int], size: int,
                 train: bool, raw: bool) -> None:
        self.files, self.labels, self.seeds = files, labels, seeds
        self.size, self.train, self.raw = size, train, raw

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int, str]:
        from torchvision.io import read_file

        path = self.files[i]
        try:
            data = read_file(path)
            if self.raw:
                return data, i, ""
            return transform(decode(data), self.size, self.train, self.seeds[i]), i, ""
        except (RuntimeError, ValueError) as e:  # torchvision's decoding errors
            return torch.empty(0, dtype=torch.uint8), i, f"{path}: {str(e).splitlines()[0] if str(e) else type(e).__name__}"


def _collate(items: list[tuple[torch.Tensor, int, str]]) -> tuple[list[torch.Tensor], list[int], list[str]]:
    return [t for t, _, bad in items if not bad], [i for _, i, bad in items if not bad], [b for *_, b in items if b]


def _stacked(items: tuple[list[torch.Tensor], list[int], list[str]]) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    imgs, idx, bad = items
    x = torch.stack(imgs) if imgs else torch.empty(0, dtype=torch.uint8)
    return x, torch.tensor(idx, dtype=torch.int64), bad


def _collate_stack(items: list[tuple[torch.Tensor, int, str]]) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    return _stacked(_collate(items))


def _one_thread(_: int) -> None:
    torch.set_num_threads(1)  # each worker decodes one image at a time; the cores are the workers


@dataclass(frozen=True, eq=False)
class FolderImages:
    """The images of a split as files: what `Splits.*_x` holds for a folder data set.

    It stands where an in-memory uint8 tensor would: indexing selects files, `.to()` keeps it on
    disk, `shape` is the N×3×S×S the batches will have, and `data.batches` streams it.
    """

    files: tuple[str, ...]
    size: int
    decode_device: str = "cpu"
    dtype: torch.dtype = field(default=torch.uint8)

    def __len__(self) -> int:
        return len(self.files)

    @property
    def shape(self) -> torch.Size:
        return torch.Size((len(self.files), 3, self.size, self.size))

    @property
    def device(self) -> torch.device:
        return torch.device("cpu")

    def __getitem__(self, index: torch.Tensor | slice | Sequence[int]) -> FolderImages:
        if isinstance(index, slice):
            return replace(self, files=self.files[index])
        idx = index.tolist() if isinstance(index, torch.Tensor) else list(index)
        if isinstance(idx, int):
            idx = [idx]
        return replace(self, files=tuple(self.files[i] for i in idx))

    def to(self, *args: Any, **kwargs: Any) -> FolderImages:
        return self  # stays on disk: `batches` streams it to the device

    def stream(
        self, order: torch.Tensor, *, batch_size: int, train: bool, generator: torch.Generator | None,
        device: torch.device,
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """uint8 batches (on `device`) of the files in `order`, with the positions (into `order`'s
        source) of the images that decoded; undecodable files are skipped and counted."""
        from torch.utils.data import DataLoader

        n = len(order)
        # One seed per image, drawn in the main process: the crops do not depend on the workers.
        seeds = torch.randint(0, 2**62, (n,), generator=generator).tolist() if train else [0] * n
        files = [self.files[i] for i in order.tolist()]
        on_gpu = self.decode_device != "cpu" and device.type == "cuda"
        workers = loader_workers()
        ds = _Files(files, list(range(n)), seeds, self.size, train, raw=on_gpu)
        loader = DataLoader(
            ds, batch_size=batch_size, shuffle=False, num_workers=workers,
            collate_fn=_collate if on_gpu else _collate_stack,
            pin_memory=device.type == "cuda" and not on_gpu,
            prefetch_factor=4 if workers else None, timeout=WORKER_TIMEOUT_S if workers else 0,
            worker_init_fn=_one_thread if workers else None,
        )  # fmt: skip
        for item in loader:
            if on_gpu:
                datas, pos, bad = item
                imgs = [transform(img, self.size, train, seeds[p]) for img, p in zip(_decode_on(datas, device), pos)]
                x, pos_t = (torch.stack(imgs) if imgs else torch.empty(0, dtype=torch.uint8)), torch.tensor(pos)
            else:
                x, pos_t, bad = item
            for b in bad:
                if b.split(": ")[0] not in _SKIPPED:
                    print(f"prunebench: skipped an image that does not decode: {b}", file=sys.stderr)
                _SKIPPED[b.split(": ")[0]] = b
            if len(pos_t):
                yield x.to(device, non_blocking=True), order[pos_t]


@dataclass(frozen=True)
class Folder:
    """What a scan of the folder found: class names, and the files and labels of train/ and val/."""

    root: Path
    classes: tuple[str, ...]
    train_files: tuple[str, ...]
    train_labels: tuple[int, ...]
    val_files: tuple[str, ...]
    val_labels: tuple[int, ...]

    def fingerprint(self) -> str:
        """SHA-256 of the class list and every file's relative path and size (reading 140 GB of
        JPEGs per run would cost more than the run's data loading)."""
        digest = hashlib.sha256("|".join(self.classes).encode())
        for f in (*self.train_files, *self.val_files):
            digest.update(f"{os.path.relpath(f, self.root)}:{os.path.getsize(f)}\n".encode())
        return digest.hexdigest()


def find(data_dir: str | os.PathLike[str] | None) -> Path | None:
    """The first folder holding `train/`: a data root itself, or its `imagenet/` (`ILSVRC2012/`)."""
    for root, _ in labelled_roots(data_dir):
        for cand in (root, *(root / n for n in FOLDER_NAMES)):
            if (cand / "train").is_dir():
                return cand
    return None


def _images(folder: Path) -> list[str]:
    with os.scandir(folder) as it:
        return sorted(e.path for e in it if e.is_file() and e.name.lower().endswith(IMAGE_SUFFIXES))


def _class_dirs(split: Path) -> list[str]:
    with os.scandir(split) as it:
        return sorted(e.name for e in it if e.is_dir())


def scan(root: Path, classes: int | None = None) -> Folder:
    """Read the layout (no image is decoded): one-line errors for a missing val/, an empty class
    folder, a class of val/ that train/ lacks. `classes` keeps the first N classes (sorted names)."""
    train_dir, val_dir = root / "train", root / "val"
    if not val_dir.is_dir():
        raise DataError(f"{val_dir}: no val/ folder (expected val/<class>/*.JPEG next to train/)")
    names = _class_dirs(train_dir)
    if not names:
        raise DataError(f"{train_dir}: no class folders (expected train/<class>/*.JPEG)")
    if classes is not None:
        if not 0 < classes <= len(names):
            raise DataError(f"{root}: classes must be in [1, {len(names)}], got {classes}")
        names = names[:classes]
    out: dict[str, tuple[list[str], list[int]]] = {"train": ([], []), "val": ([], [])}
    val_names = set(_class_dirs(val_dir))
    extra = sorted(val_names - set(_class_dirs(train_dir)))
    if extra:
        raise DataError(f"{val_dir / extra[0]}: a class of val/ that train/ does not have")
    for label, name in enumerate(names):
        for split, d in (("train", train_dir), ("val", val_dir)):
            if split == "val" and name not in val_names:
                continue
            files = _images(d / name)
            if not files:
                raise DataError(f"{d / name}: empty class folder (no .JPEG/.jpg/.png file)")
            out[split][0].extend(files)
            out[split][1].extend([label] * len(files))
    if not out["val"][0]:
        raise DataError(f"{val_dir}: no images of the chosen classes")
    return Folder(root, tuple(names), tuple(out["train"][0]), tuple(out["train"][1]),
                  tuple(out["val"][0]), tuple(out["val"][1]))


def load_raw(name: str, data_dir: str | os.PathLike[str] | None, *, input_size: int, classes: int | None) -> Any:
    """The folder as `RawData` whose images are `FolderImages` (nothing decoded)."""
    from prunebench.data.raw import RawData

    try:
        import torchvision  # noqa: F401  (decoding and transforms)
    except ImportError:
        raise DataError(f"{name}: image folders need torchvision (pinned with torch in pyproject.toml)") from None
    root = find(data_dir)
    if root is None:
        looked = [f"{r} ({how}; train/ in it or in {'/ or '.join(FOLDER_NAMES)}/)" for r, how in labelled_roots(data_dir)]
        raise not_found(name, looked, data_dir)
    folder = scan(root, classes)
    dev = os.environ.get("PRUNEBENCH_DECODE", "cpu")
    if dev not in ("cpu", "cuda"):
        raise DataError(f"PRUNEBENCH_DECODE must be cpu or cuda, got {dev!r}")
    raw = RawData(
        train_x=FolderImages(folder.train_files, input_size, dev),
        train_y=torch.tensor(folder.train_labels, dtype=torch.int64),
        test_x=FolderImages(folder.val_files, input_size, dev),
        test_y=torch.tensor(folder.val_labels, dtype=torch.int64),
        source=str(root),
    )
    raw._fingerprint = hashlib.sha256(f"{folder.fingerprint()}|{input_size}".encode()).hexdigest()
    return raw
