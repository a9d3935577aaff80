"""A store (or an experiment folder) that becomes unwritable mid-run: one line and a non-zero exit,
never SIGBUS, a traceback or a silent death.

Root ignores file modes, so "read-only" and "full" are made real in other ways: SQLite's own
limits (`query_only`, `max_page_count`), the file-size resource limit (EFBIG, as a full disk
would give ENOSPC), and, where the tests may mount file systems, a tiny tmpfs that fills up
or is remounted read-only while the run goes on.
"""

from __future__ import annotations

import re
import resource
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from claimkit import ENV, run_command, write_preset

from prunebench.cli import main
from prunebench.experiment import Store
from prunebench.experiment.store import StoreError


_PROGRESS = re.compile(r"^\[[\w.-]+\] epoch ")  # the trainer's per-epoch lines, also on stderr


def _one_line_error(stderr: str) -> str:
    lines = [line for line in stderr.strip().splitlines() if not _PROGRESS.match(line)]
    assert len(lines) == 1 and lines[0].startswith("prunebench run: error: "), stderr
    assert "Traceback" not in stderr and "Fatal Python error" not in stderr
    return lines[0]


def test_a_read_only_or_full_store_is_a_one_line_store_error(tmp_path: Path) -> None:
    store = Store.open(tmp_path)
    store._db.execute("PRAGMA query_only = 1")  # SQLite refuses every write, as on a read-only file
    with pytest.raises(StoreError, match=r"cannot write the results store \(attempt to write a readonly database\)") as err:
        store.add_metrics("s", [{"epoch": 0, "loss": 1.0}])
    assert "\n" not in str(err.value)
    store._db.execute("PRAGMA query_only = 0")
    pages = store._db.execute("PRAGMA page_count").fetchone()[0]
    store._db.execute(f"PRAGMA max_page_count = {pages}")  # the file cannot grow: a full disk
    with pytest.raises(StoreError, match=r"database or disk is full\); free some disk space"):
        store.add_metrics("s", [{"epoch": i, "loss": float(i), "x" * 500: 1.0} for i in range(200)])
    store.close()
    (tmp_path / "file").write_text("")
    with pytest.raises(StoreError, match="cannot create the store's folder"):
        Store.open(tmp_path / "file" / "exp")


def test_a_store_that_fills_up_mid_run_exits_with_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    preset = write_preset(tmp_path, seeds=1)
    opened = Store.__init__

    def small_disk(self: Store, path: str | Path) -> None:  # every connection sees a disk with no room to grow
        opened(self, path)
        pages = self._db.execute("PRAGMA page_count").fetchone()[0]
        self._db.execute(f"PRAGMA max_page_count = {pages + 2}")

    monkeypatch.setattr(Store, "__init__", small_disk)
    assert main(["run", str(preset), "--out", str(tmp_path / "exp")]) == 2
    err = capsys.readouterr().err
    assert "database or disk is full" in _one_line_error(err)


def test_no_memory_mapped_journal_to_die_on_and_old_wal_stores_are_converted(tmp_path: Path) -> None:
    # WAL maps `-shm` into memory: once that file is truncated (or cannot be backed on a full disk)
    # the next write kills the process with SIGBUS and no message. The store uses no mapped file.
    script = (
        "import os, sys; from prunebench.experiment import Store\n"
        "s = Store(sys.argv[1]); s.add_metrics('a', [{'epoch': 0, 'x': 1.0}])\n"
        "for p in (sys.argv[1] + '-shm', sys.argv[1] + '-wal'):\n"
        "    if os.path.exists(p): os.truncate(p, 0)\n"
        "s.add_metrics('a', [{'epoch': i, 'x': 1.0} for i in range(1, 500)])\n"
        "print(len(s.metrics('a')))\n"
    )
    path = tmp_path / "prunebench.sqlite"
    proc = subprocess.run([sys.executable, "-c", script, str(path)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout.strip() == "500", (proc.returncode, proc.stderr)
    # a store an earlier version left in WAL mode (schema 2) is converted and upgraded in place
    db = sqlite3.connect(path)
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("DROP TABLE claims")
    db.execute("PRAGMA user_version = 2")
    db.close()
    store = Store(path)
    assert store._db.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    assert store._db.execute("PRAGMA user_version").fetchone()[0] == 3 and store.claims() == {}
    assert len(store.metrics("a")) == 500
    store.close()
    assert not (tmp_path / "prunebench.sqlite-shm").exists()


def _file_size_limit(limit: int) -> None:
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit then fails with EFBIG
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))


def test_files_that_cannot_grow_mid_run_give_one_line_and_exit_2(tmp_path: Path) -> None:
    preset = write_preset(tmp_path, seeds=1)
    proc = subprocess.run(
        run_command(preset, tmp_path / "exp"), env=ENV, capture_output=True, text=True, timeout=300,
        preexec_fn=lambda: _file_size_limit(90_000),
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    line = _one_line_error(proc.stderr)  # a checkpoint (EFBIG) or the store (SQLite: full / I/O error), whichever grows past it first
    assert any(why in line for why in ("File too large", "disk is full", "disk I/O error")), line


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A 2 MiB tmpfs of its own (skipped where this process may not mount)."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mnt)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here (needs root with CAP_SYS_ADMIN)")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_a_disk_that_fills_up_mid_run_gives_one_line(tmp_path: Path, tmpfs: Path) -> None:
    preset = write_preset(tmp_path, seeds=2)
    proc = subprocess.run(run_command(preset, tmpfs / "exp"), env=ENV, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    assert "No space left on device" in _one_line_error(proc.stderr) or "disk is full" in proc.stderr


def test_a_store_on_a_read_only_file_system_gives_one_line(tmp_path: Path, tmpfs: Path) -> None:
    # a file system with open files cannot be remounted read-only, so the store is made first and
    # the run started after (the mid-run cases are the full disks above)
    preset = write_preset(tmp_path, seeds=1)
    exp = tmpfs / "exp"
    Store.open(exp).close()
    subprocess.run(["mount", "-o", "remount,ro", str(tmpfs)], check=True)
    proc = subprocess.run(run_command(preset, exp), env=ENV, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    line = _one_line_error(proc.stderr)
    assert "Read-only file system" in line or "readonly" in line, line
