"""The results store: one SQLite file next to the run folders (`<exp_dir>/prunebench.sqlite`).

Safe with several processes of one machine writing at once: a busy timeout, and
every write is one short `BEGIN IMMEDIATE` transaction.  Each process opens its
own `Store`; connections are never shared between processes or threads.

The journal is SQLite's rollback journal, not WAL: WAL maps its `-shm` index
into memory, and when that file cannot be backed (a full disk, a truncated or
unwritable file) touching the mapping kills the process with SIGBUS, without a
word.  With a rollback journal (and `mmap_size = 0`) every such failure is an
ordinary error, reported as one line (`StoreError`).

Stages are claimed before they run (`claim`, see `claims.py`): one process per
stage.  A finished stage records the SHA-256 of each of its output files
(`outputs`) and the digests of the upstream outputs it read (`inputs`), so a
later run can verify it instead of trusting it.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from prunebench.errors import PrunebenchError
from prunebench.outputs import atomic_write_text
from prunebench.experiment.claims import Claimant, claim_alive

STORE_FILE = "prunebench.sqlite"

#: Bumped whenever a table changes; stored as SQLite's `user_version`.
STORE_SCHEMA = 3
#: Older schemas this one upgrades in place (3 only added tables).
_UPGRADES = {2}

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
CREATE TABLE IF NOT EXISTS claims (
    stage_id TEXT PRIMARY KEY, token TEXT NOT NULL, host TEXT NOT NULL, pid INTEGER NOT NULL, start TEXT,
    worker_pid INTEGER, worker_start TEXT, claimed REAL NOT NULL, renewed REAL NOT NULL, lease_s REAL NOT NULL);
CREATE TABLE IF NOT EXISTS attempts (
    id INTEGER PRIMARY KEY, stage_id TEXT NOT NULL, token TEXT NOT NULL, host TEXT, pid INTEGER,
    worker_pid INTEGER, started REAL, ended REAL, outcome TEXT);
CREATE TABLE IF NOT EXISTS outputs (
    stage_id TEXT NOT NULL, path TEXT NOT NULL, size INTEGER NOT NULL, sha256 TEXT NOT NULL,
    PRIMARY KEY (stage_id, path));
CREATE TABLE IF NOT EXISTS inputs (
    stage_id TEXT NOT NULL, upstream_id TEXT NOT NULL, digest TEXT NOT NULL, PRIMARY KEY (stage_id, upstream_id));
"""

#: A stage's output files: relative path -> (size, sha256).
Outputs = dict[str, tuple[int, str]]

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


_IO_WORDS = ("disk", "full", "readonly", "read-only", "unable to open", "i/o", "locked", "permission")


def _is_io_error(e: sqlite3.Error) -> bool:
    """An error of the disk or the file system, as opposed to a file that is not a store."""
    return isinstance(e, sqlite3.OperationalError) and any(w in str(e).lower() for w in _IO_WORDS)


def _io_message(path: Path, e: sqlite3.Error, what: str = "write") -> str:
    text = str(e).lower()
    hint = ""
    if "full" in text:
        hint = "; free some disk space, then rerun to resume"
    elif "readonly" in text or "read-only" in text or "unable to open" in text or "permission" in text:
        hint = "; its folder must be writable"
    return f"{path}: cannot {what} the results store ({e}){hint}"


class StoreError(PrunebenchError):
    """The store cannot be read or written (disk full, read-only, damaged file)."""


class ClaimLost(PrunebenchError):
    """This process's claim on a stage is gone: another process took the stage over."""


def outputs_digest(outputs: Outputs) -> str:
    """One SHA-256 over a stage's output files (what a downstream stage records having read)."""
    return hashlib.sha256(json.dumps(sorted(outputs.items())).encode()).hexdigest()


