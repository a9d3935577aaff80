"""PASCAL VOC detection data in the official VOCdevkit layout (`VOC2007/{Annotations,ImageSets/Main,JPEGImages}`).

Only the annotations are read up front (boxes, classes, the `difficult` flag); images stay on
disk and are decoded when a batch needs them.  The XML goes through `defusedxml`, which refuses
entity declarations and external references (no billion-laughs, no reading local files), and
every file is size-capped before it is read.

Boxes are continuous pixel boxes `(xmin - 1, ymin - 1, xmax, ymax)`: VOC's 1-based inclusive
pixel corners turned into the area they cover, so plain IoU on them equals the devkit's
`+1` IoU on the raw corners.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from prunebench.data.files import labelled_roots, not_found
from prunebench.errors import DataError

#: the 20 VOC classes in the devkit's order; label k + 1 is CLASSES[k] (0 is background)
CLASSES = (
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor",
)  # fmt: skip
MAX_XML_BYTES = 1 << 20  # a VOC annotation is a few KiB
MAX_IMAGE_BYTES = 32 << 20
MAX_LIST_BYTES = 16 << 20
MAX_OBJECTS = 1000  # per image
MAX_SIDE = 10_000  # pixels: a declared size beyond this is not a VOC image
#: data set name -> (year, image set) pairs used for training; testing is always VOC2007 test
TRAIN_SETS = {"voc2007": (("2007", "trainval"),), "voc0712": (("2007", "trainval"), ("2012", "trainval"))}
TEST_SET = ("2007", "test")


@dataclass(frozen=True)
class VOCImage:
    """One annotated image: `boxes` N×4 float32 (continuous pixel boxes), `labels` N int64 in
    1..20, `difficult` N bool."""

    image_id: str
    path: Path
    width: int
    height: int
    boxes: torch.Tensor
    labels: torch.Tensor
    difficult: torch.Tensor


@dataclass(frozen=True)
class VOCSet:
    images: tuple[VOCImage, ...]
    classes: tuple[str, ...]
    source: str
    digest: str  # sha256 over the image ids and their annotations: enters the stage records

    def __len__(self) -> int:
        return len(self.images)


def _read_capped(path: Path, cap: int) -> bytes:
    try:
        size = path.stat().st_size
        if size > cap:
            raise DataError(f"{path}: {size} bytes is larger than the {cap}-byte limit for this file")
        with open(path, "rb") as f:
            data = f.read(cap + 1)
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e.strerror or e})") from None
    if len(data) > cap:  # grew while being read
        raise DataError(f"{path}: larger than the {cap}-byte limit for this file")
    return data


def parse_annotation(path: Path, classes: tuple[str, ...] = CLASSES) -> tuple[int, int, list[tuple[float, float, float, float]], list[int], list[bool]]:
    """(width, height, boxes, labels, difficult) of one VOC XML file; objects of other classes are skipped."""
    import defusedxml.ElementTree as ET  # type: ignore[import-untyped, import-not-found, unused-ignore]
    from defusedxml import DefusedXmlException  # type: ignore[import-untyped, import-not-found, unused-ignore]

    data = _read_capped(path, MAX_XML_BYTES)
    try:
        root = ET.fromstring(data, forbid_dtd=True)
    except DefusedXmlException as e:
        raise DataError(f"{path}: refused: {type(e).__name__} (entities, DTDs and external references are not allowed)") from None
    except ET.ParseError as e:
        raise DataError(f"{path}: not valid XML ({e})") from None

    def number(node: object, tag: str) -> float:
        text = getattr(node, "findtext")(tag)
        try:
            return float(text)
        except (TypeError, ValueError):
            raise DataError(f"{path}: <{tag}> must be a number, got {text!r}") from None

    size = root.find("size")
    if size is None:
        raise DataError(f"{path}: no <size>")
    width, height = int(number(size, "width")), int(number(size, "height"))
    if not (0 < width <= MAX_SIDE and 0 < height <= MAX_SIDE):
        raise DataError(f"{path}: image size {width}x{height} is out of range")
    objects = root.findall("object")
    if len(objects) > MAX_OBJECTS:
        raise DataError(f"{path}: {len(objects)} objects is more than the limit of {MAX_OBJECTS}")
    boxes, labels, difficult = [], [], []
    for obj in objects:
        name = (obj.findtext("name") or "").strip()
        if name not in classes:
            continue
        bb = obj.find("bndbox")
        if bb is None:
            raise DataError(f"{path}: object {name!r} has no <bndbox>")
        x1, y1, x2, y2 = (number(bb, t) for t in ("xmin", "ymin", "xmax", "ymax"))
        if not (1 <= x1 <= x2 <= width and 1 <= y1 <= y2 <= height):
            raise DataError(f"{path}: box ({x1:g}, {y1:g}, {x2:g}, {y2:g}) of {name!r} is outside the {width}x{height} image")
        boxes.append((x1 - 1, y1 - 1, x2, y2))
        labels.append(classes.index(name) + 1)
        difficult.append((obj.findtext("difficult") or "0").strip() == "1")
    return width, height, boxes, labels, difficult


def find_devkit(year: str, data_dir: str | os.PathLike[str] | None) -> Path:
    """The `VOC<year>` folder: `<root>/VOCdevkit/VOC<year>` or `<root>/VOC<year>` in each search root."""
    looked = []
    for root, origin in labelled_roots(data_dir):
        for cand in (root / "VOCdevkit" / f"VOC{year}", root / f"VOC{year}"):
            if (cand / "Annotations").is_dir() and (cand / "ImageSets" / "Main").is_dir():
                return cand
        looked.append(f"{root}/VOCdevkit/VOC{year} ({origin})")
    raise not_found(f"PASCAL VOC{year}", looked, data_dir)


def read_set(
    year: str, image_set: str, data_dir: str | os.PathLike[str] | None, *, classes: tuple[str, ...] = CLASSES,
    subset: int | None = None,
) -> list[VOCImage]:  # fmt: skip
    """The images of `ImageSets/Main/<image_set>.txt` with their annotations (the first `subset` only)."""
    root = find_devkit(year, data_dir)
    listing = root / "ImageSets" / "Main" / f"{image_set}.txt"
    try:
        text = _read_capped(listing, MAX_LIST_BYTES).decode("utf-8")
    except UnicodeDecodeError:
        raise DataError(f"{listing}: not UTF-8 text") from None
    ids = [line.split()[0] for line in text.splitlines() if line.strip()]
    if subset is not None:
        ids = ids[:subset]
    out = []
    for image_id in ids:
        if "/" in image_id or "\\" in image_id or image_id.startswith("."):
            raise DataError(f"{listing}: image id {image_id!r} is not a plain file name")
        w, h, boxes, labels, difficult = parse_annotation(root / "Annotations" / f"{image_id}.xml", classes)
        out.append(VOCImage(
            image_id=f"{year}/{image_id}", path=root / "JPEGImages" / f"{image_id}.jpg", width=w, height=h,
            boxes=torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4), labels=torch.tensor(labels, dtype=torch.int64),
            difficult=torch.tensor(difficult, dtype=torch.bool),
        ))  # fmt: skip
    if not out:
        raise DataError(f"{listing}: lists no images")
    return out


def load_voc(
    name: str, split: str, data_dir: str | os.PathLike[str] | None, *, classes: tuple[str, ...] = CLASSES,
    subset: int | None = None,
) -> VOCSet:  # fmt: skip
    """`split` "train" (the data set's trainval sets) or "test" (VOC2007 test)."""
    if name not in TRAIN_SETS:
        raise DataError(f"unknown detection data set {name!r}; known: {', '.join(TRAIN_SETS)}")
    sets = TRAIN_SETS[name] if split == "train" else (TEST_SET,)
    images = [im for year, s in sets for im in read_set(year, s, data_dir, classes=classes, subset=subset)]
    h = hashlib.sha256()
    for im in images:
        h.update(im.image_id.encode())
        h.update(im.boxes.numpy().tobytes() + im.labels.numpy().tobytes() + im.difficult.numpy().tobytes())
    source = ", ".join(f"VOC{y} {s}" for y, s in sets)
    return VOCSet(tuple(images), classes, source, h.hexdigest())


def read_image(im: VOCImage) -> torch.Tensor:
    """uint8 RGB 3×H×W; the size in the file's header must match the annotation's before any
    pixel is decoded (a small file declaring a huge image is refused unread)."""
    import io

    from PIL import Image, UnidentifiedImageError
    from torchvision.io import ImageReadMode, decode_image

    data = _read_capped(im.path, MAX_IMAGE_BYTES)
    try:
        with Image.open(io.BytesIO(data)) as header:  # reads the header only
            declared = header.size
    except (UnidentifiedImageError, OSError) as e:
        raise DataError(f"{im.path}: not a readable image ({e})") from None
    if declared != (im.width, im.height):
        raise DataError(f"{im.path}: the image is {declared[0]}x{declared[1]}, its annotation says {im.width}x{im.height}")
    try:
        img = decode_image(torch.frombuffer(bytearray(data), dtype=torch.uint8), mode=ImageReadMode.RGB)
    except RuntimeError as e:
        raise DataError(f"{im.path}: not a readable image ({str(e).splitlines()[0]})") from None
    if tuple(img.shape[1:]) != (im.height, im.width):
        raise DataError(f"{im.path}: the image is {img.shape[2]}x{img.shape[1]}, its annotation says {im.width}x{im.height}")
    return img
