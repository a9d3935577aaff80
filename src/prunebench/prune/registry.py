"""Name -> pruning method. To add a method: write `prune/<name>.py` and add it to `_MODULES`."""

from __future__ import annotations

import importlib

from prunebench.errors import ConfigError
from prunebench.prune.base import PruneMethod

_MODULES = [
    "prunebench.prune.l1norm",
    "prunebench.prune.slimming",
    "prunebench.prune.sfp",
    "prunebench.prune.uniform",
    "prunebench.prune.thinet",
    "prunebench.prune.regression",
    "prunebench.prune.sss",
    "prunebench.prune.magnitude",
]

_METHODS: dict[str, type[PruneMethod]] = {}
_loaded = False


def register(cls: type[PruneMethod]) -> type[PruneMethod]:
    """Class decorator used by each method module."""
    _METHODS[cls.name] = cls
    return cls


def _load() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    for mod in _MODULES:
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as e:  # a method file not written yet
            if e.name != mod:
                raise


def get_method(name: str) -> PruneMethod:
    _load()
    if name not in _METHODS:
        raise ConfigError(f"unknown pruning method {name!r}; known: {', '.join(sorted(_METHODS))}")
    return _METHODS[name]()


def list_methods() -> list[str]:
    _load()
    return sorted(_METHODS)