class Store:
    """All reads and writes of one experiment folder's database."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise StoreError(f"{self.path.parent}: cannot create the store's folder ({e.strerror or e})") from None
        try:
            self._db = sqlite3.connect(self.path, timeout=60, isolation_level=None)
        except sqlite3.Error as e:
            raise StoreError(f"{self.path}: cannot open the results store ({e})") from None
        try:
            self._db.row_factory = sqlite3.Row
            self._db.execute("PRAGMA busy_timeout = 60000")
            self._db.execute("PRAGMA mmap_size = 0")  # no mapped pages: I/O errors stay errors (no SIGBUS)
            if self._db.execute("PRAGMA journal_mode").fetchone()[0] != "delete":
                self._db.execute("PRAGMA journal_mode = DELETE")  # see the module doc: no WAL -shm mapping
            if self._db.execute("PRAGMA user_version").fetchone()[0] == STORE_SCHEMA:
                return  # current already: opening writes nothing (a read-only store can still be read)
            with self._write() as db:
                version = db.execute("PRAGMA user_version").fetchone()[0]
                tables = db.execute("SELECT count(*) FROM sqlite_master WHERE type = 'table'").fetchone()[0]
                if tables and version != STORE_SCHEMA and version not in _UPGRADES:
                    raise PrunebenchError(
                        f"{self.path}: written by another prunebench version (store schema {version}, "
                        f"this one reads {STORE_SCHEMA}); use a new output folder"
                    )
                if version != STORE_SCHEMA:
                    for statement in filter(str.strip, _SCHEMA.split(";")):
                        db.execute(statement)
                    db.execute(f"PRAGMA user_version = {STORE_SCHEMA}")
        except PrunebenchError:
            self._db.close()
            raise
        except sqlite3.DatabaseError as e:
            self._db.close()
            if _is_io_error(e):
                raise StoreError(_io_message(self.path, e)) from None
            raise PrunebenchError(f"{self.path}: not a usable prunebench store ({e})") from None

    @classmethod
    def open(cls, exp_dir: str | Path) -> Store:
        return cls(Path(exp_dir) / STORE_FILE)

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction; IMMEDIATE takes the write lock up front, so no upgrade deadlocks.

        A disk that is full or read-only becomes a one-line `StoreError`, never a traceback.
        """
        try:
            self._db.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as e:
            raise StoreError(_io_message(self.path, e)) from None
        try:
            yield self._db
            self._db.execute("COMMIT")
        except BaseException as e:
            with contextlib.suppress(sqlite3.Error):
                self._db.execute("ROLLBACK")
            if isinstance(e, sqlite3.Error):
                raise StoreError(_io_message(self.path, e)) from None
            raise

    def _read(self, sql: str, params: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        try:
            return self._db.execute(sql, params).fetchall()
        except sqlite3.Error as e:
            raise StoreError(_io_message(self.path, e, "read")) from None

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
        rows = self._read("SELECT * FROM experiments ORDER BY created")
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
        return {r["id"]: r["status"] for r in self._read("SELECT id, status FROM stages")}

    def stage(self, stage_id: str) -> dict[str, Any]:
        rows = self._read("SELECT * FROM stages WHERE id = ?", (stage_id,))
        if not rows:
            raise PrunebenchError(f"{self.path}: no stage {stage_id}")
        return {**dict(rows[0]), "extra": json.loads(rows[0]["extra"] or "{}")}

    def mark_running(self, stage_id: str) -> None:
        with self._write() as db:
            db.execute("UPDATE stages SET status = 'running', started = ?, error = NULL WHERE id = ?", (time.time(), stage_id))

    def _check_claim(self, db: sqlite3.Connection, stage_id: str, token: str | None) -> None:
        if token is None:
            return
        row = db.execute("SELECT token FROM claims WHERE stage_id = ?", (stage_id,)).fetchone()
        if row is None or row["token"] != token:
            raise ClaimLost(f"stage {stage_id[:12]} was taken over by another process while this one ran it")

    def _end_attempt(self, db: sqlite3.Connection, stage_id: str, token: str, outcome: str) -> None:
        db.execute(
            "UPDATE attempts SET ended = ?, outcome = ? WHERE stage_id = ? AND token = ? AND outcome IS NULL",
            (time.time(), outcome, stage_id, token),
        )

    def mark_done(
        self, stage_id: str, *, style: str | None = None, extra: dict[str, Any] | None = None,
        token: str | None = None, outputs: Outputs | None = None, inputs: dict[str, str] | None = None,
    ) -> None:  # fmt: skip
        """Record a finished stage (with its output checksums and the upstream digests it read).

        With `token`, only while this claim still holds (`ClaimLost` otherwise); the claim ends.
        """
        with self._write() as db:
            self._check_claim(db, stage_id, token)
            db.execute(
                "UPDATE stages SET status = 'done', finished = ?, style = ?, extra = ? WHERE id = ?",
                (time.time(), style, json.dumps(extra or {}, sort_keys=True), stage_id),
            )
            if outputs is not None:
                self._put_outputs(db, stage_id, outputs)
            if inputs is not None:
                db.execute("DELETE FROM inputs WHERE stage_id = ?", (stage_id,))
                db.executemany("INSERT INTO inputs VALUES (?, ?, ?)", [(stage_id, u, d) for u, d in sorted(inputs.items())])
            if token is not None:
                db.execute("DELETE FROM claims WHERE stage_id = ?", (stage_id,))
                self._end_attempt(db, stage_id, token, "done")

    def mark_failed(self, stage_id: str, error: str, *, token: str | None = None) -> None:
        """Record a failure; with `token`, only if the claim is still this one's (else another process owns it)."""
        with self._write() as db:
            if token is not None:
                row = db.execute("SELECT token FROM claims WHERE stage_id = ?", (stage_id,)).fetchone()
                if row is None or row["token"] != token:
                    return
                db.execute("DELETE FROM claims WHERE stage_id = ?", (stage_id,))
                self._end_attempt(db, stage_id, token, "failed")
            db.execute("UPDATE stages SET status = 'failed', finished = ?, error = ? WHERE id = ?", (time.time(), error, stage_id))

    # -- claims: one process per stage (see claims.py) ---------------------------------
    def claim(self, stage_id: str, claimant: Claimant, *, redo_finished: float | None = None) -> bool:
        """Atomically claim a stage for `claimant`; False if a live claim holds it or it is done.

        A done stage is claimed only to recompute it, with `redo_finished` = the finish time the
        caller found wrong (so a stage another process has just recomputed is not redone).
        A dead claim is taken over (its attempt is recorded as "died").
        """
        now = time.time()
        with self._write() as db:
            stage = db.execute("SELECT status, finished FROM stages WHERE id = ?", (stage_id,)).fetchone()
            if stage is None:
                raise PrunebenchError(f"{self.path}: no stage {stage_id}")
            held = db.execute("SELECT * FROM claims WHERE stage_id = ?", (stage_id,)).fetchone()
            if held is not None and claim_alive(held, now):
                return False
            if stage["status"] == "done" and (redo_finished is None or stage["finished"] != redo_finished):
                return False
            if held is not None:
                self._end_attempt(db, stage_id, held["token"], "died")
            db.execute(
                "INSERT OR REPLACE INTO claims VALUES (?, ?, ?, ?, ?, NULL, NULL, ?, ?, ?)",
                (stage_id, claimant.token, claimant.host, claimant.pid, claimant.start, now, now, claimant.lease_s),
            )
            db.execute(
                "INSERT INTO attempts (stage_id, token, host, pid, started) VALUES (?, ?, ?, ?, ?)",
                (stage_id, claimant.token, claimant.host, claimant.pid, now),
            )
            db.execute("UPDATE stages SET status = 'running', started = ?, error = NULL WHERE id = ?", (now, stage_id))
        return True

    def attach_worker(self, stage_id: str, token: str, pid: int, start: str | None) -> None:
        """The process that computes a claimed stage names itself: the claim lives while it does."""
        with self._write() as db:
            self._check_claim(db, stage_id, token)
            db.execute("UPDATE claims SET worker_pid = ?, worker_start = ? WHERE stage_id = ?", (pid, start, stage_id))
            db.execute(
                "UPDATE attempts SET worker_pid = ? WHERE stage_id = ? AND token = ? AND outcome IS NULL", (pid, stage_id, token)
            )

    def renew(self, token: str) -> None:
        """Extend the lease of every claim held under `token` (the heartbeat)."""
        with self._write() as db:
            db.execute("UPDATE claims SET renewed = ? WHERE token = ?", (time.time(), token))

    def release(self, token: str) -> list[str]:
        """Give up every claim held under `token` whose stage did not finish: it goes back to pending."""
        with self._write() as db:
            ids = [r["stage_id"] for r in db.execute("SELECT stage_id FROM claims WHERE token = ?", (token,))]
            for sid in ids:
                self._end_attempt(db, sid, token, "released")
                db.execute("UPDATE stages SET status = 'pending' WHERE id = ? AND status = 'running'", (sid,))
            db.execute("DELETE FROM claims WHERE token = ?", (token,))
        return ids

    def claims(self) -> dict[str, dict[str, Any]]:
        return {r["stage_id"]: dict(r) for r in self._read("SELECT * FROM claims")}

    def reap(self) -> list[dict[str, Any]]:
        """Reset stages left running by processes that died (dead claims, or none at all): pending again.

        Returns the claims that were dead (stage_id, host, pid; `pid` None where no claim existed).
        """
        now = time.time()
        dead: list[dict[str, Any]] = []
        with self._write() as db:
            for row in db.execute("SELECT * FROM claims").fetchall():
                if not claim_alive(row, now):
                    dead.append(dict(row))
                    self._end_attempt(db, row["stage_id"], row["token"], "died")
                    db.execute("DELETE FROM claims WHERE stage_id = ?", (row["stage_id"],))
            orphans = db.execute(
                "SELECT id FROM stages WHERE status = 'running' AND id NOT IN (SELECT stage_id FROM claims)"
            ).fetchall()
            known = {d["stage_id"] for d in dead}
            dead += [{"stage_id": r["id"], "host": None, "pid": None} for r in orphans if r["id"] not in known]
            db.execute("UPDATE stages SET status = 'pending' WHERE status = 'running' AND id NOT IN (SELECT stage_id FROM claims)")
        return dead

    def attempts(self, stage_id: str | None = None) -> list[dict[str, Any]]:
        """Every time a stage was claimed to be run, with how it ended ("done", "failed", "died", ...)."""
        where, params = ("WHERE stage_id = ?", (stage_id,)) if stage_id else ("", ())
        return [dict(r) for r in self._read(f"SELECT * FROM attempts {where} ORDER BY id", params)]

    # -- verification: output checksums ---------------------------------------------------
    def _put_outputs(self, db: sqlite3.Connection, stage_id: str, outputs: Outputs) -> None:
        db.execute("DELETE FROM outputs WHERE stage_id = ?", (stage_id,))
        db.executemany(
            "INSERT INTO outputs VALUES (?, ?, ?, ?)", [(stage_id, k, size, sha) for k, (size, sha) in sorted(outputs.items())]
        )

    def record_outputs(self, stage_id: str, outputs: Outputs) -> None:
        with self._write() as db:
            self._put_outputs(db, stage_id, outputs)

    def outputs(self, stage_id: str) -> Outputs:
        rows = self._read("SELECT path, size, sha256 FROM outputs WHERE stage_id = ?", (stage_id,))
        return {r["path"]: (r["size"], r["sha256"]) for r in rows}

    def inputs(self, stage_id: str) -> dict[str, str]:
        return {r["upstream_id"]: r["digest"] for r in self._read("SELECT * FROM inputs WHERE stage_id = ?", (stage_id,))}

    def reset_stage(self, stage_id: str, token: str) -> None:
        """Forget a claimed stage's results before it is recomputed from scratch."""
        with self._write() as db:
            self._check_claim(db, stage_id, token)
            for table in ("results", "metrics", "budgets", "outputs", "inputs"):
                db.execute(f"DELETE FROM {table} WHERE stage_id = ?", (stage_id,))
            db.execute("UPDATE stages SET status = 'running', finished = NULL, style = NULL, extra = NULL WHERE id = ?", (stage_id,))

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
        for r in self._read("SELECT epoch, name, value FROM metrics WHERE stage_id = ? ORDER BY epoch", (stage_id,)):
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
        for r in self._read(sql, (experiment,) if experiment else ()):
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
        flat = [{k: v for k, v in r.items() if k not in ("arch", "info", "upstream")} for r in rows]
        buf = io.StringIO(newline="")
        fields = list(flat[0]) if flat else ["experiment", "method", "arm", "seed"]
        writer = csv.DictWriter(buf, fieldnames=fields)
        writer.writeheader()
        writer.writerows({k: _json(v) for k, v in r.items()} for r in flat)
        # atomic (outputs.py): a full disk mid-write leaves the previous export intact
        atomic_write_text(json_path, json.dumps(rows, indent=1, sort_keys=True))
        atomic_write_text(csv_path, buf.getvalue())
        return csv_path, json_path
