"""The report's latency cells: median ± IQR over runs, masked models marked as timed dense, noise flagged."""

from __future__ import annotations

from prunebench.report.stats import summarize
from prunebench.report.tables import ArmStats, MethodTable, latency_cell, latency_notes


def _arm(arm: str, lats: list[dict]) -> ArmStats:
    rows = [{"arch": {"latency": lat}, "seed": i} for i, lat in enumerate(lats)]
    return ArmStats(arm=arm, rows=rows, acc=summarize([0.9] * len(rows)), compat=None, vs_reference=None, params=None,
                    flops=None, flops_mode="", latency_ms=sum(x["median_ms"] for x in lats) / len(lats), epochs=None,
                    training_flops=None, wall_s=None, ratio=None)  # fmt: skip


def _lat(median: float, iqr: float, *, noisy: bool = False, dense: bool = False) -> dict:
    return {"median_ms": median, "iqr_ms": iqr, "noisy": noisy, "dense": dense, "threads": 2, "batch_size": 1}


def test_median_of_runs_and_mean_iqr() -> None:
    # one outlier run (363 ms) does not move a median of three the way a mean would
    a = _arm("unpruned", [_lat(0.26, 0.01), _lat(0.28, 0.03), _lat(363.0, 200.0, noisy=True)])
    assert latency_cell(a) == f"0.280 ± {(0.01 + 0.03 + 200.0) / 3:.3f} noisy"


def test_masked_models_are_marked_dense_and_explained() -> None:
    masked = _arm("finetuned", [_lat(0.27, 0.01, dense=True)])
    plain = _arm("unpruned", [_lat(0.26, 0.01)])
    assert latency_cell(masked) == "0.270 ± 0.010 †" and latency_cell(plain) == "0.260 ± 0.010"
    t = MethodTable("e", "fashion-mnist", "vgg11", "magnitude-90%", "final-epoch test accuracy", [plain, masked])
    notes = " ".join(latency_notes(t))
    assert "unstructured sparsity is not accelerated here" in notes and "noisy" not in notes
    assert "median ± interquartile range" in notes


def test_old_rows_without_details_keep_the_plain_number() -> None:
    a = _arm("unpruned", [_lat(1.0, 0.0)])
    a.rows[0]["arch"] = {"widths": [1]}
    assert latency_cell(a) == "1.000"
