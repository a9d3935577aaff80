"""A tiny VOC-format data set written to disk: shapes on a noisy background, VOCdevkit layout."""

from __future__ import annotations

from pathlib import Path

import numpy as np

#: shape -> the VOC class name it is annotated as (three of the twenty)
SHAPES = {"square": "aeroplane", "disk": "bicycle", "triangle": "bird"}
SIZE = 96


def _draw(img: np.ndarray, shape: str, x: int, y: int, s: int, value: int) -> None:
    yy, xx = np.mgrid[0:s, 0:s]
    if shape == "square":
        mask = np.ones((s, s), bool)
    elif shape == "disk":
        mask = (xx - s / 2 + 0.5) ** 2 + (yy - s / 2 + 0.5) ** 2 <= (s / 2) ** 2
    else:  # upward triangle
        mask = np.abs(xx - s / 2 + 0.5) <= (yy + 1) / 2
    img[y : y + s, x : x + s][mask] = value


def _xml(name: str, objects: list[tuple[str, int, int, int, int, int]]) -> str:
    objs = "".join(
        f"<object><name>{c}</name><difficult>{d}</difficult><bndbox><xmin>{x1}</xmin><ymin>{y1}</ymin>"
        f"<xmax>{x2}</xmax><ymax>{y2}</ymax></bndbox></object>"
        for c, d, x1, y1, x2, y2 in objects
    )
    return f"<annotation><filename>{name}.jpg</filename><size><width>{SIZE}</width><height>{SIZE}</height><depth>3</depth></size>{objs}</annotation>"


def write_toy_voc(root: Path, n_train: int = 64, n_test: int = 32, seed: int = 0) -> Path:
    """`root/VOCdevkit/VOC2007` with trainval and test image sets; returns `root`."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    voc = root / "VOCdevkit" / "VOC2007"
    for sub in ("Annotations", "ImageSets/Main", "JPEGImages"):
        (voc / sub).mkdir(parents=True, exist_ok=True)
    ids: dict[str, list[str]] = {"trainval": [], "test": []}
    for k in range(n_train + n_test):
        split = "trainval" if k < n_train else "test"
        name = f"{k:06d}"
        img = rng.integers(0, 50, size=(SIZE, SIZE, 3), dtype=np.uint8)
        objects = []
        taken = np.zeros((SIZE, SIZE), bool)
        for _ in range(int(rng.integers(1, 4))):
            shape = list(SHAPES)[int(rng.integers(3))]
            s = int(rng.integers(22, 40))
            for _try in range(20):
                x, y = (int(v) for v in rng.integers(0, SIZE - s, size=2))
                if not taken[y : y + s, x : x + s].any():
                    break
            else:
                continue
            taken[max(0, y - 2) : y + s + 2, max(0, x - 2) : x + s + 2] = True
            for c in range(3):
                _draw(img[:, :, c], shape, x, y, s, int(rng.integers(150, 256)))
            objects.append((SHAPES[shape], 0, x + 1, y + 1, x + s, y + s))  # VOC: 1-based inclusive corners
        if split == "test" and k % 4 == 0:  # a faint small shape marked difficult: ignored by the metric
            x = y = 2
            if not taken[0:14, 0:14].any():
                _draw(img[:, :, 0], "square", x, y, 10, 90)
                objects.append(("aeroplane", 1, x + 1, y + 1, x + 10, y + 10))
        Image.fromarray(img).save(voc / "JPEGImages" / f"{name}.jpg", quality=95)
        (voc / "Annotations" / f"{name}.xml").write_text(_xml(name, objects))
        ids[split].append(name)
    for split, names in ids.items():
        (voc / "ImageSets" / "Main" / f"{split}.txt").write_text("\n".join(names) + "\n")
    return root
