"""A finished stage is verified, not trusted: changed or missing outputs are recomputed (with one
line saying so), so are downstream stages whose inputs changed, and a run left behind by a dead
process is reset and its temporary files cleared."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from claimkit import TINY, accuracies, attempts

from prunebench.errors import PrunebenchError
from prunebench.experiment import Store, parse_preset, run_experiment
from prunebench.experiment import verify as verify_mod
from prunebench.experiment.claims import HOST, Claimant
from prunebench.experiment.planning import plan_run
from prunebench.experiment.stages import STAGES_DIR, StageTask, run_stage

PRESET = parse_preset(tomllib.loads(TINY.replace("EPOCHS", "1").replace("seeds = [0, 1]", "seeds = [0]")), "claims.toml")


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("verify") / "exp"
    run_experiment(PRESET, out, say=lambda _: None)
    return out


def _copy(template: Path, tmp_path: Path) -> Path:
    out = tmp_path / "exp"
    shutil.copytree(template, out)
    return out


def _stage_dir(exp: Path, kind: str) -> Path:
    [d] = (exp / STAGES_DIR).glob(f"{kind}-*")
    return d


def _flip(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-5] ^= 0x01  # in the tensor data: still a valid file of the same size
    stat = path.stat()
    path.write_bytes(bytes(data))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))


def _rerun(exp: Path) -> list[str]:
    lines: list[str] = []
    run_experiment(PRESET, exp, say=lines.append)
    return lines


def test_a_flipped_byte_in_a_finished_stage_recomputes_that_stage_only(template: Path, tmp_path: Path) -> None:
    exp = _copy(template, tmp_path)
    prune = _stage_dir(exp, "prune")
    weights = prune / "pruned" / "weights.safetensors"
    original = weights.read_bytes()
    _flip(weights)
    lines = _rerun(exp)
    assert f"stage {prune.name} output changed since it finished (pruned/weights.safetensors); recomputing" in lines
    assert weights.read_bytes() == original  # recomputed from scratch, bit-identically
    runs = attempts(exp)
    assert runs[prune.name] == ["done", "done"]
    # its downstream stages read the same checkpoint as before: they stay done
    assert all(outcomes == ["done"] for name, outcomes in runs.items() if name != prune.name)
    assert accuracies(exp) == accuracies(template)


def test_a_deleted_output_recomputes_the_stage_and_a_changed_input_its_downstream(template: Path, tmp_path: Path) -> None:
    exp = _copy(template, tmp_path)
    large, finetune = _stage_dir(exp, "train_large"), _stage_dir(exp, "finetune")
    (large / "final" / "weights.safetensors").unlink()
    # and the fine-tuning run had read another version of the pruned model than the one there now
    with sqlite3.connect(exp / "prunebench.sqlite") as db:
        db.execute("UPDATE inputs SET digest = 'x' WHERE stage_id = (SELECT id FROM stages WHERE dir = ?)", (finetune.name,))
    lines = _rerun(exp)
    assert f"stage {large.name} output changed since it finished (final/weights.safetensors missing); recomputing" in lines
    assert any(line.startswith(f"stage {finetune.name} input changed since it finished (upstream prune-") for line in lines), lines
    runs = attempts(exp)
    assert runs[large.name] == ["done", "done"] and runs[finetune.name] == ["done", "done"]
    assert runs[_stage_dir(exp, "prune").name] == ["done"] and runs[_stage_dir(exp, "scratch_e").name] == ["done"]
    assert accuracies(exp) == accuracies(template)


def test_a_worker_refuses_an_upstream_folder_changed_after_it_finished(template: Path, tmp_path: Path) -> None:
    exp = _copy(template, tmp_path)
    prune = _stage_dir(exp, "prune")
    _flip(prune / "pruned" / "weights.safetensors")
    [finetune] = [s for s in plan_run(PRESET).stages if s.kind == "finetune"]
    task = StageTask(str(exp), finetune, {"pruned": str(prune)}, threads=1)
    with pytest.raises(PrunebenchError, match=rf"upstream stage {prune.name} output changed since it finished \(pruned/weights.safetensors\)"):
        run_stage(task)


def test_a_finished_experiment_is_hashed_once_per_stage_per_run(template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    exp = _copy(template, tmp_path)
    hashed: list[str] = []
    real = verify_mod._sha256

    def counting(path: Path) -> str:
        hashed.append(str(path))
        return real(path)

    monkeypatch.setattr(verify_mod, "_sha256", counting)
    assert _rerun(exp) == [f"all 4 stages already done in {exp}"]
    store = Store.open(exp)
    recorded = sum(len(store.outputs(sid)) for sid in store.status())
    store.close()
    assert len(hashed) == len(set(hashed)) == recorded > 0


def test_a_stage_left_running_by_a_dead_process_is_reset_and_its_temp_files_cleared(template: Path, tmp_path: Path) -> None:
    exp = _copy(template, tmp_path)
    finetune = _stage_dir(exp, "finetune")
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    # killed mid-training: no result yet, and a half-written checkpoint and log under temp names
    shutil.rmtree(finetune / "final")
    (finetune / "result.json").unlink()
    (finetune / f".final.tmp{dead.pid}").mkdir()
    (finetune / f".final.tmp{dead.pid}" / "weights.safetensors").write_bytes(b"half")
    (finetune / f".metrics.csv.tmp{dead.pid}").write_text("epoch,")
    store = Store.open(exp)
    sid = next(s for s, st in store.status().items() if store.stage(s)["dir"] == finetune.name)
    store._db.execute("UPDATE stages SET status = 'running' WHERE id = ?", (sid,))
    assert store.claim(sid, Claimant(HOST, dead.pid, None, "dead"))
    store.close()
    lines = _rerun(exp)
    assert f"stage {finetune.name} was left running by a process that died ({HOST} pid {dead.pid}); it will be resumed" in lines
    assert not [p for p in finetune.rglob("*") if ".tmp" in p.name]
    assert (finetune / "final" / "weights.safetensors").is_file()
    assert accuracies(exp) == accuracies(template)
    assert attempts(exp)[finetune.name] == ["done", "died", "done"]
