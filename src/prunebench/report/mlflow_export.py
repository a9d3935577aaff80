"""Export an experiment's finished stages to MLflow (`prunebench run ... --mlflow URI`).

One MLflow run per finished stage, in an MLflow experiment named after the prunebench
experiment: the stage's config as parameters, its per-epoch metrics as metric histories
(step = epoch), its results (accuracy, params, FLOPs, latency, budget) as final metrics.
Exporting again adds only stages not exported yet (tag `prunebench.stage_id`).

MLflow is an optional extra (`pip install prunebench[mlflow]`); the store stays the source
of truth, this is a copy for people whose dashboards live in MLflow.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from prunebench.errors import ConfigError, PrunebenchError
from prunebench.experiment import Store
from prunebench.experiment.store import STORE_FILE

STAGE_TAG = "prunebench.stage_id"
RESULT_METRICS = (
    "primary_acc", "final_test_acc", "best_val_acc", "test_acc_best_val", "best_test_acc_compat",
    "params_nonzero", "params_total", "flops", "flops_ratio", "latency_ms",
    "epochs", "optimizer_steps", "images_seen", "training_flops", "wall_s",
)  # fmt: skip
_MAX_BATCH = 100  # MLflow's per-call limit on params (and a sane one for metrics)
_MAX_VALUE = 500


def flatten(d: dict[str, Any], prefix: str = "") -> dict[str, str]:
    """`{"recipe": {"lr": 0.1}}` -> `{"recipe.lr": "0.1"}` (MLflow params are flat strings)."""
    out: dict[str, str] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, key + "."))
        else:
            out[key] = str(v)[:_MAX_VALUE]
    return out


def _client(uri: str) -> Any:
    try:
        from mlflow.tracking import MlflowClient
    except ImportError:
        raise ConfigError("--mlflow needs the mlflow package: pip install 'prunebench[mlflow]'") from None
    if uri.startswith("file:") or "://" not in uri:
        # a local file store is what the user asked for; MLflow 3 refuses it unless told so
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    return MlflowClient(tracking_uri=uri)


def export_mlflow(exp_dir: str | Path, uri: str) -> int:
    """Copy every finished stage of `exp_dir` not yet in the MLflow store at `uri`; returns how many."""
    exp_dir = Path(exp_dir)
    if not (exp_dir / STORE_FILE).is_file():
        raise PrunebenchError(f"{exp_dir}: no {STORE_FILE} here; nothing to export to MLflow")
    client = _client(uri)  # first: a missing mlflow is a one-line error
    from mlflow.entities import Metric, Param

    store = Store.open(exp_dir)
    try:
        rows = store.rows()
        done = [sid for sid, status in store.status().items() if status == "done"]
        stages = {sid: store.stage(sid) for sid in done}
        metrics = {sid: store.metrics(sid) for sid in done}
    finally:
        store.close()
    by_stage: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        by_stage.setdefault(r["stage_id"], []).append(r)
    exported = 0
    for sid, stage in stages.items():
        links = by_stage.get(sid)
        if not links:
            continue  # a stage no arm reports (e.g. a prune step): nothing to compare in MLflow
        experiment = links[0]["experiment"]
        exp = client.get_experiment_by_name(experiment)
        exp_id = exp.experiment_id if exp else client.create_experiment(experiment)
        if client.search_runs([exp_id], filter_string=f"tags.`{STAGE_TAG}` = '{sid}'", max_results=1):
            continue
        tags = {
            STAGE_TAG: sid, "prunebench.kind": stage["kind"], "prunebench.folder": stage["dir"],
            "prunebench.arms": ", ".join(sorted({f"{r['method']}/{r['arm']}" for r in links})),
        }  # fmt: skip
        run = client.create_run(exp_id, tags=tags, run_name=stage["dir"])
        run_id = run.info.run_id
        config = json.loads(stage["config"]) if isinstance(stage["config"], str) else stage["config"]
        params = {"kind": stage["kind"], "seed": str(stage["seed"]), **flatten(config, "config.")}
        items = [Param(k, v) for k, v in sorted(params.items())]
        now = int(time.time() * 1000)
        series = [
            Metric(name, float(v), now, int(row["epoch"]))
            for row in metrics[sid] for name, v in row.items() if name != "epoch" and v is not None
        ]  # fmt: skip
        row = links[0]
        final = [Metric(k, float(row[k]), now, 0) for k in RESULT_METRICS if isinstance(row.get(k), int | float)]
        for i in range(0, len(items), _MAX_BATCH):
            client.log_batch(run_id, params=items[i:i + _MAX_BATCH])
        everything = series + final
        for i in range(0, len(everything), _MAX_BATCH):
            client.log_batch(run_id, metrics=everything[i:i + _MAX_BATCH])
        client.set_terminated(run_id)
        exported += 1
    return exported
