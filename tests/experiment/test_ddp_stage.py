"""`[recipes.large] nproc = 2`: the runner computes that stage under torchrun (2 gloo processes here)."""

from __future__ import annotations

from pathlib import Path

from prunebench.experiment import Store, load_preset, run_experiment
from prunebench.experiment.planning import plan_run
from prunebench.experiment.stages import STAGES_DIR
from prunebench.train.threads import ThreadPolicy
from tests.experiment.claimkit import attempts, write_preset


def _preset(folder: Path, nproc: int) -> Path:
    path = write_preset(folder, seeds=1)
    text = path.read_text().replace("scratch_e = true", "scratch_e = false")
    if nproc > 1:
        text = text.replace("[recipes.large]\n", f"[recipes.large]\nnproc = {nproc}\n")
    path.write_text(text)
    return path


def test_a_stage_whose_recipe_says_nproc_runs_under_torchrun(tmp_path: Path) -> None:
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    one, two = load_preset(str(_preset(tmp_path / "one", 1))), load_preset(str(_preset(tmp_path / "two", 2)))
    [large1] = [s for s in plan_run(one).stages if s.kind == "train_large"]
    [large2] = [s for s in plan_run(two).stages if s.kind == "train_large"]
    assert "nproc" not in large1.config["recipe"] and large2.config["recipe"]["nproc"] == 2
    assert large1.id != large2.id  # per-rank BN statistics change the result: nproc is part of its identity
    [ft1] = [s for s in plan_run(one).stages if s.kind == "finetune"]
    assert "nproc" not in ft1.config["recipe"]  # recipes.finetune does not inherit it
    out = tmp_path / "exp"
    run_experiment(two, out, progress=False, threads=ThreadPolicy(pinned=1))
    store = Store.open(out)
    try:
        assert store.stage(large2.id)["extra"]["nproc"] == 2
        assert "nproc" not in store.stage(next(s.id for s in plan_run(two).stages if s.kind == "prune"))["extra"]
        rows = store.rows()
    finally:
        store.close()
    assert {r["arm"] for r in rows} == {"unpruned", "finetuned"} and all(0 <= r["primary_acc"] <= 1 for r in rows)
    assert all(r == ["done"] for r in attempts(out).values()) and len(attempts(out)) == 3
    folder = out / STAGES_DIR / large2.dirname
    assert (folder / "final" / "weights.safetensors").is_file() and (folder / "result.json").is_file()
    assert not list(folder.rglob("*.tmp*"))
