"""VOC07 AP against a hand-computed example (difficult boxes and duplicates included)."""

import math

import numpy as np
import pytest

from prunebench.measure.voc_map import ap_11point, ap_area, voc_map


def _example():
    # class 1 ("a"): image 0 has A (counted) and D (difficult), image 1 has B; class 3 ("c") has one
    # box and no detection; class 2 ("b") has neither boxes nor detections.
    targets = [
        (np.array([[0, 0, 10, 10], [20, 20, 30, 30], [40, 40, 50, 50]], float), np.array([1, 1, 3]), np.array([0, 1, 0])),
        (np.array([[0, 0, 10, 10]], float), np.array([1]), np.array([0])),
    ]
    predictions = [
        (np.array([[0, 0, 10, 10], [20, 20, 30, 30], [0, 0, 10, 10]], float), np.array([0.9, 0.8, 0.6]), np.array([1, 1, 1])),
        (np.array([[50, 50, 60, 60], [0, 0, 10, 10]], float), np.array([0.7, 0.5]), np.array([1, 1])),
    ]
    return predictions, targets


def test_ap_matches_the_hand_computed_value():
    # ranked: TP (A), ignored (hits difficult D), FP (no overlap), FP (second hit on A), TP (B); 2 positives
    # precision/recall after each counted one: (1, .5), (.5, .5), (1/3, .5), (.5, 1)
    # 11-point: recall thresholds 0..0.5 -> 1, 0.6..1 -> 0.5: (6 + 2.5) / 11; all-point: .5 * 1 + .5 * .5
    preds, targets = _example()
    res = voc_map(preds, targets, ("a", "b", "c"))
    a = res.per_class["a"]
    assert a.positives == 2 and a.detections == 5
    assert a.ap11 == pytest.approx(8.5 / 11)
    assert a.ap_all == pytest.approx(0.75)
    assert math.isnan(res.per_class["b"].ap11)  # no ground truth: left out of the mean
    assert res.per_class["c"].ap11 == 0.0
    assert res.map11 == pytest.approx((8.5 / 11 + 0) / 2)
    assert res.map_all == pytest.approx(0.75 / 2)


def test_a_difficult_box_counted_as_positive_would_change_the_answer():
    preds, targets = _example()
    not_difficult = [(b, lab, np.zeros_like(d)) for b, lab, d in targets]
    a = voc_map(preds, not_difficult, ("a", "b", "c")).per_class["a"]
    assert a.positives == 3 and a.ap11 != pytest.approx(8.5 / 11)


def test_iou_at_exactly_one_half_is_a_miss():
    # VOC counts IoU > 0.5 only: a box covering half of the truth's area (and nothing else) is a false positive
    targets = [(np.array([[0, 0, 10, 10]], float), np.array([1]), np.array([0]))]
    half = [(np.array([[0, 0, 5, 10]], float), np.array([1.0]), np.array([1]))]
    assert voc_map(half, targets, ("a",)).map11 == 0.0


def test_perfect_and_empty_curves():
    assert ap_11point(np.array([1.0]), np.array([1.0])) == pytest.approx(1.0)
    assert ap_area(np.array([1.0]), np.array([1.0])) == pytest.approx(1.0)
    assert ap_11point(np.array([0.0]), np.array([0.0])) == 0.0
