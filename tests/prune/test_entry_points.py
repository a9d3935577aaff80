"""Third-party methods through the `prunebench.methods` entry-point group: an example distribution
(a package and its dist-info with entry_points.txt) on a temporary sys.path entry, found by
importlib.metadata exactly as an installed one, appears in `prune --list` and runs in a preset."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from kit import tiny_preset

from prunebench.cli import main
from prunebench.experiment import Store, expand, load_preset
from prunebench.prune import registry

PLUGIN = '''
from dataclasses import dataclass

from prunebench.models import attached_spec
from prunebench.prune import PruneMethod, PruneResult, prune_channels


class KeepFirst(PruneMethod):
    name = "keepfirst"
    description = "keeps the first channels of every layer (a third-party example)"

    @dataclass(frozen=True)
    class Options:
        ratio: float = 0.5

    def prune(self, model, splits, opts, *, seed=0):
        groups = [g for g in attached_spec(model).groups() if g.kind == "out"]
        kept = {g.name: list(range(max(1, int(g.size * (1 - opts.ratio))))) for g in groups}
        return PruneResult(prune_channels(model, kept), kept=kept, info={"by": "pbplugin"})


def helper():
    return 1
'''

PRESET = tiny_preset("plugin", method="keepfirst", label="first-50", arms=("unpruned", "pruned_no_ft"))


def _distribution(root: Path, entry_points: str) -> Path:
    """An 'installed' distribution pbplugin 0.1 under `root` (what pip would leave in site-packages)."""
    (root / "pbplugin").mkdir(parents=True)
    (root / "pbplugin" / "__init__.py").write_text(PLUGIN)
    info = root / "pbplugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: pbplugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(textwrap.dedent(entry_points))
    return root


@pytest.fixture
def fresh_registry(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The registry as in a new process: the built-ins, and entry points scanned again; restored afterwards."""
    registry.list_methods()  # the built-ins register on their first import only
    monkeypatch.setattr(registry, "_METHODS", dict(registry._METHODS))
    monkeypatch.setattr(registry, "_ORIGINS", dict(registry._ORIGINS))
    monkeypatch.setattr(registry, "_loaded", False)
    yield
    sys.modules.pop("pbplugin", None)  # each test writes its own version of the package


def test_an_entry_point_method_is_listed_and_runs_in_a_preset(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fresh_registry: None, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.syspath_prepend(str(_distribution(tmp_path / "site", "[prunebench.methods]\nkeepfirst = pbplugin:KeepFirst\n")))
    assert main(["prune", "--list"]) == 0
    listing = capsys.readouterr().out
    assert "keepfirst" in listing and "a third-party example" in listing and "ratio=0.5" in listing
    assert "l1norm" in listing  # the built-ins are still there

    preset = tmp_path / "plugin.toml"
    preset.write_text(PRESET)
    plan = expand(load_preset(preset))
    prune = next(s for s in plan.stages if s.kind == "prune")
    assert prune.config["plugin"] == "pbplugin 0.1"  # the plugin's release is part of its stages' identity
    assert main(["run", str(preset), "--dry-run"]) == 0
    assert "prune first-50" in capsys.readouterr().out
    out = tmp_path / "exp"
    assert main(["run", str(preset), "--out", str(out)]) == 0
    store = Store.open(out)
    try:
        rows = {r["arm"]: r for r in store.rows()}
    finally:
        store.close()
    assert set(rows) == {"unpruned", "pruned_no_ft"}
    assert rows["pruned_no_ft"]["info"] == {"by": "pbplugin"}
    assert rows["pruned_no_ft"]["params_total"] < rows["unpruned"]["params_total"]

    # a new release of the plugin: its pruning stage is new, the large model is not
    info = tmp_path / "site" / "pbplugin-0.1.dist-info" / "METADATA"
    info.write_text(info.read_text().replace("Version: 0.1", "Version: 0.2"))
    monkeypatch.setattr(registry, "_loaded", False)
    monkeypatch.setattr(registry, "_ORIGINS", {})
    again = {s.kind: s.id for s in expand(load_preset(preset)).stages}
    assert again["train_large"] == next(s.id for s in plan.stages if s.kind == "train_large")
    assert again["prune"] != prune.id


@pytest.mark.parametrize(
    "entry, words",
    [
        ("gone = pbmissing:Method", ["entry point gone = 'pbmissing:Method' of pbplugin 0.1", "ModuleNotFoundError"]),
        ("helper = pbplugin:helper", ["entry point helper", "not a PruneMethod subclass"]),
        ("clash = pbplugin:KeepFirst", []),  # a second name for the same class is harmless
    ],
)
def test_a_broken_entry_point_fails_loudly_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fresh_registry: None, capsys: pytest.CaptureFixture[str],
    entry: str, words: list[str],
) -> None:  # fmt: skip
    monkeypatch.syspath_prepend(str(_distribution(tmp_path / "site", f"[prunebench.methods]\n{entry}\n")))
    code = main(["prune", "--list"])
    err = capsys.readouterr().err
    if not words:
        assert code == 0 and not err
        return
    assert code == 2 and err.count("\n") == 1 and err.startswith("prunebench prune: error: ")
    assert all(w in err for w in words), err
    assert main(["prune", "--list"]) == 2  # still loud on the next call, not a silently shorter list
    capsys.readouterr()


def test_a_third_party_method_cannot_take_a_built_in_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fresh_registry: None, capsys: pytest.CaptureFixture[str]
) -> None:
    root = _distribution(tmp_path / "site", "[prunebench.methods]\nl1norm = pbplugin:KeepFirst\n")
    (root / "pbplugin" / "__init__.py").write_text(PLUGIN.replace('name = "keepfirst"', 'name = "l1norm"'))
    monkeypatch.syspath_prepend(str(root))
    assert main(["prune", "--list"]) == 2
    err = capsys.readouterr().err
    assert "entry point l1norm" in err and "'l1norm' is already taken by prunebench.prune.l1norm" in err
