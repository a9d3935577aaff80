"""Nothing the user owns is deleted, hidden or overwritten (prunebench.outputs and every command that writes).

prunebench writes only into folders it created (marker `.prunebench`) or that are empty;
`--force` replaces only its own outputs; every file is written under a temporary name and
renamed over the old one only when complete.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from prunebench.cli import main
from prunebench.errors import PrunebenchError
from prunebench.experiment import Store
from prunebench.experiment.graph import Stage
from prunebench.models import VGGSpec
from prunebench.outputs import MARKER, OutputError, atomic_write_bytes, check_dir, claim_dir
from prunebench.report import write_report
from prunebench.train import save_model, seed_everything

SPEC = VGGSpec(cfg=(8, "M", 16), in_channels=1, input_size=8)


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    try:
        rc = main(argv)
    except SystemExit as e:  # argparse usage errors
        rc = int(e.code or 0)
    return rc, capsys.readouterr().err


def _user_folder(root: Path) -> Path:
    """A folder of the user's: their own report and results, and a notes file."""
    mine = root / "mine"
    mine.mkdir()
    (mine / "report.md").write_text("my own report\n")
    (mine / "results.csv").write_text("a,b\n1,2\n")
    (mine / "notes.txt").write_text("keep me\n")
    return mine


def _contents(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _checkpoint(root: Path) -> Path:
    seed_everything(0)
    return save_model(root / "large", SPEC.build())


def _prune_args(ckpt: Path, out: Path | str) -> list[str]:
    return ["prune", "--method", "l1norm", "--ratio", "0.5", "--checkpoint", str(ckpt), "--out", str(out)]


def _fill_store(exp_dir: Path) -> None:
    """A hand-made experiment folder with one finished result (no training)."""
    store = Store.open(exp_dir)
    preset = {"seeds": [0], "data": {"name": "digits", "val_size": 0}, "model": {"variant": "vgg11", "width_mult": 1.0},
              "description": "hand-made", "notes": []}  # fmt: skip
    store.add_experiment("hand", "hand.toml", preset)
    sid = "a" * 64
    store.add_stages("hand", [Stage(sid, "train_large", 0, {}, {}, {}, ("l1",))], [("l1", "unpruned", sid, "unpruned")])
    store.add_result(sid, "unpruned", 0, primary_acc=0.9, final_test_acc=0.9, params_nonzero=100, flops=1e6,
                     flops_mode="reference", latency_ms=1.0, arch={"widths": [8, "M", 16]})  # fmt: skip
    store.mark_done(sid)
    store.close()


# -- the folder rules ----------------------------------------------------------------------


def test_claim_creates_and_marks_empty_or_new_folders(tmp_path: Path) -> None:
    assert (claim_dir(tmp_path / "new" / "run") / MARKER).is_file()
    (tmp_path / "empty").mkdir()
    assert (claim_dir(tmp_path / "empty") / MARKER).is_file()
    claim_dir(tmp_path / "empty")  # a marked folder is prunebench's, even once it holds files


def test_claim_refuses_a_users_folder_and_a_file_touching_nothing(tmp_path: Path) -> None:
    mine = _user_folder(tmp_path)
    before = _contents(mine)
    with pytest.raises(OutputError, match="holds files prunebench did not write"):
        claim_dir(mine)
    assert _contents(mine) == before and not (mine / MARKER).exists()
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(OutputError, match="is a file"):
        check_dir(tmp_path / "file.txt")


def test_a_folder_nothing_can_be_written_to_is_refused() -> None:
    # root ignores permission bits, so use places that really are read-only: procfs and sysfs
    with pytest.raises(OutputError, match="cannot write there"):
        claim_dir("/proc/prunebench-test-out")
    empty_ro = Path("/sys/kernel/software_nodes")
    if empty_ro.is_dir() and not any(empty_ro.iterdir()):
        with pytest.raises(OutputError, match="cannot write there"):
            claim_dir(empty_ro)


# -- atomic files ----------------------------------------------------------------------------


def _half_then_enospc(monkeypatch: pytest.MonkeyPatch) -> None:
    """`os.write` writes half of what it is given once, then the disk is full."""
    real = os.write

    def write(fd: int, data: bytes | memoryview) -> int:
        if len(data) > 1:
            real(fd, bytes(data[: len(data) // 2]))
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "write", write)


def test_a_full_disk_mid_write_keeps_the_old_file_and_leaves_no_temp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "results.csv"
    path.write_text("old contents\n")
    _half_then_enospc(monkeypatch)
    with pytest.raises(OutputError, match="No space left"):
        atomic_write_bytes(path, b"new contents\n" * 1000)
    monkeypatch.undo()
    assert path.read_text() == "old contents\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.csv"]


def test_report_on_a_full_disk_keeps_every_old_report_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    _fill_store(tmp_path)
    assert main(["report", str(tmp_path)]) == 0
    names = ["report.md", "report.tex", "results.csv", "results.json"]
    before = {n: (tmp_path / n).read_bytes() for n in names}
    pngs = {p.name: p.read_bytes() for p in tmp_path.glob("*.png")}
    assert pngs and all(before.values())
    capsys.readouterr()
    _half_then_enospc(monkeypatch)
    rc, err = _run(["report", str(tmp_path)], capsys)
    monkeypatch.undo()
    assert rc != 0 and len(err.strip().splitlines()) == 1 and "Traceback" not in err and "No space left" in err
    assert {n: (tmp_path / n).read_bytes() for n in names} == before
    assert {p.name: p.read_bytes() for p in tmp_path.glob("*.png")} == pngs
    assert not [p for p in tmp_path.iterdir() if ".tmp" in p.name]


def test_report_of_a_store_without_results_touches_no_existing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    Store.open(tmp_path).close()
    (tmp_path / "results.csv").write_text("earlier,results\n1,2\n")
    (tmp_path / "results.json").write_text('[{"earlier": 1}]')
    rc, err = _run(["report", str(tmp_path)], capsys)
    assert rc != 0 and "no finished results" in err and len(err.strip().splitlines()) == 1
    assert (tmp_path / "results.csv").read_text() == "earlier,results\n1,2\n"
    assert (tmp_path / "results.json").read_text() == '[{"earlier": 1}]'
    with pytest.raises(PrunebenchError):
        write_report(tmp_path)


# -- the commands ------------------------------------------------------------------------------


def test_prune_out_on_a_users_folder_is_refused_even_with_force(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ckpt, mine = _checkpoint(tmp_path), _user_folder(tmp_path)
    before = _contents(mine)
    for extra in ([], ["--force"]):
        rc, err = _run([*_prune_args(ckpt, mine), *extra], capsys)
        assert rc != 0 and "did not write" in err and len(err.strip().splitlines()) == 1
        assert _contents(mine) == before and sorted(p.name for p in tmp_path.iterdir()) == ["large", "mine"]


def test_prune_out_on_a_file_leaves_the_file_where_and_as_it_was(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ckpt = _checkpoint(tmp_path)
    (tmp_path / "model.bin").write_bytes(b"user data")
    for extra in ([], ["--force"]):
        rc, err = _run([*_prune_args(ckpt, tmp_path / "model.bin"), *extra], capsys)
        assert rc != 0 and "is a file" in err and len(err.strip().splitlines()) == 1
        assert (tmp_path / "model.bin").read_bytes() == b"user data"
        assert sorted(p.name for p in tmp_path.iterdir()) == ["large", "model.bin"]  # no hidden .model.bin.old


def test_prune_force_replaces_its_own_checkpoint_but_not_a_file_added_to_it(tmp_path: Path,
                                                                            capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    ckpt, out = _checkpoint(tmp_path), tmp_path / "pruned"
    assert main(_prune_args(ckpt, out)) == 0 and (out / MARKER).is_file()
    assert main([*_prune_args(ckpt, out), "--force"]) == 0  # its own output: replaced
    (out / "my-notes.txt").write_text("mine")
    before = _contents(out)
    capsys.readouterr()
    rc, err = _run([*_prune_args(ckpt, out), "--force"], capsys)
    assert rc != 0 and "my-notes.txt" in err and len(err.strip().splitlines()) == 1
    assert _contents(out) == before


def test_prune_out_in_an_empty_folder_works(tmp_path: Path) -> None:
    ckpt, out = _checkpoint(tmp_path), tmp_path / "empty"
    out.mkdir()
    assert main(_prune_args(ckpt, out)) == 0 and (out / "spec.json").is_file() and (out / MARKER).is_file()


def test_run_out_on_a_users_folder_with_their_report_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    mine = _user_folder(tmp_path)
    before = _contents(mine)
    for command in (["run", "fmnist-l1"], ["demo", "--quick"]):
        rc, err = _run([*command, "--out", str(mine)], capsys)
        assert rc != 0 and "did not write" in err and len(err.strip().splitlines()) == 1
        assert _contents(mine) == before


def test_an_experiment_folder_from_before_markers_is_still_prunebenchs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from prunebench.commands.run import claim_out

    _fill_store(tmp_path)
    claim_out(tmp_path)  # holds a store: recognised, and marked from now on
    assert (tmp_path / MARKER).is_file()


def test_train_out_on_a_users_folder_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    mine = _user_folder(tmp_path)
    before = _contents(mine)
    rc, err = _run(["train", "--arch", "vgg11", "--dataset", "fashion-mnist", "--epochs", "1", "--train-subset", "100",
                    "--val-size", "0", "--width-mult", "0.125", "--out", str(mine)], capsys)  # fmt: skip
    assert rc != 0 and "did not write" in err and len(err.strip().splitlines()) == 1
    assert _contents(mine) == before
