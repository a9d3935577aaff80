"""prunebench: does pruning beat training the pruned architecture from scratch?"""

__version__ = "0.1.0"
