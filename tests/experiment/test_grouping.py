"""Training stages trained as one group (experiment/grouping.py, stages.compute_group): the results,
identities and folders of a grouped run are those of an ungrouped one; a member that fails fails alone;
the pool runs groups; the policy and the preset key; the dry run names the groups."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from claimkit import ENV, STAGES, attempts, no_traceback, query, run_command, start, write_preset
from kit import accuracies, tiny_preset

from prunebench.cli import main
from prunebench.errors import ConfigError, PrunebenchError
from prunebench.experiment import Store, expand, load_preset, parse_preset, run_experiment
from prunebench.experiment import grouping, stages
from prunebench.experiment.graph import format_plan
from prunebench.train import batched

#: every arm a structured (physical) method has, on the tiniest real data: 3 seeds x 13 stages
EVERY_ARM = tiny_preset(
    "grouped", seeds=(0, 1, 2), data="digits", train_subset=60, test_subset=30, data_extra=("val_size = 0",),
    variant="resnet20", width_mult=0.25,
    arms=("unpruned", "finetuned", "finetune_long", "lr_rewind", "weight_rewind", "random_layerwise", "scratch_e",
          "scratch_b", "uniform_scratch", "winning_ticket", "random_ticket", "guided_scratch"),
    arms_extra=("rewind_epoch = 1",),
    large=("epochs = 2", "lr = 0.05", "milestones = [1]", "batch_size = 32", 'precision = "fp32"'),
    finetune=("epochs = 1", "lr = 0.01", "batch_size = 32"), tail=("[recipes.lottery]", "lrs = [0.1]"),
)  # fmt: skip
SMALL = tiny_preset(
    "grouped-small", seeds=(0, 1, 2), data="digits", train_subset=60, test_subset=30, data_extra=("val_size = 0",),
    variant="resnet20", width_mult=0.25, arms=("unpruned", "finetuned", "scratch_e"),
    large=("epochs = 1", "lr = 0.05", "batch_size = 32", 'precision = "fp32"'), finetune=("epochs = 1", "lr = 0.01", "batch_size = 32"),
)  # fmt: skip


#: the batched trainer's tolerance (train/batched.py): accuracies equal up to one of the 30 test
#: images, losses and parameters to float summation order
TOL = 1 / 30 + 1e-9


def _near(a: Any, b: Any) -> bool:
    """Equal, but for floats within `TOL` (recursively through dicts and lists)."""
    if isinstance(a, float) and isinstance(b, float):
        return abs(a - b) <= TOL
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_near(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(_near(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def _preset(text: str, group: Any) -> Any:
    value = f'"{group}"' if isinstance(group, str) else group
    return parse_preset(tomllib.loads(f"group_training = {value}\n" + text), "grouped.toml")


@pytest.fixture
def group_calls(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """The folders of the members of each `train_group` call made in this process."""
    calls: list[list[str]] = []
    real = batched.train_group

    def spy(members: Any, *args: Any, **kw: Any) -> Any:
        calls.append([Path(m.out_dir).name for m in members])
        return real(members, *args, **kw)

    monkeypatch.setattr(batched, "train_group", spy)
    return calls


def _store_view(exp_dir: Path) -> tuple[dict[str, tuple[str, str]], list[dict[str, Any]], dict[str, Any]]:
    """(stage id -> (folder, status), every result row and every stage's per-epoch metrics, less
    what is timed)."""
    timed = {"latency_ms", "wall_s", "seconds", "threads", "arch"}  # arch holds the latency measurement too
    store = Store.open(exp_dir)
    try:
        ids = {sid: (store.stage(sid)["dir"], status) for sid, status in store.status().items()}
        rows = sorted(({k: v for k, v in r.items() if k not in timed} for r in store.rows()), key=lambda r: (r["stage_id"], r["arm"]))
        metrics = {sid: [{k: v for k, v in m.items() if k not in timed} for m in store.metrics(sid)] for sid in ids}
    finally:
        store.close()
    return ids, rows, metrics


@pytest.fixture(scope="module")
def every_arm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path, list[list[str]]]]:
    """The every-arm preset run grouped (group of 3) and ungrouped, once for the module's tests."""
    root = tmp_path_factory.mktemp("every-arm")
    calls: list[list[str]] = []
    real = batched.train_group

    def spy(members: Any, *args: Any, **kw: Any) -> Any:
        calls.append([Path(m.out_dir).name for m in members])
        return real(members, *args, **kw)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(batched, "train_group", spy)
        run_experiment(_preset(EVERY_ARM, 3), root / "grouped", say=lambda _: None)
        grouped_calls = list(calls)
        run_experiment(_preset(EVERY_ARM, "off"), root / "off", say=lambda _: None)
    assert len(calls) == len(grouped_calls), "an ungrouped run trained a group"
    yield root / "grouped", root / "off", grouped_calls


