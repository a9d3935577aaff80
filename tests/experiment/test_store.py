"""The SQLite store: concurrent writers lose nothing; exports round-trip."""

from __future__ import annotations

import csv
import json
import multiprocessing
import sqlite3
from pathlib import Path

import pytest

from prunebench.errors import PrunebenchError
from prunebench.experiment import Store

WRITERS, ROWS = 4, 50


def _writer(path: str, w: int) -> None:
    store = Store(path)
    for i in range(ROWS):  # one transaction per write, interleaved with the other processes
        store.add_metrics(f"stage-{w}", [{"epoch": i, "loss": float(w * 1000 + i)}])
    store.close()


def test_concurrent_writers_lose_nothing(tmp_path: Path) -> None:
    path = str(tmp_path / "prunebench.sqlite")
    Store(path).close()
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(path, w)) for w in range(WRITERS)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    store = Store(path)
    for w in range(WRITERS):
        rows = store.metrics(f"stage-{w}")
        assert [r["loss"] for r in rows] == [float(w * 1000 + i) for i in range(ROWS)]
    # a rollback journal, not WAL: WAL's memory-mapped -shm file is what died with SIGBUS on a full disk
    assert store._db.execute("PRAGMA journal_mode").fetchone()[0] == "delete"


def test_results_join_links_budgets_and_export(tmp_path: Path) -> None:
    from prunebench.experiment.graph import Stage

    store = Store.open(tmp_path)
    stage = Stage("ab" * 32, "finetune", 3, {"x": 1}, {"pruned": "cd" * 32}, {}, ("l1",))
    store.add_experiment("exp", "presets/x.toml", {"seeds": [3]})
    store.add_stages("exp", [stage], [("l1", "finetuned", stage.id, "finetuned")])
    store.add_stages("exp", [stage], [("l1", "finetuned", stage.id, "finetuned")])  # idempotent
    assert store.status() == {stage.id: "pending"}
    store.add_result(stage.id, "finetuned", 3, primary_acc=0.9, flops=100.0, arch={"widths": [1, 2]})
    store.set_budget(stage.id, epochs=4, milestones=[2, 3], training_flops=1.5e9)
    store.mark_done(stage.id, style="physical", extra={"paired_prune": "cd" * 32})
    [row] = store.rows("exp")
    assert (row["method"], row["arm"], row["seed"], row["primary_acc"], row["epochs"]) == ("l1", "finetuned", 3, 0.9, 4)
    assert row["arch"] == {"widths": [1, 2]} and row["milestones"] == [2, 3] and row["style"] == "physical"
    assert store.stage(stage.id)["extra"] == {"paired_prune": "cd" * 32}
    csv_path, json_path = store.export(tmp_path)
    [exported] = list(csv.DictReader(csv_path.open()))
    assert exported["arm"] == "finetuned" and float(exported["training_flops"]) == 1.5e9
    assert json.loads(json_path.read_text())[0]["arch"] == {"widths": [1, 2]}


def test_a_store_of_another_schema_is_refused_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / "prunebench.sqlite"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE links (experiment TEXT, method TEXT, arm TEXT, stage_id TEXT)")
    db.commit()
    db.close()
    with pytest.raises(PrunebenchError, match="store schema 0, this one reads"):
        Store(path)
    fresh = Store(tmp_path / "new.sqlite")  # a new file is created at the current schema
    fresh.close()
    Store(tmp_path / "new.sqlite").close()  # and reopens
