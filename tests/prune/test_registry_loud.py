"""A method module that is missing or fails to import is a loud error, never a silently missing method."""

from __future__ import annotations

import pytest

from prunebench.errors import ConfigError
from prunebench.prune import registry


@pytest.fixture
def fresh_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    registry.list_methods()  # the built-in modules are imported (and registered) once, before patching
    monkeypatch.setattr(registry, "_loaded", False)
    monkeypatch.setattr(registry, "_METHODS", dict(registry._METHODS))


@pytest.mark.parametrize("module", ["prunebench.prune.no_such_method", "prunebench.prune.broken_for_test"])
def test_a_missing_or_broken_method_module_fails_loudly(fresh_registry: None, monkeypatch: pytest.MonkeyPatch, module: str) -> None:
    if module.endswith("broken_for_test"):
        import sys
        import types

        class Finder:  # a module whose import raises, like a method file with a bad import inside
            def find_spec(self, name: str, path: object = None, target: object = None) -> object:
                if name != module:
                    return None
                import importlib.machinery

                loader = types.SimpleNamespace(create_module=lambda spec: None,
                                               exec_module=lambda m: (_ for _ in ()).throw(ImportError("no module named torchx")))  # fmt: skip
                return importlib.machinery.ModuleSpec(name, loader)

        monkeypatch.setattr(sys, "meta_path", [Finder(), *sys.meta_path])
    monkeypatch.setattr(registry, "_MODULES", [*registry._MODULES, module])
    for call in (registry.list_methods, lambda: registry.get_method("l1norm")):
        with pytest.raises(ConfigError, match=f"{module} failed to import"):
            call()  # every call: the failure is not cached into a shorter method list


def test_all_built_in_methods_load() -> None:
    assert {"l1norm", "slimming", "sfp", "thinet", "regression", "sss", "magnitude", "uniform"} <= set(registry.list_methods())
