"""Pruning methods: one file per method, registered in `registry.py`."""

from prunebench.prune.base import NoOptions, PruneMethod, PruneResult
from prunebench.prune.registry import get_method, list_methods, register

__all__ = ["NoOptions", "PruneMethod", "PruneResult", "get_method", "list_methods", "register"]
