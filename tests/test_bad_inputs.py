"""A corpus of bad inputs, across every subcommand: each gets exactly one line on stderr, a
non-zero exit, no traceback, and changes no file (the sandbox is checksummed before and after).

Classes: numbers that parse but cannot be meant (NaN, infinities, negative or >64-bit seeds,
zero or negative widths and worker counts, absurd epochs and seed counts), presets that are not
UTF-8, nested absurdly deep, too large, or name a folder outside --out, output paths that are
files, the user's folders or read-only, and archives / pickles declaring absurd sizes.
Most run in-process through `prunebench.cli.main`; a handful also as real processes.
"""

from __future__ import annotations

import gzip
import hashlib
import pickle
import resource
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
from kit import tiny_preset

from prunebench.cli import main
from prunebench.experiment import load_preset
from prunebench.models import VGGSpec
from prunebench.train import save_model, seed_everything

GOOD = tiny_preset(finetune=("epochs = 1", "lr = 0.005"))


def _edit(old: str, new: str) -> str:
    assert GOOD.count(old) == 1, old
    return GOOD.replace(old, new)


#: preset file name -> contents (bytes for the ones that are not text)
PRESETS: dict[str, str | bytes] = {
    "good.toml": GOOD,
    "latin1.toml": GOOD.replace('"tiny"', '"tïny"').encode("latin-1"),
    "deep.toml": GOOD + "x = " + "[" * 5000 + "]" * 5000 + "\n",
    "deep-options.toml": _edit("options = { ratio = 0.5 }", "options = { ratio = 0.5, o = " + "[" * 100 + "]" * 100 + " }"),
    "huge.toml": GOOD + "# " + "x" * (2 << 20) + "\n",
    "nan-lr.toml": _edit("lr = 0.05", "lr = nan"),
    "inf-lr.toml": _edit("lr = 0.005", "lr = inf"),
    "nan-option.toml": _edit("ratio = 0.5", "ratio = nan"),
    "inf-width.toml": _edit("width_mult = 0.125", "width_mult = inf"),
    "zero-width.toml": _edit("width_mult = 0.125", "width_mult = 0"),
    "huge-width.toml": _edit("width_mult = 0.125", "width_mult = 1000.0"),
    "negative-seed.toml": _edit("seeds = [0]", "seeds = [-1]"),
    "seed-65-bits.toml": _edit("seeds = [0]", "seeds = [36893488147419103232]"),
    "seed-40-bits.toml": _edit("seeds = [0]", "seeds = [1099511627776]"),
    "duplicate-seeds.toml": _edit("seeds = [0]", "seeds = [0, 1, 0]"),
    "too-many-seeds.toml": _edit("seeds = [0]", f"seeds = {list(range(1001))}"),
    "absurd-epochs.toml": _edit("epochs = 1\nlr = 0.05", "epochs = 1000000000\nlr = 0.05"),
    "zero-batch.toml": _edit("lr = 0.05", "lr = 0.05\nbatch_size = 0"),
    "huge-batch.toml": _edit("lr = 0.05", "lr = 0.05\nbatch_size = 1000000000"),
    "negative-split-seed.toml": _edit("test_subset = 100", "test_subset = 100\nsplit_seed = -3"),
    # {escape}: a folder next to the sandbox (the fixture fills it in); nothing may appear there
    "name-dotdot.toml": _edit('name = "tiny"', 'name = "../../{escape_name}"'),
    "name-absolute.toml": _edit('name = "tiny"', 'name = "{escape}"'),
    "name-slash.toml": _edit('name = "tiny"', 'name = "a/b"'),
    "name-dots.toml": _edit('name = "tiny"', 'name = ".."'),
    "magnitude-work-dir.toml": _edit('name = "l1norm"\noptions = { ratio = 0.5 }',
                                     'name = "magnitude"\noptions = { percent = 0.5, work_dir = "{escape}" }'),
}

TRAIN = ["train", "--arch", "vgg11", "--dataset", "fashion-mnist", "--epochs", "1", "--train-subset", "100",
         "--val-size", "0", "--width-mult", "0.125"]  # fmt: skip
PRUNE = ["prune", "--method", "l1norm", "--checkpoint", "large", "--out", "pruned"]
RUN = ["run", "good.toml", "--out", "exp"]
BIG = str(2**64)
DEEP_JSON = "[" * 5000 + "]" * 5000

