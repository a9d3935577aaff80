"""The runner: progress lines, failures recorded and skipped downstream, a rerun retries them."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from kit import tiny_preset

from prunebench.errors import PrunebenchError
from prunebench.experiment import Store, parse_preset, run_experiment
from prunebench.experiment import stages as stage_kinds

TINY = tiny_preset("runner", arms=("unpruned", "finetuned", "scratch_e"), finetune=("epochs = 1", "lr = 0.005"))


def test_failed_stage_is_recorded_blocks_its_downstream_and_is_retried(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    preset = parse_preset(tomllib.loads(TINY), "runner.toml")

    def broken(ctx: object) -> None:
        raise PrunebenchError("pruning exploded")

    monkeypatch.setitem(stage_kinds._KINDS, "prune", broken)
    lines: list[str] = []
    with pytest.raises(PrunebenchError, match=r"1 stage\(s\) failed, 2 skipped; first: prune-[\w-]+ \(pruning exploded\)"):
        run_experiment(preset, tmp_path, say=lines.append)
    assert lines[0] == "stage 1/4: train_large l1norm (plain training) seed 0" and "ETA" in lines[1]
    store = Store.open(tmp_path)
    assert sorted(store.status().values()) == ["done", "failed", "pending", "pending"]
    [failed] = [store.stage(sid) for sid, status in store.status().items() if status == "failed"]
    assert "pruning exploded" in failed["error"]
    store.close()

    monkeypatch.undo()
    lines.clear()
    summary = run_experiment(preset, tmp_path, say=lines.append)
    assert (summary.ran, summary.already_done) == (3, 1) and lines[0].startswith("stage 2/4: prune")
    lines.clear()
    assert run_experiment(preset, tmp_path, say=lines.append).ran == 0
    assert lines == [f"all 4 stages already done in {tmp_path}"]


def test_progress_counts_only_this_plans_stages_after_an_option_change(tmp_path: Path) -> None:
    first = parse_preset(tomllib.loads(TINY), "runner.toml")
    run_experiment(first, tmp_path, say=lambda _: None)
    changed = parse_preset(tomllib.loads(TINY.replace("ratio = 0.5", "ratio = 0.25")), "runner.toml")
    lines: list[str] = []
    summary = run_experiment(changed, tmp_path, say=lines.append)
    # the large model is shared; the old prune/finetune/scratch stages stay done in the store
    assert (summary.ran, summary.already_done) == (3, 1)
    assert [line.split(":")[0] for line in lines[:3]] == ["stage 2/4", "stage 3/4", "stage 4/4"]
    # and the results (what the report reads) are this plan's only: one run per arm, not two
    store = Store.open(tmp_path)
    rows = store.rows("runner")
    store.close()
    assert sorted(r["arm"] for r in rows) == sorted({r["arm"] for r in rows})
    assert {r["arm"] for r in rows} >= {"unpruned", "finetuned", "scratch_e"}
