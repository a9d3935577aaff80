"""Stage identities: a sha256 over everything that determines a stage's output.

The hash covers the stage kind, its config, its upstream stages' identities, its
seed, the code version and `SCHEMA_VERSION`.  Recipes, method options and budget
policies enter as their non-default fields only (`non_default`).  Bump `SCHEMA_VERSION` whenever the
meaning of a stage config changes without the config itself changing; the
regression test in `tests/experiment/test_identity.py` pins literal hashes so
that identities never drift by accident.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from typing import Any

import prunebench

SCHEMA_VERSION = 1


def canonical_json(value: Any) -> str:
    """Sorted, whitespace-free JSON; floats in their shortest round-trip form."""
    return json.dumps(_canonical(value), sort_keys=True, separators=(",", ":"), allow_nan=False)


def _canonical(v: Any) -> Any:
    if isinstance(v, dict):
        return {str(k): _canonical(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_canonical(x) for x in v]
    if isinstance(v, float) and math.isfinite(v) and v.is_integer():
        return int(v)  # 1.0 and 1 describe the same config
    return v


def stage_identity(kind: str, config: dict[str, Any], upstream: dict[str, str], seed: int | None) -> str:
    """The hex identity of a stage."""
    doc = {
        "schema": SCHEMA_VERSION,
        "version": prunebench.__version__,
        "kind": kind,
        "config": config,
        "upstream": upstream,
        "seed": seed,
    }
    return hashlib.sha256(canonical_json(doc).encode()).hexdigest()


def jsonable(v: Any) -> Any:
    """`v` with tuples as lists and anything that is not plain JSON replaced by `<TypeName>`
    (never a repr: memory addresses would make identities unstable)."""
    if isinstance(v, dict):
        return {str(k): jsonable(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [jsonable(x) for x in v]
    if v is None or isinstance(v, bool | int | float | str):
        return v
    return f"<{type(v).__name__}>"


def non_default(obj: Any) -> dict[str, Any]:
    """The fields of dataclass `obj` that differ from their defaults (fields without a default
    always).  Hashing only these keeps old identities valid when a new option is added whose
    default switches its effect off: the rule every option follows."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        else:
            out[f.name] = value
            continue
        if jsonable(value) != jsonable(default):
            out[f.name] = value
    return jsonable(out)


def derived_seed(seed: int, tag: str) -> int:
    """An independent seed for a sub-run (a scratch arm must not replay the large model's init stream)."""
    return int(hashlib.sha256(f"{seed}:{tag}".encode()).hexdigest()[:8], 16) % (2**31 - 1)