CASES: dict[str, list[str]] = {
    # train: numbers
    "train-seed-negative": [*TRAIN, "--seed", "-1"],
    "train-seed-65-bits": [*TRAIN, "--seed", BIG],
    "train-seed-5000-digits": [*TRAIN, "--seed", "9" * 5000],
    "train-lr-nan": [*TRAIN, "--lr", "nan"],
    "train-lr-inf": [*TRAIN, "--lr", "inf"],
    "train-lr-negative": [*TRAIN, "--lr", "-0.1"],
    "train-wd-nan": [*TRAIN, "--wd", "nan"],
    "train-momentum-nan": [*TRAIN, "--momentum", "nan"],
    "train-momentum-2": [*TRAIN, "--momentum", "2"],
    "train-width-zero": [*TRAIN, "--width-mult", "0"],
    "train-width-negative": [*TRAIN, "--width-mult", "-1"],
    "train-width-absurd": [*TRAIN, "--width-mult", "1e6"],
    "train-width-nan": [*TRAIN, "--width-mult", "nan"],
    "train-epochs-zero": [*TRAIN, "--epochs", "0"],
    "train-epochs-absurd": [*TRAIN, "--epochs", "1000000000"],
    "train-batch-zero": [*TRAIN, "--batch-size", "0"],
    "train-batch-absurd": [*TRAIN, "--batch-size", "1000000000000"],
    "train-val-size-negative": [*TRAIN, "--val-size", "-1"],
    "train-milestones-nan": [*TRAIN, "--milestones", "0.5,nan"],
    "train-device-bogus": [*TRAIN, "--device", "warp-drive", "--out", "t"],
    # train: outputs
    "train-out-is-a-file": [*TRAIN, "--out", "file.txt"],
    "train-out-users-folder": [*TRAIN, "--out", "mine"],
    "train-out-proc": [*TRAIN, "--out", "/proc/prunebench-out"],
    "train-out-sys": [*TRAIN, "--out", "/sys/prunebench-out"],
    # arch
    "arch-repeats-zero": ["arch", "vgg11", "--repeats", "0"],
    "arch-batch-negative": ["arch", "vgg11", "--batch-size", "-1"],
    "arch-epochs-zero": ["arch", "vgg11", "--base", "vgg16", "--epochs", "0"],
    "arch-epochs-absurd": ["arch", "vgg11", "--base", "vgg16", "--epochs", "99999999999"],
    # data
    "data-split-seed-negative": ["data", "info", "digits", "--split-seed", "-1"],
    "data-split-seed-65-bits": ["data", "info", "digits", "--split-seed", BIG],
    "data-val-size-negative": ["data", "info", "digits", "--val-size", "-5"],
    "data-train-subset-absurd": ["data", "info", "digits", "--train-subset", "1" + "0" * 30],
    "data-cifar-tar-bomb": ["data", "info", "cifar10", "--data-dir", "tarbomb"],
    "data-cifar-pickle-array-bomb": ["data", "info", "cifar10", "--data-dir", "picklebomb"],
    "data-cifar-pickle-list-bomb": ["data", "info", "cifar10", "--data-dir", "listbomb"],
    # eval
    "eval-users-folder": ["eval", "mine", "--dataset", "digits"],
    "eval-val-size-negative": ["eval", "large", "--dataset", "digits", "--val-size", "-2"],
    # prune: numbers and options
    "prune-ratio-nan": [*PRUNE, "--ratio", "nan"],
    "prune-ratio-inf": [*PRUNE, "--ratio", "inf"],
    "prune-option-NaN": [*PRUNE, "--option", "ratio=NaN"],
    "prune-option-overflow": [*PRUNE, "--option", "ratio=1e999"],
    "prune-option-deep": [*PRUNE, "--option", f"ratio={DEEP_JSON}"],
    "prune-seed-negative": [*PRUNE, "--ratio", "0.5", "--seed", "-4"],
    "prune-recal-zero": [*PRUNE, "--ratio", "0.5", "--recal-batches", "0"],
    "prune-work-dir-option": ["prune", "--method", "magnitude", "--checkpoint", "large", "--out", "pruned",
                              "--option", "percent=0.5", "--option", "work_dir={escape}"],  # fmt: skip
    # prune: outputs
    "prune-out-is-a-file": ["prune", "--method", "l1norm", "--ratio", "0.5", "--checkpoint", "large", "--out", "file.txt"],
    "prune-out-file-force": ["prune", "--method", "l1norm", "--ratio", "0.5", "--checkpoint", "large", "--out", "file.txt",
                             "--force"],  # fmt: skip
    "prune-out-users-folder": ["prune", "--method", "l1norm", "--ratio", "0.5", "--checkpoint", "large", "--out", "mine",
                               "--force"],  # fmt: skip
    "prune-out-proc": ["prune", "--method", "l1norm", "--ratio", "0.5", "--checkpoint", "large", "--out", "/proc/pb-x"],
    # run: numbers
    "run-seeds-zero": [*RUN, "--seeds", "0"],
    "run-seeds-absurd": [*RUN, "--seeds", "1000000"],
    "run-workers-zero": [*RUN, "--workers", "0"],
    "run-workers-negative": [*RUN, "--workers", "-3"],
    "run-workers-absurd": [*RUN, "--workers", "100000"],
    "run-set-nan": [*RUN, "--set", "recipes.large.lr=nan"],
    "run-set-deep": [*RUN, "--set", f"recipes.large.lr={DEEP_JSON}"],
    "run-set-escaping-name": [*RUN[:2], "--set", 'name="../../{escape}"'],
    # run: outputs
    "run-out-is-a-file": ["run", "good.toml", "--out", "file.txt"],
    "run-out-users-folder": ["run", "good.toml", "--out", "mine"],
    "run-out-proc": ["run", "good.toml", "--out", "/proc/pb-x"],
    # demo
    "demo-workers-zero": ["demo", "--quick", "--workers", "0"],
    "demo-out-is-a-file": ["demo", "--quick", "--out", "file.txt"],
    # report
    "report-users-folder": ["report", "mine"],
    "report-a-file": ["report", "file.txt"],
}
# every bad preset, through `run` (and the default folder `runs/<name>`: no --out)
CASES.update({f"preset-{name.removesuffix('.toml')}": ["run", name] for name in PRESETS if name != "good.toml"})