def test_a_grouped_run_has_the_ungrouped_runs_results_ids_and_folders(every_arm: tuple[Path, Path, list[list[str]]]) -> None:
    grouped, off, calls = every_arm
    acc = accuracies(grouped)
    assert _near(acc, accuracies(off))  # to the batched trainer's tolerance (tests/train/test_batched.py)
    assert len(acc) == 3 * 12 and len({arm for _, arm in acc}) == 12  # every arm of every seed
    view = _store_view(grouped)
    assert view[0] == _store_view(off)[0] and _near(view, _store_view(off))
    ids = view[0]
    assert {status for _, status in ids.values()} == {"done"}
    # every training kind trained as one group of its 3 seeds (the prune stages alone)
    kinds = sorted(folders[0].split("-l1norm-")[0] for folders in calls)
    assert kinds == sorted(k for k in (s.kind for s in expand(_preset(EVERY_ARM, 3)).stages if s.seed == 0) if stages.kind_trains(k))
    assert all(len(folders) == 3 and len({f.split("-s")[-1][0] for f in folders}) == 3 for folders in calls)
    assert sorted(f for folders in calls for f in folders) == sorted(d for d, _ in ids.values() if not d.startswith("prune-"))


def test_grouping_changes_no_stage_identity() -> None:
    plans = [expand(_preset(EVERY_ARM, g)) for g in (3, "off", "auto", 2)]
    assert len({tuple((s.id, s.dirname) for s in p.stages) for p in plans}) == 1


def test_a_member_that_fails_fails_alone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, group_calls: list[list[str]]) -> None:
    real = stages._KINDS["scratch_e"]

    def flaky(ctx: Any) -> Any:  # seed 1 fails preparing, seed 2 recording; seed 0 is fine
        if ctx.stage.seed == 1:
            raise RuntimeError("preparation exploded")
        done = yield from real(ctx)
        if ctx.stage.seed == 2:
            raise PrunebenchError("recording exploded")
        return done

    monkeypatch.setitem(stages._KINDS, "scratch_e", flaky)
    with pytest.raises(PrunebenchError, match=r"2 stage\(s\) failed, 0 skipped; first: scratch_e-l1norm-s1-\w+ \(RuntimeError: preparation exploded\)"):
        run_experiment(_preset(SMALL, 3), tmp_path, say=lambda _: None)
    store = Store.open(tmp_path)
    status = {store.stage(sid)["dir"].split("-")[0] + f"-s{store.stage(sid)['seed']}": st for sid, st in store.status().items()}
    errors = [store.stage(sid)["error"] for sid, st in store.status().items() if st == "failed"]
    store.close()
    assert {k: v for k, v in status.items() if v != "done"} == {"scratch_e-s1": "failed", "scratch_e-s2": "failed"}
    assert any("preparation exploded" in e and "Traceback" in e for e in errors)
    assert any("recording exploded" in e for e in errors)
    scratch = [folders for folders in group_calls if folders[0].startswith("scratch_e")]
    assert [[f.split("-")[2] for f in folders] for folders in scratch] == [["s0", "s2"]]
    monkeypatch.setitem(stages._KINDS, "scratch_e", real)
    assert run_experiment(_preset(SMALL, 3), tmp_path, say=lambda _: None).ran == 2  # the rerun retries both, only them


def test_a_group_whose_training_fails_fails_its_members_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = batched.train_group

    def broken(members: Any, *args: Any, **kw: Any) -> Any:
        if Path(members[0].out_dir).name.startswith("finetune"):
            raise RuntimeError("group training exploded")
        return real(members, *args, **kw)

    monkeypatch.setattr(batched, "train_group", broken)
    with pytest.raises(PrunebenchError, match=r"3 stage\(s\) failed, 0 skipped; first: finetune-"):
        run_experiment(_preset(SMALL, 3), tmp_path, say=lambda _: None)
    store = Store.open(tmp_path)
    failed = sorted(store.stage(sid)["dir"].split("-")[0] for sid, st in store.status().items() if st == "failed")
    done = sum(st == "done" for st in store.status().values())
    store.close()
    assert failed == ["finetune"] * 3 and done == 9


def test_the_pool_runs_groups_with_the_same_results(tmp_path: Path) -> None:
    lines: list[str] = []
    run_experiment(_preset(SMALL, 2), tmp_path / "pool", workers=2, say=lines.append)
    run_experiment(_preset(SMALL, "off"), tmp_path / "alone", say=lambda _: None)
    assert _near(accuracies(tmp_path / "pool"), accuracies(tmp_path / "alone"))
    assert _near(_store_view(tmp_path / "pool"), _store_view(tmp_path / "alone"))
    assert sum("(group of 2)" in line for line in lines) >= 4, lines


