"""The results store: one SQLite file next to the run folders (`<exp_dir>/prunebench.sqlite`).

Safe with several worker processes writing at once: WAL journal, a busy
timeout, and every write is one short `BEGIN IMMEDIATE` transaction.  Each
process opens its own `Store`; connections are never shared between processes.
"""

from __future__ import annotations

import csv
import json
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from prunebench.errors import PrunebenchError

STORE_FILE = "prunebench.sqlite"

#: Bumped whenever a table changes; stored as SQLite's `user_version`.
STORE_SCHEMA = 2

#: Training FLOPs = forward FLOPs per image x images seen x this (forward + backward ~ 3 forwards).
BACKWARD_MULTIPLIER = 3.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS experiments (
    name TEXT PRIMARY KEY, file TEXT, preset TEXT NOT NULL, created REAL, updated REAL);
CREATE TABLE IF NOT EXISTS stages (
    id TEXT PRIMARY KEY, kind TEXT NOT NULL, seed INTEGER, status TEXT NOT NULL,
    config TEXT NOT NULL, upstream TEXT NOT NULL, dir TEXT NOT NULL, style TEXT, extra TEXT,
    created REAL, started REAL, finished REAL, error TEXT);
CREATE TABLE IF NOT EXISTS links (
    experiment TEXT NOT NULL, method TEXT NOT NULL, arm TEXT NOT NULL, stage_id TEXT NOT NULL,
    result_arm TEXT NOT NULL, PRIMARY KEY (experiment, method, arm, stage_id));
CREATE TABLE IF NOT EXISTS metrics (
    stage_id TEXT NOT NULL, epoch INTEGER NOT NULL, name TEXT NOT NULL, value REAL,
    PRIMARY KEY (stage_id, epoch, name));
CREATE TABLE IF NOT EXISTS results (
    stage_id TEXT NOT NULL, arm TEXT NOT NULL, seed INTEGER,
    primary_acc REAL, final_test_acc REAL, best_val_acc REAL, test_acc_best_val REAL, best_test_acc_compat REAL,
    params_total INTEGER, params_nonzero INTEGER, flops REAL, flops_mode TEXT, flops_ratio REAL,
    latency_ms REAL, arch TEXT, info TEXT,
    PRIMARY KEY (stage_id, arm));
CREATE TABLE IF NOT EXISTS budgets (
    stage_id TEXT PRIMARY KEY, epochs INTEGER, milestones TEXT, lr REAL, policy TEXT, flops_ratio REAL,
    optimizer_steps INTEGER, images_seen INTEGER, forward_flops REAL, training_flops REAL,
    flops_multiplier REAL, wall_s REAL);
