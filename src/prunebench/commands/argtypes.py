"""argparse `type=` functions that apply `prunebench.limits`: a bad number is a one-line usage error."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from prunebench.limits import MAX_WIDTH_MULT, float_error, int_error


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:  # also a number of more than 4300 digits
        raise argparse.ArgumentTypeError(f"expected an integer, got {text[:40]!r}") from None


def _float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text[:40]!r}") from None


def bounded_int(kind: str) -> Callable[[str], int]:
    """An integer within `limits.INT_KINDS[kind]`."""

    def parse(text: str) -> int:
        value = _int(text)
        why = int_error(value, kind)
        if why:
            raise argparse.ArgumentTypeError(why)
        return value

    parse.__name__ = kind  # argparse names the type in its messages
    return parse


def finite_float(*, positive: bool = False, nonneg: bool = False, high: float | None = None) -> Callable[[str], float]:
    """A finite number (never NaN or infinite), optionally positive, non-negative or bounded."""

    def parse(text: str) -> float:
        value = _float(text)
        why = float_error(value, positive=positive, nonneg=nonneg, high=high)
        if why:
            raise argparse.ArgumentTypeError(why)
        return value

    parse.__name__ = "number"
    return parse


SEED = bounded_int("seed")
EPOCHS = bounded_int("epochs")
SEEDS = bounded_int("seeds")
WORKERS = bounded_int("workers")
BATCH_SIZE = bounded_int("batch_size")
REPEATS = bounded_int("repeats")
COUNT = bounded_int("count")
NUMBER = finite_float()
POSITIVE = finite_float(positive=True)
NONNEG = finite_float(nonneg=True)
WIDTH_MULT = finite_float(positive=True, high=MAX_WIDTH_MULT)