def test_batches_groups_ready_stages_of_one_key_and_waits_for_partners() -> None:
    plan = expand(_preset(SMALL, 3))
    by_kind: dict[str, list[Any]] = {}
    for s in plan.stages:
        by_kind.setdefault(s.kind, []).append(s)
    large, prune, ft = by_kind["train_large"], by_kind["prune"], by_kind["finetune"]
    assert grouping.batches(large, large, 3) == [large]
    assert grouping.batches(large, large, 2) == [large[:2], large[2:]]
    assert grouping.batches(large, large, 1) == [[s] for s in large]
    assert grouping.batches(prune, prune, 3) == [[s] for s in prune]  # pruning never trains in a group
    waiting = [*prune[1:], *ft]  # seed 0's finetune is ready, the others wait for their pruning
    assert grouping.batches([prune[1], ft[0]], waiting, 3) == [[prune[1]]]
    assert grouping.batches([prune[1], ft[0]], waiting, 3, force=True) == [[prune[1]], [ft[0]]]
    assert grouping.batches(ft[:2], ft, 2) == [ft[:2]]  # a full group does not wait


def test_the_policy_groups_small_nets_on_cuda_only_unless_told(monkeypatch: pytest.MonkeyPatch) -> None:
    from prunebench.train import speed

    small = expand(_preset(SMALL, "auto"))
    assert grouping.group_size(small, "cpu") == grouping.AUTO_CPU_GROUP == 1
    assert grouping.group_size(expand(_preset(SMALL, 4)), "cpu") == 4
    assert grouping.group_size(expand(_preset(SMALL, "off")), "cpu") == 1
    monkeypatch.setattr(speed, "resolve_device", lambda device=None: torch.device("cuda"))
    assert grouping.group_size(small, "cuda") == grouping.AUTO_CUDA_GROUP
    large = expand(_preset(tiny_preset(variant="vgg16", width_mult=2), "auto"))  # 28-px Fashion-MNIST
    assert grouping._largest_flops(large) > grouping.AUTO_CUDA_MAX_FLOPS
    assert grouping.group_size(large, "cuda") == 1


def test_the_dry_run_names_the_groups() -> None:
    text = format_plan(expand(_preset(SMALL, 3)))
    lines = [m.group(1) for m in re.finditer(r"^ +\d+\. (\S+) .*$", text, re.M) if "(group of 3)" in m.group(0)]
    marked = {folder.split("-")[0] for folder in lines}
    assert marked == {"train_large", "finetune", "scratch_e"}
    assert "(group of" not in format_plan(expand(_preset(SMALL, "off")))


@pytest.mark.parametrize("value", ['"sometimes"', "0", "-2", "65", "true", "2.5", '""'])
def test_a_bad_group_value_is_a_one_line_error(value: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(f"group_training = {value}\n" + SMALL)
    with pytest.raises(ConfigError, match=r'group_training: expected "auto", "off" or a group size from 1 to 64'):
        parse_preset(tomllib.loads(path.read_text()), str(path))
    assert main(["run", str(path), "--out", str(tmp_path / "out")]) != 0
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "group_training" in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_a_grouped_run_killed_mid_group_resumes_and_recomputes_nothing_finished(tmp_path: Path) -> None:
    path = write_preset(tmp_path, epochs=2)
    text = path.read_text().replace("[recipes.finetune]\nepochs = 1", "[recipes.finetune]\nepochs = 4")
    path.write_text("group_training = 2\n" + text)
    killed = tmp_path / "killed"
    proc = start(path, killed)
    deadline = time.monotonic() + 300
    while proc.poll() is None and time.monotonic() < deadline:  # the finetune group: both seeds at once
        done, running = (query(killed, f"SELECT count(*) FROM stages WHERE status = '{s}'") or [(0,)] for s in ("done", "running"))
        if done[0][0] == 4 and running[0][0] == 2:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before its second group started"
    time.sleep(1.0)  # some of the group's training, so there is something to resume
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    finished = {d for (d,) in query(killed, "SELECT dir FROM stages WHERE status = 'done'")}
    assert len(finished) == 4
    rerun = subprocess.run(run_command(path, killed), env=ENV, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0 and no_traceback(rerun.stderr), rerun.stderr
    assert "(group of 2)" in rerun.stdout and "was left running by a process that died" in rerun.stdout
    runs = attempts(killed)
    assert len(runs) == STAGES and all(runs[d] == ["done"] for d in finished)  # nothing finished ran again
    assert sorted(o for d, outcomes in runs.items() if d not in finished for o in outcomes).count("died") == 2
    # and the resumed group's results are those of an ungrouped run from scratch
    path.write_text('group_training = "off"\n' + text)
    run_experiment(load_preset(path), tmp_path / "alone", say=lambda _: None)
    assert _near(accuracies(killed), accuracies(tmp_path / "alone"))
