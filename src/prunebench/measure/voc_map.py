"""PASCAL VOC detection average precision, as the VOC2007 devkit computes it.

Per class: detections sorted by score (all images together); each is a true positive when
its best-overlapping ground-truth box of that class in its image has IoU > 0.5 and was not
matched before (a second hit on the same box is a false positive); a detection whose best
match is a `difficult` box counts neither way, and difficult boxes are not in the recall's
denominator.  AP is the VOC2007 11-point interpolated precision (recall 0, 0.1, ..., 1) and,
as a second number, the all-point area under the monotone precision envelope (VOC2010+).
Boxes are continuous `(x1, y1, x2, y2)` (data/voc.py), so IoU needs no `+1`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

IOU_THRESHOLD = 0.5


@dataclass(frozen=True)
class ClassAP:
    ap11: float  # NaN when the class has no non-difficult ground truth
    ap_all: float
    positives: int  # non-difficult ground-truth boxes
    detections: int


@dataclass(frozen=True)
class VOCResult:
    per_class: dict[str, ClassAP]

    @property
    def map11(self) -> float:
        return _mean([c.ap11 for c in self.per_class.values()])

    @property
    def map_all(self) -> float:
        return _mean([c.ap_all for c in self.per_class.values()])

    def to_dict(self) -> dict[str, object]:
        return {"map11": self.map11, "map_all": self.map_all,
                "per_class": {k: {"ap11": c.ap11, "ap_all": c.ap_all, "positives": c.positives, "detections": c.detections}
                              for k, c in self.per_class.items()}}  # fmt: skip


def _mean(values: list[float]) -> float:
    kept = [v for v in values if not np.isnan(v)]
    return float(np.mean(kept)) if kept else float("nan")


def iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """IoU of one box with each row of `boxes` (continuous coordinates)."""
    iw = np.clip(np.minimum(box[2], boxes[:, 2]) - np.maximum(box[0], boxes[:, 0]), 0, None)
    ih = np.clip(np.minimum(box[3], boxes[:, 3]) - np.maximum(box[1], boxes[:, 1]), 0, None)
    inter = iw * ih
    union = (box[2] - box[0]) * (box[3] - box[1]) + (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]) - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def ap_11point(recall: np.ndarray, precision: np.ndarray) -> float:
    """VOC2007: mean over t in {0, 0.1, ..., 1} of the best precision at recall >= t (0 if none)."""
    return float(np.mean([precision[recall >= t].max() if (recall >= t).any() else 0.0 for t in np.linspace(0, 1, 11)]))


def ap_area(recall: np.ndarray, precision: np.ndarray) -> float:
    """VOC2010+: the area under the precision envelope (precision made non-increasing in recall)."""
    r = np.concatenate(([0.0], recall, [1.0]))
    p = np.concatenate(([0.0], precision, [0.0]))
    p = np.maximum.accumulate(p[::-1])[::-1]
    steps = np.nonzero(r[1:] != r[:-1])[0]
    return float(np.sum((r[steps + 1] - r[steps]) * p[steps + 1]))


def class_ap(
    detections: Sequence[tuple[int, float, Sequence[float]]],
    truth: Sequence[tuple[np.ndarray, np.ndarray]],
) -> ClassAP:
    """AP of one class. `detections`: (image index, score, box); `truth[i]`: (boxes K×4, difficult K) of image i."""
    positives = int(sum(int((~d).sum()) for _, d in truth))
    if positives == 0:
        return ClassAP(float("nan"), float("nan"), 0, len(detections))
    order = sorted(range(len(detections)), key=lambda k: -detections[k][1])  # stable: ties keep their order
    used = [np.zeros(len(b), dtype=bool) for b, _ in truth]
    tp, fp = np.zeros(len(order)), np.zeros(len(order))
    for rank, k in enumerate(order):
        image, _, box = detections[k]
        gt, difficult = truth[image]
        if len(gt) == 0:
            fp[rank] = 1
            continue
        overlaps = iou(np.asarray(box, dtype=np.float64), gt.astype(np.float64))
        j = int(overlaps.argmax())
        if overlaps[j] > IOU_THRESHOLD:
            if difficult[j]:
                continue  # neither: a difficult box may be found or missed freely
            if used[image][j]:
                fp[rank] = 1
            else:
                tp[rank], used[image][j] = 1, True
        else:
            fp[rank] = 1
    ctp, cfp = np.cumsum(tp), np.cumsum(fp)
    recall = ctp / positives
    precision = ctp / np.maximum(ctp + cfp, np.finfo(np.float64).eps)
    return ClassAP(ap_11point(recall, precision), ap_area(recall, precision), positives, len(detections))


def voc_map(
    predictions: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]],
    targets: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]],
    classes: Sequence[str],
) -> VOCResult:
    """Per-class and mean AP. `predictions[i]` = (boxes N×4, scores N, labels N) of image i;
    `targets[i]` = (boxes K×4, labels K, difficult K); labels are 1-based indices into `classes`."""
    per = {}
    for c, name in enumerate(classes, start=1):
        dets = [(i, float(s), b) for i, (bs, ss, ls) in enumerate(predictions) for b, s, lab in zip(bs, ss, ls) if lab == c]
        truth = [(tb[tl == c].reshape(-1, 4), td[tl == c].astype(bool)) for tb, tl, td in targets]
        per[name] = class_ap(dets, truth)
    return VOCResult(per)
