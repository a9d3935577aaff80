"""`prunebench report DIR --failures`: each failed stage of an experiment folder with the error
(the traceback) its run recorded in the store."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prunebench.errors import PrunebenchError
from prunebench.experiment import Store
from prunebench.experiment.store import STORE_FILE


def open_store(exp_dir: str | Path) -> Store:
    """The store of an existing experiment folder; a folder without one is a one-line error
    (opening it would create an empty store)."""
    exp_dir = Path(exp_dir)
    if not (exp_dir / STORE_FILE).is_file():
        raise PrunebenchError(f"{exp_dir}: no {STORE_FILE} here; is this an experiment folder written by `prunebench run`?")
    return Store.open(exp_dir)


def failed_stages(exp_dir: str | Path) -> list[dict[str, Any]]:
    """The stage rows (id, kind, seed, dir, error, ...) whose status is "failed", in folder order."""
    store = open_store(exp_dir)
    try:
        failed = [store.stage(sid) for sid, status in store.status().items() if status == "failed"]
    finally:
        store.close()
    return sorted(failed, key=lambda s: (s["dir"], s["seed"] or 0))


def format_failures(exp_dir: str | Path) -> str:
    failed = failed_stages(exp_dir)
    if not failed:
        return f"no failed stages in {exp_dir}"
    lines = [f"{len(failed)} failed stage(s) in {exp_dir} (rerun the experiment to retry them):"]
    for s in failed:
        lines += ["", f"== {s['dir']}: {s['kind']}, seed {s['seed']}, stage {s['id']}"]
        error = (s.get("error") or "(no error recorded)").rstrip()
        lines += [f"   {line}" for line in error.splitlines()]
    return "\n".join(lines)
