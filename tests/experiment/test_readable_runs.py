"""Runs a person can read: folder names that say kind, method and seed (and older experiment folders
that still resume in theirs), a dry run that shows the run's own ids, folders and recipes, failures
that can be read back with `report --failures`, a device checked before the data is loaded, and a
report that uses (and names) every finished seed."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from kit import tiny_preset

from prunebench.cli import main
from prunebench.experiment import Store, graph, stages

TINY = tiny_preset("tiny-readable", seeds=(0, 1, 2), label="l1norm-50%")

NEW_NAME = re.compile(r"^(train_large|prune|finetune)-l1norm-50-s(\d)-[0-9a-f]{12}$")


@pytest.fixture
def preset(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.toml"
    path.write_text(TINY)
    return path


def _folders(exp: Path) -> set[str]:
    return {p.name for p in (exp / "stages").iterdir()} if (exp / "stages").is_dir() else set()


def _dry_run_folders(text: str) -> list[str]:
    return re.findall(r"^\s+\d+\. (\S+)", text, flags=re.M)


def _old_dirname(self: graph.Stage) -> str:  # the naming of every version before this one
    return self.folder or f"{self.kind}-{self.id[:12]}"


def test_folders_name_kind_method_and_seed_and_the_dry_run_shows_them(
    preset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    exp = tmp_path / "exp"
    assert main(["run", str(preset), "--seeds", "1", "--dry-run", "--out", str(exp)]) == 0
    planned = _dry_run_folders(capsys.readouterr().out)
    assert main(["run", str(preset), "--seeds", "1", "--out", str(exp)]) == 0
    capsys.readouterr()
    on_disk = _folders(exp)
    assert set(planned) == on_disk and len(on_disk) == 3  # the dry run's ids are the run's
    assert all(NEW_NAME.match(name) and NEW_NAME.match(name).group(2) == "0" for name in on_disk), on_disk
    # an existing experiment: the same folders, each marked done, and its recipe
    assert main(["run", str(preset), "--seeds", "1", "--dry-run", "--out", str(exp)]) == 0
    out = capsys.readouterr().out
    assert set(_dry_run_folders(out)) == on_disk and out.count("[done]") == 3
    assert "recipe: 1 epochs, lr 0.05, constant LR, batch 64" in out
    assert "recipe: 1 epochs, lr 0.01, constant LR, batch 64" in out
    assert main(["report", str(exp), "--failures"]) == 0
    assert capsys.readouterr().out.strip() == f"no failed stages in {exp}"


def test_an_experiment_with_old_folder_names_skips_and_resumes_in_them(
    preset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    exp = tmp_path / "exp"
    with monkeypatch.context() as m:
        m.setattr(graph.Stage, "dirname", property(_old_dirname))
        assert main(["run", str(preset), "--seeds", "1", "--out", str(exp)]) == 0
    old = _folders(exp)
    assert len(old) == 3 and all(re.fullmatch(r"[a-z_]+-[0-9a-f]{12}", n) for n in old)
    capsys.readouterr()

    # the dry run shows the folders the store recorded; a rerun skips those stages
    assert main(["run", str(preset), "--seeds", "1", "--dry-run", "--out", str(exp)]) == 0
    assert set(_dry_run_folders(capsys.readouterr().out)) == old
    assert main(["run", str(preset), "--seeds", "1", "--out", str(exp)]) == 0
    assert "0 stage(s) run, 3 already done" in capsys.readouterr().out
    assert _folders(exp) == old

    # new stages get the new names, and read their upstream from the old folders
    assert main(["run", str(preset), "--seeds", "2", "--out", str(exp)]) == 0
    new = _folders(exp) - old
    assert len(new) == 3 and all(NEW_NAME.match(n).group(2) == "1" for n in new), new
    store = Store.open(exp)
    try:
        dirs = {store.stage(sid)["dir"] for sid in store.status()}
    finally:
        store.close()
    assert dirs == old | new


def test_a_failed_stage_is_named_and_report_failures_prints_its_traceback(
    preset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def broken(ctx: object) -> None:
        raise RuntimeError("the fine-tune exploded on purpose")

    monkeypatch.setitem(stages._KINDS, "finetune", broken)
    exp = tmp_path / "exp"
    assert main(["run", str(preset), "--seeds", "1", "--out", str(exp)]) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("prunebench run: error:")]
    assert len(errors) == 1 and f"prunebench report {exp} --failures" in errors[0]
    assert main(["report", str(exp), "--failures"]) == 0
    out = capsys.readouterr().out
    assert "1 failed stage(s)" in out
    folder = next(n for n in _folders(exp) if n.startswith("finetune-"))
    assert f"== {folder}: finetune, seed 0" in out
    assert "Traceback (most recent call last)" in out and "RuntimeError: the fine-tune exploded on purpose" in out
    assert main(["report", str(tmp_path / "nowhere"), "--failures"]) == 2
    assert "no prunebench.sqlite" in capsys.readouterr().err and not (tmp_path / "nowhere").exists()


@pytest.mark.parametrize(
    "device, words",
    [
        ("cuda", "CUDA is not available"),
        ("cuda:0", "CUDA is not available"),
        ("mps", "not supported (use cpu, cuda or cuda:N)"),
        ("warp-drive", "unknown device 'warp-drive'"),
        ("cuda:x", "unknown device 'cuda:x'"),
    ],
)
def test_a_bad_device_fails_in_one_line_before_the_data_is_loaded(
    preset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
    device: str, words: str,
) -> None:  # fmt: skip
    if device.startswith("cuda") and torch.cuda.is_available():
        device, words = "cuda:99", "CUDA device(s), cuda:0 to cuda:"  # an index this machine lacks

    def no_data(*args: object, **kwargs: object) -> None:
        raise AssertionError("the data was loaded before the device was checked")

    monkeypatch.setattr(stages, "load_splits", no_data)
    assert main(["run", str(preset), "--device", device, "--out", str(tmp_path / "exp")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and words in err, err
    assert not (tmp_path / "exp").exists()


def test_the_report_keeps_every_finished_seed_and_says_which(
    preset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    exp = tmp_path / "exp"
    assert main(["run", str(preset), "--out", str(exp)]) == 0  # seeds 0, 1, 2
    assert main(["run", str(preset), "--seeds", "2", "--out", str(exp)]) == 0
    assert "0 stage(s) run, 6 already done" in capsys.readouterr().out
    report = (exp / "report.md").read_text()
    assert "(n=3)" in report and "(n=2)" not in report
    assert "Seeds in these numbers: 0, 1, 2 (the last run planned 0, 1; 2 finished in an earlier run and are included)" in report
    # a seed planned but not finished yet is named too
    assert main(["run", str(preset), "--seeds", "1", "--out", str(exp)]) == 0
    assert "Seeds in these numbers: 0, 1, 2 (the last run planned 0; 1, 2 finished" in (exp / "report.md").read_text()
