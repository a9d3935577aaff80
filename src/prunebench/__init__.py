"""prunebench: does pruning beat training the pruned architecture from scratch?

The main entry points (imported on first use, so `import prunebench` stays light):

- `compare(build_model, data=..., method=..., amount=..., seeds=...) -> Comparison`: every arm
  (unpruned, pruned, fine-tuned, Scratch-E, Scratch-B) of *your* `nn.Module`, with statistics and a report.
- `load_preset(name_or_path)` and `run_experiment(preset, out_dir)`: the experiments of `prunebench run`.
- `write_report(exp_dir)`: the report of an experiment folder.
- `save_model(dir, model)` / `load_model(dir)`: checkpoint folders (JSON spec + safetensors, never pickles).
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "compare": "prunebench.api",
    "Comparison": "prunebench.api",
    "load_preset": "prunebench.experiment",
    "run_experiment": "prunebench.experiment",
    "write_report": "prunebench.report",
    "save_model": "prunebench.train",
    "load_model": "prunebench.train",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value  # once imported, a plain attribute
        return value
    raise AttributeError(f"module 'prunebench' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