def _tar_bomb(root: Path) -> None:
    """A .tar.gz whose first member declares 100 GB (its data is not there: reading it would
    decompress until the stream ends; skipping it would too)."""
    folder = root / "tarbomb"
    folder.mkdir()
    info = tarfile.TarInfo("cifar-10-batches-py/data_batch_1")
    info.size = 100 << 30
    header = info.tobuf(format=tarfile.GNU_FORMAT)
    (folder / "cifar-10-python.tar.gz").write_bytes(gzip.compress(header + b"\0" * 4096))


class _Reduce:
    """Pickles as `func(*args)`: how a hostile file calls an allowed global with its own arguments."""

    def __init__(self, func: object, args: tuple[object, ...]) -> None:
        self.func, self.args = func, args

    def __reduce__(self) -> tuple[object, tuple[object, ...]]:
        return self.func, self.args


def _cifar_folder(root: Path, name: str, batch: object) -> None:
    folder = root / name / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for m in [*(f"data_batch_{i}" for i in range(1, 6)), "test_batch"]:
        (folder / m).write_bytes(pickle.dumps(batch, protocol=2))


def _pickle_bombs(root: Path) -> None:
    reconstruct = np.zeros(0).__reduce__()[0]
    # numpy's _reconstruct asked for a 10^15-byte array (an allocation, before any data is read)
    _cifar_folder(root, "picklebomb", {b"data": _Reduce(reconstruct, (np.ndarray, (10**15,), b"b")), b"labels": [0]})
    # 20 levels of one shared 10-element list: a tiny pickle that np.asarray would expand to 10^20 pixels
    nested: list[object] = [0] * 10
    for _ in range(19):
        nested = [nested] * 10
    _cifar_folder(root, "listbomb", {b"data": nested, b"labels": [0] * 10})


@pytest.fixture()
def sandbox(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working folder with the user's files, a checkpoint, presets and hostile data files."""
    monkeypatch.chdir(tmp_path)
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "report.md").write_text("my report\n")
    (mine / "results.csv").write_text("a,b\n1,2\n")
    (tmp_path / "file.txt").write_text("a file of the user's\n")
    seed_everything(0)
    save_model(tmp_path / "large", VGGSpec(cfg=(8, "M", 16), in_channels=1, input_size=8).build())
    for name, text in PRESETS.items():
        if isinstance(text, str):
            text = text.replace("{escape_name}", _escape(tmp_path).name).replace("{escape}", str(_escape(tmp_path)))
        (tmp_path / name).write_bytes(text if isinstance(text, bytes) else text.encode())
    _tar_bomb(tmp_path)
    _pickle_bombs(tmp_path)
    return tmp_path


def _escape(sandbox: Path) -> Path:
    """Where an escaping preset name or option would write: next to the sandbox, outside it."""
    return sandbox.parent / f"{sandbox.name}-escaped"


