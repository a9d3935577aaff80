"""Experiments: presets (TOML) -> stage graph -> store (SQLite) -> executors."""

from prunebench.experiment.executor import Executor, InProcessExecutor, PoolExecutor
from prunebench.experiment.graph import Plan, Stage, expand, format_plan
from prunebench.experiment.identity import SCHEMA_VERSION, stage_identity
from prunebench.experiment.preset import ARMS, Preset, list_presets, load_preset, parse_preset
from prunebench.experiment.runner import RunSummary, run_experiment
from prunebench.experiment.store import Store

__all__ = [
    "ARMS", "SCHEMA_VERSION", "Executor", "InProcessExecutor", "Plan", "PoolExecutor", "Preset",
    "RunSummary", "Stage", "Store", "expand", "format_plan", "list_presets", "load_preset",
    "parse_preset", "run_experiment", "stage_identity",
]