"""

RESULT_FIELDS = (
    "primary_acc", "final_test_acc", "best_val_acc", "test_acc_best_val", "best_test_acc_compat",
    "params_total", "params_nonzero", "flops", "flops_mode", "flops_ratio", "latency_ms", "arch", "info",
)  # fmt: skip
BUDGET_FIELDS = (
    "epochs", "milestones", "lr", "policy", "flops_ratio", "optimizer_steps", "images_seen",
    "forward_flops", "training_flops", "flops_multiplier", "wall_s",
)  # fmt: skip


def _json(v: Any) -> Any:
    return json.dumps(v, sort_keys=True) if isinstance(v, dict | list | tuple) else v


class Store:
    """All reads and writes of one experiment folder's database."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = sqlite3.connect(self.path, timeout=60, isolation_level=None)
            self._db.row_factory = sqlite3.Row
            self._db.execute("PRAGMA busy_timeout = 60000")
            self._db.execute("PRAGMA journal_mode = WAL")
            with self._write() as db:
                version = db.execute("PRAGMA user_version").fetchone()[0]
                tables = db.execute("SELECT count(*) FROM sqlite_master WHERE type = 'table'").fetchone()[0]
                if tables and version != STORE_SCHEMA:
                    raise PrunebenchError(
                        f"{self.path}: written by another prunebench version (store schema {version}, "
                        f"this one reads {STORE_SCHEMA}); use a new output folder"
                    )
                for statement in filter(str.strip, _SCHEMA.split(";")):
                    db.execute(statement)
                db.execute(f"PRAGMA user_version = {STORE_SCHEMA}")
        except sqlite3.DatabaseError as e:
            raise PrunebenchError(f"{self.path}: not a usable prunebench store ({e})") from None

    @classmethod
    def open(cls, exp_dir: str | Path) -> Store:
        return cls(Path(exp_dir) / STORE_FILE)

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction; IMMEDIATE takes the write lock up front, so no upgrade deadlocks."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    # -- experiments and stages ------------------------------------------------------
    def add_experiment(self, name: str, file: str, preset: dict[str, Any]) -> None:
        now = time.time()
        with self._write() as db:
            db.execute(
                "INSERT INTO experiments VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT(name) DO UPDATE SET file = excluded.file, preset = excluded.preset, updated = excluded.updated",
                (name, file, json.dumps(preset, sort_keys=True), now, now),
            )

    def experiments(self) -> list[dict[str, Any]]:
        rows = self._db.execute("SELECT * FROM experiments ORDER BY created").fetchall()
        return [{**dict(r), "preset": json.loads(r["preset"])} for r in rows]

    def add_stages(
        self, experiment: str, stages: list[Any], links: list[tuple[str, str, str, str]], *, replace: bool = False
    ) -> None:
        """Register planned stages (existing ones keep their status) and the method/arm links.

        `replace` drops the experiment's earlier links first (the runner's whole plan): the report
        then shows the experiment as last planned, while stages of an earlier version of the
        preset stay cached and are reused if it comes back.
        """
        now = time.time()
        with self._write() as db:
            db.executemany(
                "INSERT OR IGNORE INTO stages (id, kind, seed, status, config, upstream, dir, created) "
                "VALUES (?, ?, ?, 'pending', ?, ?, ?, ?)",
                [(s.id, s.kind, s.seed, json.dumps(s.config, sort_keys=True), json.dumps(s.upstream), s.dirname, now) for s in stages],
            )
            if replace:
                db.execute("DELETE FROM links WHERE experiment = ?", (experiment,))
            db.executemany("INSERT OR IGNORE INTO links VALUES (?, ?, ?, ?, ?)", [(experiment, *link) for link in links])

    def status(self) -> dict[str, str]:
        return {r["id"]: r["status"] for r in self._db.execute("SELECT id, status FROM stages")}

    def stage(self, stage_id: str) -> dict[str, Any]:
        row = self._db.execute("SELECT * FROM stages WHERE id = ?", (stage_id,)).fetchone()
        if row is None:
            raise PrunebenchError(f"{self.path}: no stage {stage_id}")
        return {**dict(row), "extra": json.loads(row["extra"] or "{}")}

    def mark_running(self, stage_id: str) -> None:
        with self._write() as db:
            db.execute("UPDATE stages SET status = 'running', started = ?, error = NULL WHERE id = ?", (time.time(), stage_id))

    def mark_done(self, stage_id: str, *, style: str | None = None, extra: dict[str, Any] | None = None) -> None:
        with self._write() as db:
            db.execute(
                "UPDATE stages SET status = 'done', finished = ?, style = ?, extra = ? WHERE id = ?",
                (time.time(), style, json.dumps(extra or {}, sort_keys=True), stage_id),
            )

    def mark_failed(self, stage_id: str, error: str) -> None:
        with self._write() as db:
            db.execute("UPDATE stages SET status = 'failed', finished = ?, error = ? WHERE id = ?", (time.time(), error, stage_id))

    # -- measurements -----------------------------------------------------------------
    def add_metrics(self, stage_id: str, rows: list[dict[str, Any]]) -> None:
        """Per-epoch metrics: each row has an `epoch` and any number of named numbers."""
        values = [
            (stage_id, int(row["epoch"]), k, float(v))
            for row in rows
            for k, v in row.items()
            if k != "epoch" and isinstance(v, int | float) and not isinstance(v, bool)
        ]
        with self._write() as db:
            db.executemany("INSERT OR REPLACE INTO metrics VALUES (?, ?, ?, ?)", values)

    def metrics(self, stage_id: str) -> list[dict[str, Any]]:
        by_epoch: dict[int, dict[str, Any]] = {}
        for r in self._db.execute("SELECT epoch, name, value FROM metrics WHERE stage_id = ? ORDER BY epoch", (stage_id,)):
            by_epoch.setdefault(r["epoch"], {"epoch": r["epoch"]})[r["name"]] = r["value"]
        return list(by_epoch.values())

    def add_result(self, stage_id: str, arm: str, seed: int, **fields: Any) -> None:
        unknown = set(fields) - set(RESULT_FIELDS)
        if unknown:
            raise ValueError(f"unknown result fields: {sorted(unknown)}")
        cols = ["stage_id", "arm", "seed", *fields]
        with self._write() as db:
            db.execute(
                f"INSERT OR REPLACE INTO results ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
                (stage_id, arm, seed, *(_json(v) for v in fields.values())),
            )

    def set_budget(self, stage_id: str, **fields: Any) -> None:
        unknown = set(fields) - set(BUDGET_FIELDS)
        if unknown:
            raise ValueError(f"unknown budget fields: {sorted(unknown)}")
        cols = ["stage_id", *fields]
        with self._write() as db:
            db.execute(
                f"INSERT OR REPLACE INTO budgets ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
                (stage_id, *(_json(v) for v in fields.values())),
            )

    # -- reading for reports ------------------------------------------------------------
    def rows(self, experiment: str | None = None) -> list[dict[str, Any]]:
        """One row per (experiment, method, arm, seed): the result joined with its stage and budget."""
        where = "WHERE l.experiment = ?" if experiment else ""
        sql = f"""
            SELECT r.*, l.experiment, l.method, l.arm, s.kind, s.style, s.upstream,
                   b.epochs, b.milestones, b.lr, b.policy, b.flops_ratio AS budget_ratio, b.optimizer_steps, b.images_seen, b.forward_flops, b.training_flops,
                   b.flops_multiplier, b.wall_s
            FROM links l JOIN stages s ON s.id = l.stage_id
            JOIN results r ON r.stage_id = l.stage_id AND r.arm = l.result_arm
            LEFT JOIN budgets b ON b.stage_id = l.stage_id
            {where} ORDER BY l.experiment, l.method, l.arm, r.seed"""
        out = []
        for r in self._db.execute(sql, (experiment,) if experiment else ()):
            d = dict(zip(r.keys(), r))  # later columns win: the link's arm over the result row's
            for key in ("arch", "info", "milestones", "upstream"):
                d[key] = json.loads(d[key]) if d.get(key) else None
            out.append(d)
        return out

    def export(self, out_dir: str | Path, experiment: str | None = None) -> tuple[Path, Path]:
        """Write `results.csv` (flat) and `results.json` (with architectures and info)."""
        out_dir = Path(out_dir)
        rows = self.rows(experiment)
        json_path, csv_path = out_dir / "results.json", out_dir / "results.csv"
        json_path.write_text(json.dumps(rows, indent=1, sort_keys=True))
        flat = [{k: v for k, v in r.items() if k not in ("arch", "info", "upstream")} for r in rows]
        with csv_path.open("w", newline="") as f:
            fields = list(flat[0]) if flat else ["experiment", "method", "arm", "seed"]
            writer = csv.DictWriter(f, fieldnames=fields)
            writer.writeheader()
            writer.writerows({k: _json(v) for k, v in r.items()} for r in flat)
        return csv_path, json_path
