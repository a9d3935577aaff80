"""MLflow export of finished stages into a local file store: one run per stage, idempotent."""

from __future__ import annotations

from pathlib import Path

import pytest
from reportkit import EPOCHS, METHODS, SEEDS, fill

from prunebench.cli import build_parser
from prunebench.errors import PrunebenchError
from prunebench.report.mlflow_export import STAGE_TAG, export_mlflow, flatten

mlflow = pytest.importorskip("mlflow", reason="the mlflow extra is not installed (make test installs it)")


def test_export_to_a_file_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE", raising=False)
    fill(tmp_path / "exp", methods=METHODS[1:2])
    uri = (tmp_path / "mlruns").as_uri()
    n_stages = len(SEEDS) * 4  # four arms x seeds
    assert export_mlflow(tmp_path / "exp", uri) == n_stages
    assert export_mlflow(tmp_path / "exp", uri) == 0  # already there: nothing duplicated

    client = mlflow.tracking.MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name("hand")
    runs = client.search_runs([exp.experiment_id], max_results=1000)
    assert len(runs) == n_stages and len({r.data.tags[STAGE_TAG] for r in runs}) == n_stages
    ft = next(r for r in runs if r.data.tags["prunebench.arms"] == f"{METHODS[1][0]}/finetuned" and r.data.params["seed"] == "2")
    assert ft.info.status == "FINISHED" and ft.data.params["config.recipe.lr"] == "0.05"
    assert ft.data.metrics["primary_acc"] == pytest.approx(0.86 + 0.004)
    history = client.get_metric_history(ft.info.run_id, "train_loss")
    assert [(m.step, m.value) for m in sorted(history, key=lambda m: m.step)] == [(e, pytest.approx(2.0 / (e + 1))) for e in range(EPOCHS)]


def test_errors_and_helpers(tmp_path: Path) -> None:
    with pytest.raises(PrunebenchError, match="nothing to export"):
        export_mlflow(tmp_path, (tmp_path / "m").as_uri())
    assert flatten({"a": {"b": 1, "c": {"d": "x"}}, "e": [1, 2]}) == {"a.b": "1", "a.c.d": "x", "e": "[1, 2]"}
    args = build_parser().parse_args(["run", "fmnist-l1", "--mlflow", "file:///tmp/x"])
    assert args.mlflow == "file:///tmp/x"
