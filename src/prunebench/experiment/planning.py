"""The plan a run executes, as the runner and the dry run both see it.

Stage identities include the split hash of the loaded data, so the runner plans after
loading it; the dry run loads it too when it is already on this machine (nothing is
installed or downloaded), and so shows the same identities and folders as the run.
An existing experiment folder's store supplies the folders of the stages it already has
(folders named by an older version stay in use) and the results of seeds the preset no
longer plans (`finished_seed_links`).
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from prunebench.experiment.graph import Plan, expand
from prunebench.experiment.preset import Preset, load_preset
from prunebench.experiment.resolve import check_runnable, data_fingerprint
from prunebench.experiment.store import STORE_FILE, Store

DataDir = str | os.PathLike[str] | None


def _source(preset: Preset) -> Preset | None:
    return None if preset.transfer is None else load_preset(preset.transfer.source)


def _hashes(preset: Preset, data_dir: DataDir) -> tuple[str | None, str | None]:
    """The split hashes of the preset's data and of its transfer source's (loading both)."""
    from prunebench.experiment.stages import load_splits

    split = load_splits(data_fingerprint(preset), data_dir).split_hash
    source = _source(preset)
    if source is None:
        return split, None
    check_runnable(source)
    return split, load_splits(data_fingerprint(source), data_dir).split_hash


def plan_run(preset: Preset, data_dir: DataDir = None) -> Plan:
    """The stage graph the runner executes: identities with the loaded data's split hashes."""
    split, source = _hashes(preset, data_dir)
    return expand(preset, split_hash=split, source_split_hash=source)


def data_present(preset: Preset, data_dir: DataDir = None) -> bool:
    """Whether the preset's data (and its transfer source's) can be loaded without installing,
    downloading or guessing anything."""
    from prunebench.data.loader import present

    presets = [preset, *filter(None, [_source(preset)])]
    return all(not p.unsupported and present(p.data.name, data_dir) for p in presets)


def plan_dry_run(preset: Preset, out: str | Path, data_dir: DataDir = None) -> tuple[Plan, dict[str, str], str | None]:
    """(plan, status of each stage the store of `out` already has, a note when the identities are
    provisional): the run's identities and folders whenever the data is already here."""
    note = None
    if data_present(preset, data_dir):
        plan = plan_run(preset, data_dir)
    else:
        plan = expand(preset)
        note = (
            f"data set {preset.data.name} is not on this machine (or not loadable yet): the stage ids below "
            "leave out its split hash, so the run's ids and folder names will differ"
        )
    status: dict[str, str] = {}
    if (Path(out) / STORE_FILE).is_file():
        store = Store.open(out)
        try:
            plan = with_store_folders(plan, store)
            status = {sid: st for sid, st in store.status().items() if sid in plan.by_id()}
        finally:
            store.close()
    return plan, status, note


def with_store_folders(plan: Plan, store: Store) -> Plan:
    """`plan` with each stage the store already has in the folder the store recorded for it
    (an experiment started under another folder naming resumes in its own folders)."""
    known = set(store.status())
    stages = [dataclasses.replace(s, folder=store.stage(s.id)["dir"]) if s.id in known else s for s in plan.stages]
    return dataclasses.replace(plan, stages=stages)


def finished_seed_links(plan: Plan, store: Store, data_dir: DataDir = None) -> list[tuple[str, str, str, str]]:
    """The method/arm links of finished stages of seeds `plan` does not plan (an earlier run with
    `--seeds 3`, now rerun with `--seeds 2`): the same preset expanded with those seeds, restricted
    to its stages that are done. The report then uses every finished seed of the experiment (and
    says which ones the plan did not ask for) instead of silently shrinking n."""
    preset = plan.preset
    done = {sid for sid, st in store.status().items() if st == "done"}
    seeds = sorted({store.stage(sid)["seed"] for sid in done} - set(preset.seeds) - {None})
    if not seeds:
        return []
    split, source = _hashes(preset, data_dir)  # loaded once per process: no second read
    extra = expand(dataclasses.replace(preset, seeds=tuple(seeds)), split_hash=split, source_split_hash=source)
    return [link for link in extra.links if link[2] in done]
