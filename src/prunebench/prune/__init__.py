"""Pruning methods: one file per method, registered in `registry.py`.

To add a method: write `prune/<name>.py` with a `PruneMethod` subclass decorated
with `@register`, and add the module to `registry._MODULES`.
"""

from prunebench.prune.base import NoOptions, PruneMethod, PruneResult
from prunebench.prune.registry import get_method, list_methods, register
from prunebench.prune.surgery import apply_channel_masks, channel_masks, prune_channels

__all__ = [
    "NoOptions",
    "PruneMethod",
    "PruneResult",
    "apply_channel_masks",
    "channel_masks",
    "get_method",
    "list_methods",
    "prune_channels",
    "register",
]