def _tree(root: Path) -> dict[str, str]:
    """Every file (sha256) and folder under `root`."""
    out = {}
    for p in sorted(root.rglob("*")):
        out[str(p.relative_to(root))] = "dir" if p.is_dir() else hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def _check(rc: int, err: str, before: dict[str, str], root: Path) -> None:
    assert rc != 0, err
    assert "Traceback" not in err, err
    assert len(err.strip().splitlines()) == 1, err
    assert _tree(root) == before  # nothing created, changed or removed
    assert not _escape(root).exists()


def test_the_base_preset_is_good(tmp_path: Path) -> None:
    """The corpus's presets are one edit away from a valid one, so each fails for its own reason."""
    (tmp_path / "good.toml").write_text(GOOD)
    assert load_preset(tmp_path / "good.toml").name == "tiny"


@pytest.mark.parametrize("argv", list(CASES.values()), ids=list(CASES))
def test_bad_input_is_one_line_and_changes_nothing(argv: list[str], sandbox: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = _tree(sandbox)
    argv = [a.replace("{escape}", str(_escape(sandbox))) for a in argv]
    try:
        rc = main(argv)
    except SystemExit as e:  # argparse usage errors exit through the parser
        rc = int(e.code or 0)
    _check(rc, capsys.readouterr().err, before, sandbox)


def _limit_memory() -> None:  # in the child: a bomb that gets past the checks dies of MemoryError, not the machine
    resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))


SUBPROCESS_CASES = ["train-seed-65-bits", "preset-latin1", "prune-out-file-force", "data-cifar-pickle-list-bomb"]


@pytest.mark.parametrize("case", SUBPROCESS_CASES)
def test_bad_input_as_a_real_process(case: str, sandbox: Path) -> None:
    before = _tree(sandbox)
    proc = subprocess.run(
        [sys.executable, "-m", "prunebench.cli", *CASES[case]], capture_output=True, text=True, timeout=300,
        cwd=sandbox, preexec_fn=_limit_memory,
    )  # fmt: skip
    _check(proc.returncode, proc.stderr, before, sandbox)


def test_the_corpus_is_large_and_covers_every_subcommand() -> None:
    assert len(CASES) >= 60
    assert {argv[0] for argv in CASES.values()} == {"train", "arch", "data", "eval", "prune", "run", "demo", "report"}


def test_a_pickle_that_only_calls_allowed_globals_still_cannot_allocate() -> None:
    from prunebench.data.cifar import safe_unpickle
    from prunebench.errors import DataError

    reconstruct = np.zeros(0).__reduce__()[0]
    for payload in (_Reduce(reconstruct, (np.ndarray, (10**15,), b"b")), _Reduce(np.ndarray, ((10**12,),))):
        with pytest.raises(DataError, match="unsafe or corrupt pickle"):
            safe_unpickle(pickle.dumps({b"data": payload}, protocol=2), "bomb")


def test_a_real_decompression_bomb_is_refused_before_it_is_read(tmp_path: Path) -> None:
    """A member of 300 MiB of zeros (a few hundred KiB compressed): refused from its declared size,
    so memory never holds it (today's peak stays far below the member's size)."""
    import tracemalloc

    from prunebench.data.cifar import MAX_MEMBER_BYTES, _read_archive
    from prunebench.errors import DataError

    size = MAX_MEMBER_BYTES + (44 << 20)
    info = tarfile.TarInfo("cifar-10-batches-py/data_batch_1")
    info.size = size
    path = tmp_path / "cifar-10-python.tar.gz"
    with gzip.open(path, "wb", compresslevel=1) as f:
        f.write(info.tobuf(format=tarfile.GNU_FORMAT))
        chunk = bytes(8 << 20)
        for _ in range(size // len(chunk)):
            f.write(chunk)
    assert path.stat().st_size < size // 100
    tracemalloc.start()
    try:
        with pytest.raises(DataError, match="declares"):
            _read_archive(path, "cifar-10-batches-py", ["data_batch_1"])
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 32 << 20


def test_an_idx_header_declaring_gigabytes_is_refused_before_decompressing(tmp_path: Path) -> None:
    from prunebench.data.idx import read_idx
    from prunebench.errors import DataError

    path = tmp_path / "bomb-idx3-ubyte.gz"
    header = bytes([0, 0, 8, 3]) + np.array([10**6, 1000, 1000], dtype=">u4").tobytes()
    with gzip.open(path, "wb") as f:
        f.write(header + b"\0" * 1000)
    with pytest.raises(DataError, match="at most"):
        read_idx(path)
