"""Sane upper bounds on what a user may ask for, and the checks that apply them.

A value that parses but cannot be meant (a NaN learning rate, a negative seed, a
million epochs, a width multiplier of 1e6) is refused up front with one line, instead
of failing deep inside a run, hanging for ever or exhausting memory.  The same bounds
apply on the command line (`prunebench.commands.argtypes`) and in presets
(`prunebench.experiment.preset`); `presets/README.md` and every `--help` state them.
"""

from __future__ import annotations

import math
from typing import Any

from prunebench.errors import ConfigError

#: Seeds: 0 .. 2**32 - 1 (NumPy's seed range; methods derive more seeds as seed + i).
MAX_SEED = 2**32 - 1
#: Seeds per experiment (`run --seeds`, a preset's `seeds` list).
MAX_SEEDS = 1000
#: Training epochs of one recipe (the paper's longest schedule is 160; Scratch-B may derive more).
MAX_EPOCHS = 10_000
#: Images per batch (training, latency timing).
MAX_BATCH_SIZE = 65_536
#: Local worker processes.
MAX_WORKERS = 256
#: Width multiplier of a named architecture (8x VGG-16 is already a 1-billion-parameter net).
MAX_WIDTH_MULT = 8.0
#: Repetitions of small loops (timed forward passes, BN-recalibration batches).
MAX_REPEATS = 100_000
#: Integers anywhere in a preset must fit in 64 bits (SQLite, torch and NumPy need them to).
MAX_INT64 = 2**63 - 1
#: Nesting of tables and lists in a preset or an option value (real ones are 3 deep).
MAX_DEPTH = 32

#: kind -> (lowest, highest) of the bounded integers, for checks, messages and `--help`.
INT_KINDS: dict[str, tuple[int, int]] = {
    "seed": (0, MAX_SEED),
    "seeds": (1, MAX_SEEDS),
    "epochs": (1, MAX_EPOCHS),
    "batch_size": (1, MAX_BATCH_SIZE),
    "workers": (1, MAX_WORKERS),
    "repeats": (1, MAX_REPEATS),
    "count": (0, MAX_INT64),  # sizes of splits and subsets: the data set checks the real range
}


def int_error(value: Any, kind: str) -> str | None:
    """Why `value` is not an integer within the bounds of `kind` (see `INT_KINDS`), or None."""
    lo, hi = INT_KINDS[kind]
    if isinstance(value, bool) or not isinstance(value, int):
        return f"expected an integer, got {_short(value)}"
    if not lo <= value <= hi:
        span = "a non-negative 64-bit integer" if (lo, hi) == (0, MAX_INT64) else f"in [{lo}, {hi}]"
        return f"must be {span}, got {_short(value)}"
    return None


def float_error(value: Any, *, positive: bool = False, nonneg: bool = False, high: float | None = None) -> str | None:
    """Why `value` is not a finite number (NaN and infinities are never meant) in range, or None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return f"expected a number, got {_short(value)}"
    try:
        f = float(value)
    except OverflowError:
        return f"must be a finite number, got {_short(value)}"
    if not math.isfinite(f):
        return f"must be a finite number, got {f}"
    if positive and f <= 0:
        return f"must be positive, got {f:g}"
    if nonneg and f < 0:
        return f"must be non-negative, got {f:g}"
    if high is not None and f > high:
        return f"must be at most {high:g}, got {f:g}"
    return None


def value_error(value: Any) -> tuple[str, str] | None:
    """(key path, why) of the first place in a parsed TOML/JSON value that cannot be meant: a NaN
    or infinite number, an integer beyond 64 bits, nesting deeper than `MAX_DEPTH`; else None."""
    stack: list[tuple[Any, str, int]] = [(value, "", 0)]
    while stack:  # iterative: the value itself may be nested too deep for recursion
        v, path, depth = stack.pop()
        if depth > MAX_DEPTH:
            return path, f"nested more than {MAX_DEPTH} levels deep"
        if isinstance(v, float) and not math.isfinite(v):
            return path, f"NaN and infinite numbers are not allowed, got {v}"
        if isinstance(v, int) and not isinstance(v, bool) and not -MAX_INT64 - 1 <= v <= MAX_INT64:
            return path, f"integers must fit in 64 bits, got {_short(v)}"
        if isinstance(v, dict):
            stack += [(x, f"{path}.{k}" if path else str(k), depth + 1) for k, x in reversed(v.items())]
        elif isinstance(v, list | tuple):
            stack += [(x, f"{path}[{i}]", depth + 1) for i, x in reversed(list(enumerate(v)))]
    return None


def bounds(kind: str) -> str:
    """`kind`'s range for help texts, e.g. '1..10000'."""
    lo, hi = INT_KINDS[kind]
    return f"{lo}..{hi}"


def check_int(value: Any, kind: str, what: str) -> int:
    """`value` if `int_error` finds nothing wrong, else a `ConfigError` naming `what`."""
    why = int_error(value, kind)
    if why:
        raise ConfigError(f"{what}: {why}")
    return int(value)


def _short(value: Any) -> str:
    if isinstance(value, int) and value.bit_length() > 128:  # str() of a huge int is slow, or refused
        return f"a {value.bit_length()}-bit integer"
    text = str(value)
    return text if len(text) <= 40 else f"{text[:40]}..."
