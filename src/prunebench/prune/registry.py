"""Name -> pruning method. To add a method: write `prune/<name>.py` and add it to `_MODULES`.

A method in another package needs no edit here: its distribution declares an entry point in
the `prunebench.methods` group (pyproject: `[project.entry-points."prunebench.methods"]`,
`mymethod = "mypackage.mymethod:MyMethod"`) naming a `PruneMethod` subclass, or a module
whose import registers its methods with `@register`. It then appears in `prune --list` and
can be named in presets like a built-in one.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import types

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

#: The entry-point group third-party packages register their methods in.
ENTRY_POINT_GROUP = "prunebench.methods"

_METHODS: dict[str, type[PruneMethod]] = {}
_ORIGINS: dict[str, str] = {}  # third-party method name -> "distribution version"
_loaded = False


def register(cls: type[PruneMethod]) -> type[PruneMethod]:
    """Class decorator used by each method module; a name already taken by another class is refused."""
    old = _METHODS.get(cls.name)
    if old is not None and (old.__module__, old.__qualname__) != (cls.__module__, cls.__qualname__):
        raise ConfigError(f"method name {cls.name!r} is already taken by {old.__module__}.{old.__qualname__}")
    _METHODS[cls.name] = cls
    return cls


def _load() -> None:
    """Import every method module. One that is missing or broken fails loudly: a method must
    never silently vanish from `prune --list` and from the presets that name it."""
    global _loaded
    if _loaded:
        return
    for mod in _MODULES:
        try:
            importlib.import_module(mod)
        except Exception as e:
            raise ConfigError(f"pruning method module {mod} failed to import: {type(e).__name__}: {e}") from e
    _load_entry_points()
    _loaded = True


def _load_entry_points() -> None:
    """Register the third-party methods of the `ENTRY_POINT_GROUP` entry points; a broken one is a
    one-line error naming it (on every call: `_loaded` stays False), never a silently missing method."""
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        origin = f"{ep.dist.name} {ep.dist.version}" if ep.dist is not None else ep.value
        dist = f" of {origin}" if ep.dist is not None else ""
        where = f"entry point {ep.name} = {ep.value!r}{dist} (group {ENTRY_POINT_GROUP})"
        before = set(_METHODS)
        try:
            obj = ep.load()
        except Exception as e:
            why = (str(e).splitlines() or [""])[0]
            raise ConfigError(f"{where} failed to load: {type(e).__name__}: {why}") from e
        if not isinstance(obj, types.ModuleType):  # a module registers its methods itself
            if not (isinstance(obj, type) and issubclass(obj, PruneMethod)) or not obj.name:
                raise ConfigError(f"{where} is not a PruneMethod subclass with a name, nor a module (got {obj!r})")
            try:
                register(obj)
            except ConfigError as e:
                raise ConfigError(f"{where}: {e}") from None
        for name in set(_METHODS) - before:
            _ORIGINS[name] = origin


def method_origin(name: str) -> str | None:
    """The distribution and version of a third-party method (`"mypackage 1.2"`), which enters the
    identity of its stages; None for prunebench's own methods (its version is in every identity)."""
    _load()
    return _ORIGINS.get(name)


def get_method(name: str) -> PruneMethod:
    _load()
    if name not in _METHODS:
        raise ConfigError(f"unknown pruning method {name!r}; known: {', '.join(sorted(_METHODS))}")
    return _METHODS[name]()


def list_methods() -> list[str]:
    _load()
    return sorted(_METHODS)
